"""Start and stop the local infrastructure: one Kafka broker (KRaft) and one Redis, on loopback,
and for the outcome history one PostgreSQL (`devstack.postgres`) when asked (`up` starts it).

Tests, the demo and CI use this instead of Docker. Kafka runs from Maven Central jars
(``deploy/kafka/pom.xml``, cached by :func:`ensure_kafka_libs`) on a plain ``java``; Redis is the
Debian ``redis-server``. Both listen on free 127.0.0.1 ports chosen at their first start, so several
stacks can run side by side, and keep those ports across a restart of the same object (fault
tests kill a server and start it again under the same address).

Measured on the 2-core development machine (time until a metadata request / PING answers):
Kafka about 3 s on a fresh data dir (1 s of it is the storage format), about 2 s when restarted
after stop(), about 6 s when restarted after kill() (see broker.session.timeout.ms below); Redis
about 35 ms. A cold jar cache adds the Maven download (~45 MB) once.

Command line::

    python -m devstack.stack up [--workdir DIR]   # start all, print `export` lines, block
    python -m devstack.stack libs                 # only resolve the Kafka jars
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import concurrent.futures
import contextlib
import ctypes
import fcntl
import hashlib
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import redis
from aiokafka.admin import AIOKafkaAdminClient

__all__ = [
    "ENV_DATABASE_URL",
    "ENV_KAFKA_BOOTSTRAP",
    "ENV_REDIS_URL",
    "KAFKA_VERSION",
    "Endpoints",
    "KafkaBroker",
    "LocalStack",
    "RedisServer",
    "StackError",
    "StopRequested",
    "die_with_parent",
    "endpoints_from_env",
    "ensure_kafka_libs",
    "kafka_libs_dir",
    "main",
    "running_stack",
    "stop_on_signals",
]

log = logging.getLogger(__name__)

# Must match <kafka.version> in deploy/kafka/pom.xml (a test checks): it names the jar cache.
KAFKA_VERSION = "4.1.1"

ENV_KAFKA_BOOTSTRAP = "ALERT_ENGINE_KAFKA_BOOTSTRAP"
ENV_REDIS_URL = "ALERT_ENGINE_REDIS_URL"
ENV_DATABASE_URL = "ALERT_ENGINE_DATABASE_URL"
ENV_CACHE_DIR = "ALERT_ENGINE_CACHE_DIR"

REPO_ROOT = Path(__file__).resolve().parents[1]
KAFKA_DEPLOY_DIR = REPO_ROOT / "deploy" / "kafka"

_HOST = "127.0.0.1"
# Ports other software on a developer machine expects to own; the kernel's ephemeral range
# rarely hands them out, but a clash would be confusing enough to rule out.
_AVOID_PORTS = frozenset({1883, 2181, 3306, 4222, 5432, 5672, 6379, 8080, 9092, 9093})
_LOG_TAIL_LINES = 40
_LIBS_MARKER = ".complete"
_MVN_TIMEOUT_S = 1200.0
_PR_SET_PDEATHSIG = 1

_T = TypeVar("_T")


class StackError(RuntimeError):
    """A piece of the local stack could not be set up, started or reached."""


@dataclass(frozen=True)
class Endpoints:
    """Where the running Kafka and Redis (and PostgreSQL, if the stack has it) can be reached."""

    kafka_bootstrap: str
    redis_url: str
    database_url: str | None = None

    def as_env(self) -> dict[str, str]:
        env = {ENV_KAFKA_BOOTSTRAP: self.kafka_bootstrap, ENV_REDIS_URL: self.redis_url}
        if self.database_url is not None:
            env[ENV_DATABASE_URL] = self.database_url
        return env


def endpoints_from_env() -> Endpoints | None:
    """Endpoints of an already running stack, if both environment variables name one."""
    bootstrap = os.environ.get(ENV_KAFKA_BOOTSTRAP, "").strip()
    redis_url = os.environ.get(ENV_REDIS_URL, "").strip()
    database_url = os.environ.get(ENV_DATABASE_URL, "").strip() or None
    if bootstrap and redis_url:
        return Endpoints(kafka_bootstrap=bootstrap, redis_url=redis_url, database_url=database_url)
    return None


# --------------------------------------------------------------------------- Kafka jars


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


def _require_tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise StackError(f"`{name}` is not on PATH; {hint}")
    return path


def ensure_kafka_libs() -> Path:
    """Resolve the broker's jars with Maven unless a complete copy is already cached.

    The marker file is written last and holds the pom's digest, so an interrupted copy or a
    changed pom is resolved again. A file lock makes concurrent callers (parallel test runs)
    wait for one resolution instead of overwriting each other's jars.
    """
    libs = kafka_libs_dir()
    pom = KAFKA_DEPLOY_DIR / "pom.xml"
    if not pom.is_file():
        raise StackError(f"cannot resolve Kafka's jars: {pom} is missing")
    digest = _pom_digest(pom)
    if _libs_complete(libs, digest):
        return libs

    hint = "run `make setup` (it installs openjdk-17-jre-headless and maven)"
    mvn = _require_tool("mvn", hint)
    _require_tool("java", hint)
    libs.parent.mkdir(parents=True, exist_ok=True)
    with open(libs.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _libs_complete(libs, digest):
            return libs
        shutil.rmtree(libs, ignore_errors=True)
        cmd = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={libs}",
        ]
        log.info("resolving Kafka %s jars into %s", KAFKA_VERSION, libs)
        try:
            done = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=_MVN_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise StackError(
                f"mvn did not finish resolving Kafka's jars within {_MVN_TIMEOUT_S:.0f}s: "
                f"{shlex.join(cmd)}"
            ) from exc
        if done.returncode != 0 or not any(libs.glob("kafka_2.13-*.jar")):
            tail = "\n".join(done.stdout.splitlines()[-30:])
            raise StackError(
                f"mvn could not resolve Kafka's jars (exit {done.returncode}): "
                f"{shlex.join(cmd)}\n{tail}"
            )
        (libs / _LIBS_MARKER).write_text(digest + "\n")
    return libs


# --------------------------------------------------------------------------- helpers

_port_lock = threading.Lock()
# Ports this process has handed out: between our probe socket's close() and the server's bind()
# the kernel may offer the same port again, so two stacks in one process could otherwise collide.
_ports_handed_out: set[int] = set()


def _free_ports(count: int) -> list[int]:
    sockets: list[socket.socket] = []
    ports: list[int] = []
    try:
        with _port_lock:
            for _ in range(200):
                if len(ports) == count:
                    break
                # Keeping every probe socket bound until all are chosen makes the ports distinct.
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.bind((_HOST, 0))
                port = int(sock.getsockname()[1])
                if port not in _AVOID_PORTS and port not in _ports_handed_out:
                    ports.append(port)
            if len(ports) < count:
                raise StackError(f"could not find {count} free ports on {_HOST}")
            _ports_handed_out.update(ports)
    finally:
        for sock in sockets:
            sock.close()
    return ports


def _port_accepts(port: int) -> bool:
    try:
        with socket.create_connection((_HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _run_sync(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    # Called from async code (an async test, say): asyncio.run() refuses to nest, so the probe
    # gets a private loop on a helper thread. The caller's loop waits, as in any sync call.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, factory()).result()


def die_with_parent(death_signal: signal.Signals = signal.SIGKILL) -> Callable[[], None] | None:
    """A preexec_fn that has Linux send the child `death_signal` when this process dies.

    atexit covers normal exits; this covers SIGKILL and crashes of the caller. The death signal
    fires when the *thread* that forked exits, so it is only armed from the main thread: a child
    started from a short-lived worker thread would otherwise die with that thread.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not (
        threading.main_thread()
    ):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before fork: the child only calls into it
    parent = os.getpid()

    def arm() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(death_signal))
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return arm


class _Server:
    """A server process in its own process group, logging into one file, stopped at exit."""

    name = "server"

    def __init__(self, workdir: Path, log_name: str) -> None:
        self.workdir = Path(workdir).resolve()
        self.log_path = self.workdir / log_name
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise StackError(f"{self.name} has not been started: its port is chosen by start()")
        return self._port

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self.is_running() and self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def _log_tail(self, offset: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(offset)
                text = fh.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log written)"
        lines = text.splitlines()[-_LOG_TAIL_LINES:]
        return "\n".join(lines) if lines else "(log is empty)"

    def _error(self, what: str, offset: int) -> StackError:
        return StackError(
            f"{self.name} {what}; log: {self.log_path}\n"
            f"--- last lines of the log ---\n{self._log_tail(offset)}"
        )

    def _spawn(self, argv: list[str], **popen: Any) -> None:
        """`popen`: more arguments of Popen (the user to run as, say)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            # Own session: Ctrl-C in a terminal reaches only us, and we stop the server in order.
            try:
                self._proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                    start_new_session=True,
                    preexec_fn=die_with_parent(),
                    **popen,
                )
            except OSError as exc:
                raise StackError(
                    f"{self.name} could not be started: {shlex.join(argv)}: {exc}"
                ) from exc
        atexit.register(self.stop)

    def _signal_group(self, proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        # Only called before the leader is reaped, so its pid (= the group id) cannot be reused.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds. Safe to call at any time, repeatedly."""
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is None or proc.poll() is not None:
            return
        self._signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0fs; killing it", self.name, timeout)
            self._signal_group(proc, signal.SIGKILL)
            proc.wait()

    def kill(self) -> None:
        """SIGKILL, no clean shutdown: for fault tests. Data and port stay for a later start()."""
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is None or proc.poll() is not None:
            return
        self._signal_group(proc, signal.SIGKILL)
        proc.wait()

    def _check_alive(self, offset: int) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            code = self._proc.returncode
            self._proc = None
            atexit.unregister(self.stop)
            raise self._error(f"exited during start-up (exit code {code})", offset)

    def _wait_ready(
        self,
        probe: Callable[[float], bool],
        deadline: float,
        offset: int,
        started: float,
        poll_s: float,
    ) -> None:
        while True:
            self._check_alive(offset)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop(timeout=5.0)
                raise self._error(f"was not ready within {time.monotonic() - started:.0f}s", offset)
            if _port_accepts(self.port) and probe(min(5.0, remaining)):
                log.info(
                    "%s ready on %s:%d in %.1fs (log: %s)",
                    self.name,
                    _HOST,
                    self.port,
                    time.monotonic() - started,
                    self.log_path,
                )
                return
            time.sleep(poll_s)


# --------------------------------------------------------------------------- Kafka


def _new_cluster_id() -> str:
    while True:
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode("ascii")
        # The storage tool's argument parser would read a leading '-' as an option.
        if not cluster_id.startswith("-"):
            return cluster_id


async def _kafka_answers(bootstrap: str, limit_s: float) -> bool:
    client = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=max(1000, int(limit_s * 1000))
    )
    try:
        async with asyncio.timeout(limit_s):
            await client.start()
            info: dict[str, Any] = await client.describe_cluster()
    except Exception:
        # Any failure only means "not yet": a dead process and the deadline are checked apart.
        return False
    finally:
        await client.close()
    return bool(info.get("brokers"))


class KafkaBroker(_Server):
    """A single-node Kafka broker (combined broker and KRaft controller) from Maven jars.

    Files: ``<workdir>/kafka.log`` (format tool and broker output), ``kafka-server.properties``
    and the data in ``kafka-data``. The data dir is formatted once and kept across restarts.
    """

    name = "Kafka broker"

    def __init__(self, workdir: Path, *, libs_dir: Path | None = None, heap_mb: int = 384) -> None:
        if heap_mb <= 0:
            raise ValueError(f"heap_mb must be positive, got {heap_mb}")
        super().__init__(workdir, "kafka.log")
        self.data_dir = self.workdir / "kafka-data"
        self.config_path = self.workdir / "kafka-server.properties"
        self.libs_dir = libs_dir
        self.heap_mb = heap_mb
        self.cluster_id = _new_cluster_id()
        self._controller_port: int | None = None

    @property
    def bootstrap(self) -> str:
        return f"{_HOST}:{self.port}"

    def _properties(self) -> dict[str, str]:
        assert self._port is not None and self._controller_port is not None
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{_HOST}:{self._controller_port}",
            "listeners": f"PLAINTEXT://{_HOST}:{self._port},CONTROLLER://{_HOST}:{self._controller_port}",
            "advertised.listeners": f"PLAINTEXT://{_HOST}:{self._port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            # One node: every internal topic must accept replication factor and min ISR 1, or
            # consumer groups and transactions fail.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # The default 50 partitions make the first consumer group wait ~0.5s longer here
            # while they are created; one node gains nothing from spreading coordinators.
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.num.partitions": "1",
            "group.initial.rebalance.delay.ms": "0",
            # After a kill, the restarted broker cannot register until the controller has
            # expired the dead one's session: 9s by default, measured ~12s to ready. Fault tests
            # kill and restart, so shorten it; 4 heartbeats still fit in the session.
            "broker.heartbeat.interval.ms": "1000",
            "broker.session.timeout.ms": "4000",
            # The cleaner allocates this up front (128 MB by default) and would not fit the heap;
            # it stays on because Faust's changelog topics are compacted.
            "log.cleaner.dedupe.buffer.size": "2097152",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "auto.create.topics.enable": "true",
            "num.partitions": "1",
            "log.retention.hours": "168",
        }

    def _resolve_libs(self) -> Path:
        libs = self.libs_dir if self.libs_dir is not None else ensure_kafka_libs()
        if not any(Path(libs).glob("kafka_2.13-*.jar")):
            raise StackError(f"{self.name}: no Kafka jars (kafka_2.13-*.jar) in {libs}")
        return Path(libs).resolve()

    def _jvm(self, java: str, libs: Path, heap_mb: int) -> list[str]:
        log4j = KAFKA_DEPLOY_DIR / "log4j2.properties"
        if not log4j.is_file():
            raise StackError(f"{self.name}: logging config {log4j} is missing")
        return [
            java,
            f"-Xms{min(64, heap_mb)}m",
            f"-Xmx{heap_mb}m",
            "-XX:+UseSerialGC",
            "-XX:+ExitOnOutOfMemoryError",
            # C1 only: ready in 2.2s instead of 2.4-2.7s here (3 runs each), and a local broker
            # never runs long enough for C2's better code to pay off.
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{libs}/*",
        ]

    def _format(self, java: str, libs: Path, deadline: float, offset: int) -> None:
        # --ignore-formatted keeps an existing data dir (and its cluster id) on restart. No
        # --standalone: Kafka 4.1 rejects it together with a static controller.quorum.voters.
        cmd = [
            *self._jvm(java, libs, heap_mb=128),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            self.cluster_id,
            "-c",
            str(self.config_path),
            "--ignore-formatted",
        ]
        with open(self.log_path, "ab") as log_file:
            try:
                done = subprocess.run(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                    timeout=max(1.0, deadline - time.monotonic()),
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise self._error("storage format timed out", offset) from exc
        if done.returncode != 0:
            raise self._error(f"storage format failed (exit {done.returncode})", offset)

    def start(self, timeout: float = 90.0) -> None:
        """Resolve jars if needed, format storage, start the JVM and wait until it answers."""
        if self.is_running():
            return
        started = time.monotonic()
        deadline = started + timeout
        java = _require_tool("java", "run `make setup` (it installs openjdk-17-jre-headless)")
        libs = self._resolve_libs()
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Ports picked now can be taken by someone else before the JVM binds them: then retry
        # with new ones. Ports kept from an earlier start stay, because clients know them.
        attempts = 3 if self._port is None else 1
        for attempt in range(1, attempts + 1):
            if self._port is None:
                self._port, self._controller_port = _free_ports(2)
            offset = self._log_size()
            self.config_path.write_text(
                "".join(f"{key}={value}\n" for key, value in self._properties().items())
            )
            # A formatted dir needs no second format: skipping it saves a JVM start (~1s here) on
            # every restart.
            if not (self.data_dir / "meta.properties").is_file():
                self._format(java, libs, deadline, offset)
            self._spawn(
                [*self._jvm(java, libs, self.heap_mb), "kafka.Kafka", str(self.config_path)]
            )
            try:
                self._wait_ready(
                    lambda t: _run_sync(lambda: _kafka_answers(self.bootstrap, t)),
                    deadline,
                    offset,
                    started,
                    poll_s=0.1,
                )
                return
            except StackError:
                port_taken = "Address already in use" in self._log_tail(offset)
                if attempt == attempts or not port_taken:
                    raise
                log.info("%s: port taken before the broker bound it, retrying", self.name)
                self._port = self._controller_port = None


# --------------------------------------------------------------------------- Redis


class RedisServer(_Server):
    """A ``redis-server`` with its data in ``<workdir>/redis`` and log in ``redis.log``.

    With ``appendonly`` (the default) every write goes to the AOF, fsynced each second, so a
    killed and restarted server keeps its data, as the dedup state needs.
    """

    name = "Redis server"

    def __init__(self, workdir: Path, *, appendonly: bool = True) -> None:
        super().__init__(workdir, "redis.log")
        self.data_dir = self.workdir / "redis"
        self.appendonly = appendonly

    @property
    def url(self) -> str:
        return f"redis://{_HOST}:{self.port}/0"

    def _answers(self, timeout: float) -> bool:
        client = redis.Redis(
            host=_HOST, port=self.port, socket_connect_timeout=timeout, socket_timeout=timeout
        )
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            # Includes BusyLoadingError while a large AOF is replayed.
            return False
        finally:
            client.close()

    def start(self, timeout: float = 20.0) -> None:
        """Start ``redis-server`` and wait until it answers PING."""
        if self.is_running():
            return
        started = time.monotonic()
        server = _require_tool(
            "redis-server", "run `make setup` (it apt-get installs redis-server)"
        )
        if self._port is None:
            (self._port,) = _free_ports(1)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        offset = self._log_size()
        self._spawn(
            [
                server,
                "--port",
                str(self._port),
                "--bind",
                _HOST,
                "--dir",
                str(self.data_dir),
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                "everysec",
                # No RDB snapshots: the AOF is the persistence, and fork()ing for a snapshot on
                # a busy 2-core machine only adds latency.
                "--save",
                "",
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
            ]
        )
        self._wait_ready(self._answers, started + timeout, offset, started, poll_s=0.02)


# --------------------------------------------------------------------------- the stack


class LocalStack:
    """Kafka and Redis together (and PostgreSQL with `with_postgres`), in ``workdir`` or in a
    fresh temporary dir removed on stop."""

    def __init__(self, workdir: Path | None = None, *, with_postgres: bool = False) -> None:
        self._owns_workdir = workdir is None
        self.workdir = (
            Path(tempfile.mkdtemp(prefix="alert-engine-stack-"))
            if workdir is None
            else Path(workdir).resolve()
        )
        self._cleanup = self._arm_cleanup()
        self.kafka = KafkaBroker(self.workdir)
        self.redis = RedisServer(self.workdir)
        # Imported here: devstack.postgres builds on this module's server class.
        from devstack.postgres import PostgresServer

        self.postgres = PostgresServer(self.workdir) if with_postgres else None

    def _arm_cleanup(self) -> weakref.finalize[..., LocalStack] | None:
        # finalize also runs at interpreter exit, so an un-stopped stack leaves no temp dir.
        if not self._owns_workdir:
            return None
        return weakref.finalize(self, shutil.rmtree, self.workdir, True)

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(
            kafka_bootstrap=self.kafka.bootstrap,
            redis_url=self.redis.url,
            database_url=self.postgres.url if self.postgres is not None else None,
        )

    @property
    def servers(self) -> list[_Server]:
        return [self.kafka, self.redis, *([self.postgres] if self.postgres is not None else [])]

    def start(self) -> Endpoints:
        if self._owns_workdir and (self._cleanup is None or not self._cleanup.alive):
            self.workdir.mkdir(parents=True, exist_ok=True)
            self._cleanup = self._arm_cleanup()
        try:
            self.redis.start()
            if self.postgres is not None:
                self.postgres.start()
            self.kafka.start()
        except BaseException as exc:
            for server in self.servers:
                server.stop()
            if self._cleanup is not None:
                if isinstance(exc, StackError) and any(self.workdir.glob("*.log")):
                    # The log the error points to lives there: keep it.
                    self._cleanup.detach()
                else:
                    self._cleanup()
            raise
        return self.endpoints

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        if self._cleanup is not None:
            self._cleanup()

    def __enter__(self) -> Endpoints:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_stack(
    workdir: Path | None = None, *, with_postgres: bool = False
) -> Iterator[Endpoints]:
    """The stack named by the environment if there is one, else a LocalStack for the block."""
    external = endpoints_from_env()
    if external is not None:
        yield external
        return
    with LocalStack(workdir, with_postgres=with_postgres) as endpoints:
        yield endpoints


# --------------------------------------------------------------------------- command line


class StopRequested(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived inside `stop_on_signals`.

    A KeyboardInterrupt: raised in whatever asyncio task runs when the signal arrives, asyncio
    re-raises only KeyboardInterrupt and SystemExit out of the loop. Any other exception, even a
    BaseException, only ends that task (a producer's sender, a thread's waiter) and leaves the
    demo running as if no signal had come."""


def _request_stop(signum: int, frame: FrameType | None) -> None:
    # Only the first signal interrupts: a second Ctrl-C must not abort the clean shutdown.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise StopRequested(signum)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGINT raise `StopRequested` in the block, so that its `finally` and `with`
    exits stop every child it started. SIGTERM's default action would end this process at once
    and leave the children that no death signal covers running."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    # Raising from the handler also interrupts a start in progress, whose cleanup then runs.
    for sig in previous:
        signal.signal(sig, _request_stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run_up(workdir: Path | None) -> int:
    stack = LocalStack(workdir, with_postgres=True)
    try:
        with stop_on_signals(), stack as endpoints:
            for key, value in endpoints.as_env().items():
                print(f"export {key}={shlex.quote(value)}")
            sys.stdout.flush()
            print(f"# logs and data in {stack.workdir}; Ctrl-C stops", file=sys.stderr, flush=True)
            while True:
                time.sleep(1.0)
                for server in stack.servers:
                    if not server.is_running():
                        print(
                            f"error: {server.name} exited unexpectedly; log: {server.log_path}",
                            file=sys.stderr,
                        )
                        return 1
    except StopRequested:
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description="Run the local Kafka broker, Redis and PostgreSQL for the tests and the demo.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser(
        "up",
        help="start Kafka, Redis and PostgreSQL, print their endpoints, run until interrupted",
    )
    up.add_argument(
        "--workdir", type=Path, help="keep data and logs here (default: a temp dir, removed)"
    )
    commands.add_parser("libs", help="only resolve the Kafka jars into the cache")
    args = parser.parse_args(argv)
    try:
        if args.command == "libs":
            print(ensure_kafka_libs(), flush=True)
            return 0
        workdir: Path | None = args.workdir
        return _run_up(workdir)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
