"""A three-broker Kafka cluster in KRaft mode, and Redis, on loopback: what a deployment that has
outgrown one broker runs, small enough for a fault test.

Each node is a broker and a KRaft controller at once (`process.roles=broker,controller`), all
three are voters of the metadata quorum, and every topic is replicated to all three with
`min.insync.replicas` 2: with the producer's acks=all a write is kept by two brokers before it
is acknowledged, one broker may be down without stopping writes, and none is lost when one
fails. The nodes run from the same Maven jars as the single broker of `devstack.kafka`, with
small heaps, on free 127.0.0.1 ports chosen once and kept across a node's restart.

Command line::

    python -m devstack.cluster up [--workdir DIR]   # start the cluster and Redis, print exports
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import shutil
import sys
import tempfile
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from aiokafka.admin import AIOKafkaAdminClient

from devstack.errors import StackError
from devstack.foreground import run_until_stopped, workdir_option
from devstack.kafka import KafkaBroker, new_cluster_id, run_sync
from devstack.ports import HOST, free_ports
from devstack.redis_server import RedisServer
from devstack.stack import Endpoints
from devstack.supervisor import Server, require_tool

__all__ = ["ClusterNode", "ClusterStack", "KafkaCluster", "PartitionReplicas", "main"]

CLUSTER_SIZE = 3
# Replicas that must have a write before it is acknowledged (with acks=all).
MIN_INSYNC_REPLICAS = 2
HEAP_MB = 256

log = logging.getLogger(__name__)


class ClusterNode(KafkaBroker):
    """One node of a `KafkaCluster`: broker and controller, in ``<workdir>/node-<id>``."""

    def __init__(
        self,
        workdir: Path,
        node_id: int,
        *,
        cluster_id: str,
        port: int,
        controller_port: int,
        heap_mb: int = HEAP_MB,
    ) -> None:
        super().__init__(workdir / f"node-{node_id}", heap_mb=heap_mb)
        self.name = f"Kafka node {node_id}"
        self.node_id = node_id
        self.cluster_id = cluster_id
        self._port = port
        self._controller_port = controller_port
        self.voters = ""  # set by the cluster once every node's controller port is known

    @property
    def controller_port(self) -> int:
        assert self._controller_port is not None
        return self._controller_port

    @property
    def quorum_state_path(self) -> Path:
        """Where the node's KRaft client records the last leader and epoch it knows of."""
        return self.data_dir / "__cluster_metadata-0" / "quorum-state"

    def _properties(self) -> dict[str, str]:
        replicas = str(CLUSTER_SIZE)
        min_isr = str(MIN_INSYNC_REPLICAS)
        return {
            **super()._properties(),
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.voters,
            # Every topic, the internal ones included, on all three brokers; a write is
            # acknowledged (acks=all) once two have it.
            "default.replication.factor": replicas,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": min_isr,
            # A replica that has lost its log may never lead: it would drop acknowledged writes.
            "unclean.leader.election.enable": "false",
            # A follower that stops fetching leaves the ISR after this long (Kafka's default
            # is 30 s): the partition's writes then wait on the two that are left, not on it.
            "replica.lag.time.max.ms": "10000",
        }

    def launch(self, deadline: float) -> int:
        """Format the storage on first start and start the JVM, without waiting for it: a node
        cannot answer before a majority of the quorum is up. Returns the log offset to report
        start-up errors from."""
        java = require_tool("java", "run `make setup` (it installs openjdk-17-jre-headless)")
        libs = self._resolve_libs()
        self.workdir.mkdir(parents=True, exist_ok=True)
        return self._launch(java, libs, deadline)

    def wait_answering(self, deadline: float, offset: int, started: float) -> None:
        """Until the node answers a metadata request (it has joined the cluster)."""
        self._wait_answering(deadline, offset, started, poll_s=0.2)

    def start(self, timeout: float = 90.0) -> None:
        """Start this node again while the others run (after `stop` or `kill`)."""
        if self.is_running():
            return
        started = time.monotonic()
        offset = self.launch(started + timeout)
        self.wait_answering(started + timeout, offset, started)

    def known_leader(self) -> tuple[int, int] | None:
        """(epoch, node id) of the quorum leader this node last recorded, if any."""
        try:
            state: dict[str, Any] = json.loads(self.quorum_state_path.read_text())
        except (OSError, ValueError):
            return None
        leader, epoch = int(state.get("leaderId", -1)), int(state.get("leaderEpoch", -1))
        return (epoch, leader) if leader >= 0 else None


@dataclass(frozen=True)
class PartitionReplicas:
    """A partition as the cluster's metadata describes it."""

    topic: str
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]

    @property
    def fully_replicated(self) -> bool:
        return set(self.isr) == set(self.replicas)


class KafkaCluster:
    """Three `ClusterNode`s under ``workdir``: started together, stopped together."""

    # The nodes' replication settings (factor 3, min ISR 2) are written for three.
    size = CLUSTER_SIZE

    def __init__(self, workdir: Path, *, heap_mb: int = HEAP_MB) -> None:
        self.workdir = Path(workdir).resolve()
        self.heap_mb = heap_mb
        self.nodes: list[ClusterNode] = []

    @property
    def bootstrap(self) -> str:
        if not self.nodes:
            raise StackError("the cluster has not been started: its ports are chosen by start()")
        return ",".join(node.bootstrap for node in self.nodes)

    def node(self, node_id: int) -> ClusterNode:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise KeyError(f"no node {node_id} in the cluster")

    def running(self) -> list[ClusterNode]:
        return [node for node in self.nodes if node.is_running()]

    def start(self, timeout: float = 120.0) -> None:
        """Start every node and wait until each answers and all brokers are registered."""
        started = time.monotonic()
        deadline = started + timeout
        # Ports picked now can be taken by another process before a JVM binds them: then the
        # first start is tried again on new ones. A cluster started before keeps its ports.
        attempts = 3 if not self.nodes else 1
        for attempt in range(1, attempts + 1):
            if not self.nodes:
                self._place_nodes()
            try:
                self._start_nodes(started, deadline)
                return
            except StackError as exc:
                self.stop()
                if attempt == attempts or "Address already in use" not in str(exc):
                    raise
                log.info("a port was taken before the cluster bound it, retrying")
                for node in self.nodes:
                    shutil.rmtree(node.workdir, ignore_errors=True)
                self.nodes = []
            except BaseException:
                self.stop()
                raise

    def _place_nodes(self) -> None:
        ports = free_ports(2 * self.size)
        cluster_id = new_cluster_id()
        self.nodes = [
            ClusterNode(
                self.workdir,
                node_id,
                cluster_id=cluster_id,
                port=ports[2 * index],
                controller_port=ports[2 * index + 1],
                heap_mb=self.heap_mb,
            )
            for index, node_id in enumerate(range(1, self.size + 1))
        ]
        voters = ",".join(f"{n.node_id}@{HOST}:{n.controller_port}" for n in self.nodes)
        for node in self.nodes:
            node.voters = voters

    def _start_nodes(self, started: float, deadline: float) -> None:
        # All at once: none answers before a majority of the quorum runs.
        launched = [(node, node.launch(deadline)) for node in self.nodes if not node.is_running()]
        for node, offset in launched:
            node.wait_answering(deadline, offset, started)
        self.wait_brokers(self.size, max(1.0, deadline - time.monotonic()))

    def stop(self) -> None:
        """SIGTERM to every node at once, SIGKILL to any still running 15 s later. One by one,
        the last nodes would wait on a quorum that the first ones took away."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(self.nodes))) as pool:
            for stopped in [pool.submit(node.stop) for node in self.nodes]:
                stopped.result()

    def kill(self, node_id: int) -> ClusterNode:
        """SIGKILL one node: no controlled shutdown, its leaderships move only once the
        controller notices (`broker.session.timeout.ms`, 4 s here)."""
        node = self.node(node_id)
        node.kill()
        return node

    def active_controller(self, timeout: float = 30.0) -> int:
        """The node id of the quorum's leader, the active controller, as the running nodes
        recorded it (the highest epoch any of them knows of)."""
        deadline = time.monotonic() + timeout
        while True:
            known = [state for node in self.running() if (state := node.known_leader()) is not None]
            if known:
                _, leader = max(known)
                if any(node.node_id == leader for node in self.running()):
                    return leader
            if time.monotonic() > deadline:
                raise StackError(f"no running node knows an active controller: {known}")
            time.sleep(0.2)

    def partitions(
        self, topics: Sequence[str] | None = None, timeout: float = 15.0
    ) -> list[PartitionReplicas]:
        """Leader, replicas and in-sync replicas of each partition of `topics` (default all),
        once the broker asked knows every one of them (a topic just created may not be in
        every broker's metadata yet)."""
        deadline = time.monotonic() + timeout
        while True:
            found = run_sync(lambda: _describe(self.running_bootstrap(), topics))
            missing = set(topics or ()) - {p.topic for p in found}
            if not missing:
                return found
            if time.monotonic() > deadline:
                raise StackError(f"the cluster does not describe {sorted(missing)}")
            time.sleep(0.2)

    def running_bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.running())

    def wait_brokers(self, count: int, timeout: float) -> None:
        """Until the cluster's metadata lists `count` brokers."""
        deadline = time.monotonic() + timeout
        while True:
            brokers = run_sync(lambda: _broker_ids(self.running_bootstrap()))
            if len(brokers) >= count:
                return
            if time.monotonic() > deadline:
                raise StackError(
                    f"the cluster lists brokers {sorted(brokers)} after {timeout:.0f} s, "
                    f"not {count}; logs: {[str(n.log_path) for n in self.nodes]}"
                )
            time.sleep(0.2)

    def wait_fully_replicated(self, topics: Sequence[str], timeout: float = 60.0) -> float:
        """Until every partition of `topics` has all its replicas in sync again (a restarted
        node has caught up); returns the seconds it took."""
        started = time.monotonic()
        while True:
            lagging = [p for p in self.partitions(topics) if not p.fully_replicated]
            if not lagging:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise StackError(f"not fully replicated after {timeout:.0f} s: {lagging}")
            time.sleep(0.2)


async def _describe(bootstrap: str, topics: Sequence[str] | None) -> list[PartitionReplicas]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        described = await admin.describe_topics(list(topics) if topics is not None else None)
    finally:
        await admin.close()
    return [
        PartitionReplicas(
            topic["topic"],
            int(p["partition"]),
            int(p["leader"]),
            tuple(int(r) for r in p["replicas"]),
            tuple(int(r) for r in p["isr"]),
        )
        for topic in described
        if not topic["error_code"]
        for p in sorted(topic["partitions"], key=lambda p: int(p["partition"]))
    ]


async def _broker_ids(bootstrap: str) -> set[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        info: dict[str, Any] = await admin.describe_cluster()
    except Exception:
        return set()  # not answering yet: the caller's deadline decides
    finally:
        await admin.close()
    return {int(broker["node_id"]) for broker in info.get("brokers", [])}


class ClusterStack:
    """A `KafkaCluster` and a Redis, in ``workdir`` or a temporary dir removed on stop."""

    def __init__(self, workdir: Path | None = None) -> None:
        owns = workdir is None
        self.workdir = (
            Path(tempfile.mkdtemp(prefix="alert-engine-cluster-"))
            if workdir is None
            else Path(workdir).resolve()
        )
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.workdir, True) if owns else None
        self.kafka = KafkaCluster(self.workdir)
        self.redis = RedisServer(self.workdir)

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(kafka_bootstrap=self.kafka.bootstrap, redis_url=self.redis.url)

    @property
    def servers(self) -> list[Server]:
        return [*self.kafka.nodes, self.redis]

    def start(self) -> Endpoints:
        try:
            self.redis.start()
            self.kafka.start()
        except BaseException:
            self.stop(keep_logs=True)
            raise
        return self.endpoints

    def stop(self, keep_logs: bool = False) -> None:
        self.kafka.stop()
        self.redis.stop()
        if self._cleanup is not None:
            if keep_logs:
                self._cleanup.detach()  # the error points to the logs there
            else:
                self._cleanup()

    def __enter__(self) -> Endpoints:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@click.group()
def main() -> None:
    """Run a three-broker KRaft Kafka cluster and Redis on loopback."""


@main.command()
@workdir_option
def up(workdir: Path | None) -> None:
    """Start them, print their endpoints, run until interrupted."""
    exports = {
        "ALERT_ENGINE_KAFKA_REPLICATION_FACTOR": str(CLUSTER_SIZE),
        "ALERT_ENGINE_KAFKA_MIN_INSYNC_REPLICAS": str(MIN_INSYNC_REPLICAS),
    }
    sys.exit(run_until_stopped(ClusterStack(workdir), exports=exports))


if __name__ == "__main__":
    main()
