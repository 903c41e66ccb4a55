"""A single-node Kafka broker (KRaft: broker and controller in one JVM) from the cached Maven
jars (`devstack.kafka_libs`), on a plain ``java``.

Measured on the 2-core development machine (time until a metadata request answers): about 3 s on
a fresh data dir (1 s of it is the storage format), about 2 s when restarted after stop(), about
6 s when restarted after kill() (see broker.session.timeout.ms below).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import logging
import os
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient

from devstack.errors import StackError
from devstack.kafka_libs import KAFKA_DEPLOY_DIR, ensure_kafka_libs
from devstack.ports import HOST, free_ports
from devstack.supervisor import Server, require_tool

__all__ = ["KafkaBroker", "kafka_answers", "new_cluster_id", "run_sync"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


def new_cluster_id() -> str:
    """A random KRaft cluster id the storage tool accepts."""
    while True:
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode("ascii")
        # The storage tool's argument parser would read a leading '-' as an option.
        if not cluster_id.startswith("-"):
            return cluster_id


def run_sync(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run the coroutine `factory` makes to its end, from sync code or from inside a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    # Called from async code (an async test, say): asyncio.run() refuses to nest, so the probe
    # gets a private loop on a helper thread. The caller's loop waits, as in any sync call.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, factory()).result()


async def kafka_answers(bootstrap: str, limit_s: float) -> bool:
    """Whether the cluster at `bootstrap` lists a broker within `limit_s` seconds."""
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


class KafkaBroker(Server):
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
        self.cluster_id = new_cluster_id()
        self._controller_port: int | None = None

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def _properties(self) -> dict[str, str]:
        assert self._port is not None and self._controller_port is not None
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{self._controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{self._port},CONTROLLER://{HOST}:{self._controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self._port}",
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
        self._run_step("storage format", cmd, deadline, offset, cwd=self.workdir)

    def _launch(self, java: str, libs: Path, deadline: float) -> int:
        """Write the config, format the storage on first start and start the JVM, without
        waiting for it. Returns the log offset to report start-up errors from."""
        offset = self._log_size()
        self.config_path.write_text(
            "".join(f"{key}={value}\n" for key, value in self._properties().items())
        )
        # A formatted dir needs no second format: skipping it saves a JVM start (~1s here) on
        # every restart.
        if not (self.data_dir / "meta.properties").is_file():
            self._format(java, libs, deadline, offset)
        self._spawn([*self._jvm(java, libs, self.heap_mb), "kafka.Kafka", str(self.config_path)])
        return offset

    def _wait_answering(self, deadline: float, offset: int, started: float, poll_s: float) -> None:
        """Until the broker answers a metadata request."""
        self._wait_ready(
            lambda t: run_sync(lambda: kafka_answers(self.bootstrap, t)),
            deadline,
            offset,
            started,
            poll_s=poll_s,
        )

    def start(self, timeout: float = 90.0) -> None:
        """Resolve jars if needed, format storage, start the JVM and wait until it answers."""
        if self.is_running():
            return
        started = time.monotonic()
        deadline = started + timeout
        java = require_tool("java", "run `make setup` (it installs openjdk-17-jre-headless)")
        libs = self._resolve_libs()
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Ports picked now can be taken by someone else before the JVM binds them: then retry
        # with new ones. Ports kept from an earlier start stay, because clients know them.
        attempts = 3 if self._port is None else 1
        for attempt in range(1, attempts + 1):
            if self._port is None:
                self._port, self._controller_port = free_ports(2)
            offset = self._launch(java, libs, deadline)
            try:
                self._wait_answering(deadline, offset, started, poll_s=0.1)
                return
            except StackError:
                port_taken = "Address already in use" in self._log_tail(offset)
                if attempt == attempts or not port_taken:
                    raise
                log.info("%s: port taken before the broker bound it, retrying", self.name)
                self._port = self._controller_port = None
