"""The local stack against real processes: a Kafka broker from the jar cache and redis-server."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import IO

import psycopg
import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devstack import kafka_libs
from devstack.errors import StackError
from devstack.kafka import KafkaBroker
from devstack.redis_server import RedisServer
from devstack.stack import (
    ENV_DATABASE_URL,
    ENV_KAFKA_BOOTSTRAP,
    ENV_REDIS_URL,
    Endpoints,
    LocalStack,
    endpoints_from_env,
    running_stack,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def _children() -> set[int]:
    """Pids of this process's live children (Linux /proc)."""
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids.update(int(pid) for pid in (task / "children").read_text().split())
        except FileNotFoundError:  # the thread ended while we looked
            continue
    return pids


def _process_gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    # An orphan waits as a zombie until init reaps it, which a container's init may never do.
    return "\nState:\tZ" in status


def _wait_gone(pids: list[int], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not all(_process_gone(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _port_free(port: int) -> bool:
    # SO_REUSEADDR as every server sets it: a closed server's TIME_WAIT sockets do not count.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
    return True


def _port_of(address: str) -> int:
    match = re.search(r":(\d+)", address.rsplit("@", 1)[-1])
    assert match, address
    return int(match.group(1))


def _lines_of(stream: IO[str] | None) -> queue.Queue[str]:
    """The lines of a child's pipe as they come. A reader thread, because a pipe read cannot time
    out and a hung child must fail the test."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in stream or ():
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


async def _produce(bootstrap: str, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"k")
    finally:
        await producer.stop()


async def _consume_one(bootstrap: str, topic: str) -> bytes | None:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        message = await asyncio.wait_for(consumer.getone(), timeout=30)
        await consumer.commit()
        value: bytes | None = message.value
        return value
    finally:
        await consumer.stop()


def test_kafka_version_matches_pom() -> None:
    pom = (REPO_ROOT / "deploy" / "kafka" / "pom.xml").read_text()
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    assert match and match.group(1) == kafka_libs.KAFKA_VERSION


@pytest.mark.integration
def test_local_stack_round_trip() -> None:
    topic = f"stack-{uuid.uuid4().hex[:8]}"
    local = LocalStack()
    with local as endpoints:
        assert re.fullmatch(r"127\.0\.0\.1:\d+", endpoints.kafka_bootstrap)
        assert re.fullmatch(r"redis://127\.0\.0\.1:\d+/0", endpoints.redis_url)
        assert endpoints.as_env() == {
            ENV_KAFKA_BOOTSTRAP: endpoints.kafka_bootstrap,
            ENV_REDIS_URL: endpoints.redis_url,
        }
        pids = [local.kafka.pid, local.redis.pid]
        assert all(pid is not None and pid in _children() for pid in pids)
        ports = [_port_of(endpoints.kafka_bootstrap), _port_of(endpoints.redis_url)]

        asyncio.run(_produce(endpoints.kafka_bootstrap, topic, b"hello"))
        assert asyncio.run(_consume_one(endpoints.kafka_bootstrap, topic)) == b"hello"

        client = redis.Redis.from_url(endpoints.redis_url)
        try:
            client.set("stack:key", "value")
            assert client.get("stack:key") == b"value"
        finally:
            client.close()
        assert (local.workdir / "kafka.log").stat().st_size > 0

    assert all(pid is not None and _process_gone(pid) for pid in pids)
    assert all(_port_free(port) for port in ports)
    assert not local.workdir.exists()
    local.stop()  # idempotent


@pytest.mark.integration
def test_killed_servers_restart_on_same_address_with_their_data(tmp_path: Path) -> None:
    topic = f"restart-{uuid.uuid4().hex[:8]}"
    kafka = KafkaBroker(tmp_path)
    cache = RedisServer(tmp_path)
    try:
        cache.start()
        kafka.start()
        bootstrap, url = kafka.bootstrap, cache.url
        asyncio.run(_produce(bootstrap, topic, b"survives"))
        client = redis.Redis.from_url(url)
        client.set("stack:durable", "yes")
        client.close()

        pids = [kafka.pid, cache.pid]
        kafka.kill()
        cache.kill()
        assert all(pid is not None and _process_gone(pid) for pid in pids)
        assert not kafka.is_running() and not cache.is_running()

        cache.start()
        kafka.start()
        assert (kafka.bootstrap, cache.url) == (bootstrap, url)
        assert asyncio.run(_consume_one(bootstrap, topic)) == b"survives"
        client = redis.Redis.from_url(url)
        assert client.get("stack:durable") == b"yes"
        client.close()
    finally:
        kafka.stop()
        cache.stop()
    kafka.stop()  # both are no-ops once stopped
    cache.kill()


def test_endpoints_from_env_needs_both_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_KAFKA_BOOTSTRAP, raising=False)
    monkeypatch.setenv(ENV_REDIS_URL, "redis://cache.internal:6400/1")
    assert endpoints_from_env() is None
    monkeypatch.setenv(ENV_KAFKA_BOOTSTRAP, "broker-a:9092,broker-b:9092")
    assert endpoints_from_env() == Endpoints(
        "broker-a:9092,broker-b:9092", "redis://cache.internal:6400/1"
    )


def test_running_stack_uses_env_and_starts_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENV_KAFKA_BOOTSTRAP, "127.0.0.1:1")
    monkeypatch.setenv(ENV_REDIS_URL, "redis://127.0.0.1:2/0")
    before = _children()
    started = time.monotonic()
    with running_stack(tmp_path / "unused") as endpoints:
        assert endpoints == Endpoints("127.0.0.1:1", "redis://127.0.0.1:2/0")
        assert _children() == before
    assert time.monotonic() - started < 1.0
    assert not (tmp_path / "unused").exists()


@pytest.mark.integration
def test_broker_that_dies_at_start_raises_with_its_log(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        KafkaBroker(tmp_path, heap_mb=0)
    # A 1 MB heap passes our check but the JVM refuses it at once: a real start-up failure.
    broker = KafkaBroker(tmp_path, heap_mb=1)
    started = time.monotonic()
    with pytest.raises(StackError) as failure:
        broker.start(timeout=60)
    message = str(failure.value)
    assert "exited during start-up" in message
    assert str(tmp_path / "kafka.log") in message
    assert "Too small maximum heap" in message
    assert time.monotonic() - started < 30
    assert not broker.is_running() and broker.pid is None
    broker.stop()


def test_missing_libs_dir_raises(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-libs"
    with pytest.raises(StackError, match="no Kafka jars"):
        KafkaBroker(tmp_path, libs_dir=missing).start()
    assert not (tmp_path / "kafka-data").exists()


def test_libs_command_prints_cached_dir() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "devstack", "libs"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    libs = Path(done.stdout.strip())
    assert libs == kafka_libs.kafka_libs_dir()
    assert any(libs.glob("kafka_2.13-*.jar"))


@pytest.mark.integration
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_up_command_prints_exports_and_stops_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    workdir = tmp_path / "up"
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack", "up", "--workdir", str(workdir)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines = _lines_of(proc.stdout)
    try:
        exports: dict[str, str] = {}
        while len(exports) < 3:
            try:
                line = lines.get(timeout=120)
            except queue.Empty:
                pytest.fail(f"`up` printed no endpoints in 120s; exit code {proc.poll()}")
            key, _, value = line.strip().removeprefix("export ").partition("=")
            exports[key] = value
        assert set(exports) == {ENV_KAFKA_BOOTSTRAP, ENV_REDIS_URL, ENV_DATABASE_URL}

        client = redis.Redis.from_url(exports[ENV_REDIS_URL])
        assert client.ping()
        client.close()
        with psycopg.connect(exports[ENV_DATABASE_URL]) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        server_pids = [
            int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        ]
        assert len(server_pids) == 3  # Kafka, Redis, PostgreSQL

        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0
        assert all(_process_gone(pid) for pid in server_pids)
        assert _port_free(_port_of(exports[ENV_KAFKA_BOOTSTRAP]))
        assert _port_free(_port_of(exports[ENV_DATABASE_URL]))
        assert (workdir / "kafka.log").is_file()  # an explicit workdir is kept
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


_ORPHAN_SCRIPT = """
import os, sys, time
from devstack.stack import LocalStack
stack = LocalStack()
stack.start()
print(stack.kafka.pid, stack.redis.pid, stack.workdir, flush=True)
if sys.argv[1] == "exit":
    sys.exit(0)  # no stop(): atexit must clean up
time.sleep(600)
"""


@pytest.mark.integration
@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_servers_do_not_outlive_their_caller(how: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_SCRIPT, how],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        kafka_pid, redis_pid, workdir = proc.stdout.readline().split()
        pids = [int(kafka_pid), int(redis_pid)]
        assert not any(_process_gone(pid) for pid in pids)
        if how == "sigkill":
            proc.kill()
        proc.wait(timeout=60)
        assert _wait_gone(pids)
        if how == "exit":
            assert proc.returncode == 0
            assert not Path(workdir).exists()
        else:  # nothing was left to remove it
            shutil.rmtree(workdir, ignore_errors=True)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# A stand-in for Maven: logs one transfer as `mvn -B` does, then waits for the test's go-ahead
# (so the test sees the progress while the resolution still runs), then "resolves" one jar.
_FAKE_MVN = """#!{python}
import os, pathlib, sys, time
out = next(a for a in sys.argv if a.startswith("-DoutputDirectory=")).split("=", 1)[1]
url = "https://repo.maven.apache.org/maven2/org/apache/kafka/kafka_2.13/4.1.1/kafka_2.13-4.1.1.jar"
print("[INFO] Scanning for projects...", flush=True)
print("Downloading from central: " + url, flush=True)
print("Downloaded from central: " + url + " (6.6 MB at 2.1 MB/s)", flush=True)
go = pathlib.Path(os.environ["FAKE_MVN_GO"])
deadline = time.monotonic() + 60
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.02)
if os.environ.get("FAKE_MVN_FAIL"):
    print("[ERROR] Failed to execute goal: Could not resolve dependencies", flush=True)
    sys.exit(1)
pathlib.Path(out).mkdir(parents=True, exist_ok=True)
(pathlib.Path(out) / "kafka_2.13-4.1.1.jar").write_bytes(b"not really a jar")
"""


@pytest.fixture
def fake_maven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake `mvn` and `java` first on PATH and an empty jar cache; returns the file whose
    creation lets the fake Maven finish."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mvn").write_text(_FAKE_MVN.format(python=sys.executable))
    (bin_dir / "java").write_text("#!/bin/sh\nexit 0\n")
    for tool in ("mvn", "java"):
        (bin_dir / tool).chmod(0o755)
    go = tmp_path / "go"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv(kafka_libs.ENV_CACHE_DIR, str(tmp_path / "cache"))
    monkeypatch.setenv("FAKE_MVN_GO", str(go))
    return go


def _next_line(lines: queue.Queue[str], contains: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail(f"no line with {contains!r} within {timeout:.0f}s")
        if contains in line:
            return line


def test_jar_resolution_reports_downloads_and_time_while_maven_runs(fake_maven: Path) -> None:
    said: queue.Queue[str] = queue.Queue()
    resolved: list[Path] = []
    resolving = threading.Thread(
        target=lambda: resolved.append(kafka_libs.ensure_kafka_libs(said.put, tick_s=0.2))
    )
    resolving.start()
    try:
        assert "resolving Kafka 4.1.1's jars" in _next_line(said, "resolving")
        assert _next_line(said, "downloaded").strip() == "downloaded kafka_2.13-4.1.1.jar (6.6 MB)"
        assert resolving.is_alive()
        # Maven is silent now (a large download, say): the time so far is told instead.
        tick = _next_line(said, "still resolving")
        assert re.fullmatch(r"\s*still resolving: \d+s so far, 1 files downloaded", tick)
        assert resolving.is_alive()
    finally:
        fake_maven.touch()
        resolving.join(timeout=30)
    assert resolved == [kafka_libs.kafka_libs_dir()]
    assert (resolved[0] / "kafka_2.13-4.1.1.jar").is_file()
    assert "ready" in _next_line(said, "ready", timeout=1)

    # A complete cache: nothing to resolve, nothing said.
    again: list[str] = []
    assert kafka_libs.ensure_kafka_libs(again.append) == resolved[0]
    assert again == []


def test_failed_jar_resolution_raises_with_mavens_last_lines(
    fake_maven: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_MVN_FAIL", "1")
    fake_maven.touch()
    with pytest.raises(StackError) as failure:
        kafka_libs.ensure_kafka_libs(lambda line: None)
    assert "mvn could not resolve Kafka's jars (exit 1)" in str(failure.value)
    assert "Could not resolve dependencies" in str(failure.value)
    assert not any(kafka_libs.kafka_libs_dir().glob("*.jar"))


def test_libs_command_shows_progress_before_maven_finishes(fake_maven: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack", "libs"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr = _lines_of(proc.stderr)
    try:
        assert "downloaded kafka_2.13-4.1.1.jar" in _next_line(stderr, "downloaded")
        assert proc.poll() is None  # the line came while Maven still ran
        fake_maven.touch()
        assert proc.stdout is not None
        out = proc.stdout.read()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert Path(out.strip()) == kafka_libs.kafka_libs_dir()
