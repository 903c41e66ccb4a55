"""The Kafka broker's jars, resolved from Maven Central (``deploy/kafka/pom.xml``) into a cache.

A cold cache means a Maven download of about 45 MB, which on a slow line takes many minutes: the
resolution reports what it is doing (each artifact downloaded, and the time so far while nothing
else happens) to a `progress` callback, which `python -m devstack up` and `libs` print.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import queue
import re
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from devstack.errors import StackError
from devstack.supervisor import require_tool

__all__ = [
    "ENV_CACHE_DIR",
    "KAFKA_DEPLOY_DIR",
    "KAFKA_VERSION",
    "ensure_kafka_libs",
    "kafka_libs_dir",
]

log = logging.getLogger(__name__)

# Must match <kafka.version> in deploy/kafka/pom.xml (a test checks): it names the jar cache.
KAFKA_VERSION = "4.1.1"
ENV_CACHE_DIR = "ALERT_ENGINE_CACHE_DIR"

REPO_ROOT = Path(__file__).resolve().parents[1]
KAFKA_DEPLOY_DIR = REPO_ROOT / "deploy" / "kafka"

_LIBS_MARKER = ".complete"
_MVN_TIMEOUT_S = 1200.0
# How often a resolution that prints nothing (one large jar on a slow line) says it still runs.
_TICK_S = 10.0
# Maven's batch-mode transfer log: "Downloaded from central: https://…/x.jar (12 kB at 3 MB/s)".
_DOWNLOADED = re.compile(r"Downloaded from [^:]+: (?P<url>\S+)(?: \((?P<size>[^ ]+ [kMG]?B)\b)?")
_MVN_TAIL_LINES = 30


def kafka_libs_dir() -> Path:
    """Where the broker's jars are cached (whether or not they are there yet)."""
    cache = os.environ.get(ENV_CACHE_DIR)
    root = Path(cache).expanduser() if cache else REPO_ROOT / ".cache"
    return root.resolve() / f"kafka-{KAFKA_VERSION}" / "libs"


def _pom_digest(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def _libs_complete(libs: Path, digest: str) -> bool:
    marker = libs / _LIBS_MARKER
    try:
        return marker.read_text().strip() == digest
    except OSError:
        return False


def _log_progress(line: str) -> None:
    log.info("%s", line)


def ensure_kafka_libs(
    progress: Callable[[str], None] = _log_progress, *, tick_s: float = _TICK_S
) -> Path:
    """Resolve the broker's jars with Maven unless a complete copy is already cached.

    The marker file is written last and holds the pom's digest, so an interrupted copy or a
    changed pom is resolved again. A file lock makes concurrent callers (parallel test runs)
    wait for one resolution instead of overwriting each other's jars. `progress` is told, a line
    at a time, what the resolution does; with a complete cache it is told nothing.
    """
    libs = kafka_libs_dir()
    pom = KAFKA_DEPLOY_DIR / "pom.xml"
    if not pom.is_file():
        raise StackError(f"cannot resolve Kafka's jars: {pom} is missing")
    digest = _pom_digest(pom)
    if _libs_complete(libs, digest):
        return libs

    hint = "run `make setup` (it installs openjdk-17-jre-headless and maven)"
    mvn = require_tool("mvn", hint)
    require_tool("java", hint)
    libs.parent.mkdir(parents=True, exist_ok=True)
    with open(libs.parent / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"waiting for another process resolving Kafka {KAFKA_VERSION}'s jars")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if _libs_complete(libs, digest):
            return libs
        shutil.rmtree(libs, ignore_errors=True)
        # Batch mode without -q: Maven then logs each transfer, which is the progress we show.
        cmd = [
            mvn,
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={libs}",
        ]
        progress(f"resolving Kafka {KAFKA_VERSION}'s jars with Maven into {libs}")
        code, output = _run_mvn(cmd, progress, tick_s)
        if code != 0 or not any(libs.glob("kafka_2.13-*.jar")):
            tail = "\n".join(output[-_MVN_TAIL_LINES:])
            raise StackError(
                f"mvn could not resolve Kafka's jars (exit {code}): {shlex.join(cmd)}\n{tail}"
            )
        (libs / _LIBS_MARKER).write_text(digest + "\n")
        progress(f"Kafka's jars are ready in {libs}")
    return libs


def _run_mvn(
    cmd: list[str], progress: Callable[[str], None], tick_s: float
) -> tuple[int, list[str]]:
    """Run Maven to its end, telling `progress` of each download and, every `tick_s` seconds
    without one, of the time so far. Its exit code and every line it printed."""
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    lines: queue.Queue[str | None] = queue.Queue()
    assert proc.stdout is not None
    # A reader thread, because a pipe read cannot time out and the ticks must go on meanwhile.
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    output: list[str] = []
    downloads = 0
    last_said = started
    try:
        while True:
            elapsed = time.monotonic() - started
            if elapsed > _MVN_TIMEOUT_S:
                raise StackError(
                    f"mvn did not finish resolving Kafka's jars within {_MVN_TIMEOUT_S:.0f}s: "
                    f"{shlex.join(cmd)}"
                )
            try:
                wait_s = max(0.05, last_said + tick_s - time.monotonic())
                line = lines.get(timeout=wait_s)
            except queue.Empty:
                progress(f"  still resolving: {elapsed:.0f}s so far, {downloads} files downloaded")
                last_said = time.monotonic()
                continue
            if line is None:
                break
            output.append(line)
            downloaded = _DOWNLOADED.search(line)
            if downloaded is not None:
                downloads += 1
                name = downloaded["url"].rsplit("/", 1)[-1]
                size = f" ({downloaded['size']})" if downloaded["size"] else ""
                progress(f"  downloaded {name}{size}")
                last_said = time.monotonic()
        return proc.wait(), output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _read_lines(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    with stream:
        for line in stream:
            lines.put(line.rstrip("\n"))
    lines.put(None)
