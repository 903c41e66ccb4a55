"""A worker on a three-broker KRaft cluster (replication factor 3, `min.insync.replicas` 2) while
ratings stream in: one broker SIGKILLed, later restarted, then the broker that is the active
controller SIGKILLed. Every expected alert is delivered exactly once, and the figures (time to
recover, latencies) are printed for docs/operations.md.

Slow (a minute or two): excluded from `make test`, run by `make test-faults`.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from alert_engine.channels.outbox import read_outbox
from devstack.cluster import MIN_INSYNC_REPLICAS, ClusterStack, KafkaCluster
from devstack.workerprocess import WorkerProcess
from tests.audit import explain_missing
from tests.engine import Engine
from tests.factories import rating

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RATE = 100  # ratings a second
NEGATIVE_EVERY = 10  # every 10th rating raises an alert
# Ratings acknowledged by the cluster before each step, counted from the step before: every
# fault happens mid-stream, however long the one before took to heal.
BEFORE_BROKER_KILL = 900
BEFORE_RESTART = 600
AFTER_IN_SYNC = 600
AFTER_CONTROLLER_KILL = 900
# Seconds after the last event for every alert to be delivered.
BUDGET_S = 180.0


class Feeder(threading.Thread):
    """Sends ratings at `RATE` until stopped, with acks=all (idempotent, so a retry after a
    broker's death does not write a rating twice), noting when each was sent."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(name="feeder", daemon=True)
        self.bootstrap = bootstrap
        self.topic = topic
        self.acked = 0
        self.sent_at: dict[str, float] = {}
        self.error: BaseException | None = None
        self._halted = threading.Event()

    @property
    def sent(self) -> int:
        return len(self.sent_at)

    def expected(self) -> list[str]:
        return sorted(f"r-{n}" for n in range(0, self.sent, NEGATIVE_EVERY))

    def run(self) -> None:
        try:
            asyncio.run(self._feed())
        except BaseException as exc:
            self.error = exc

    async def _feed(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True
        )
        await producer.start()
        try:
            started = time.monotonic()
            pending: list[asyncio.Future[object]] = []
            n = 0
            while not self._halted.is_set():
                await asyncio.sleep(max(0.0, started + n / RATE - time.monotonic()))
                event_id = f"r-{n}"
                value = orjson.dumps(
                    rating(id=event_id, rating=1 if n % NEGATIVE_EVERY == 0 else 5)
                )
                self.sent_at[event_id] = time.time()
                future = await producer.send(self.topic, value=value)
                future.add_done_callback(self._count)
                pending.append(future)
                n += 1
            await asyncio.gather(*pending)
        finally:
            await producer.stop()

    def _count(self, future: asyncio.Future[object]) -> None:
        if not future.cancelled() and future.exception() is None:
            self.acked += 1

    def wait_more(self, count: int, timeout: float = 120.0) -> None:
        """Until `count` more ratings than now are acknowledged."""
        target = self.acked + count
        deadline = time.monotonic() + timeout
        while self.acked < target:
            if self.error is not None:
                raise AssertionError(f"the feed failed: {self.error!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"only {self.acked} of {target} ratings acknowledged")
            time.sleep(0.05)

    def halt(self) -> None:
        self._halted.set()

    def finish(self) -> None:
        self.halt()
        self.join(timeout=120)
        if self.error is not None:
            raise AssertionError(f"the feed failed: {self.error!r}")
        assert self.acked == self.sent, f"{self.acked} of {self.sent} ratings acknowledged"


@dataclass
class Fault:
    name: str
    node: int
    at: float  # time.time() of the kill or restart
    notes: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        notes = "".join(f", {name} {value:g}" for name, value in self.notes.items())
        return f"{self.name} (node {self.node}{notes})"


def fault_on(kafka: KafkaCluster, name: str, node: int, topics: list[str]) -> Fault:
    """A fault about to hit `node`, noted with what the node holds at that moment."""
    partitions = kafka.partitions([*topics, "__consumer_offsets"])
    fault = Fault(name, node, time.time())
    fault.notes["leader of engine partitions"] = sum(
        1 for p in partitions if p.leader == node and p.topic in topics
    )
    fault.notes["group coordinator"] = int(
        any(p.leader == node for p in partitions if p.topic == "__consumer_offsets")
    )
    return fault


def recovery(
    fault: Fault, until: float, sent_at: dict[str, float], latency: dict[str, float]
) -> str:
    """How long the fault delayed alerts: from the fault until the last alert delivered more
    than a second after its rating (of the ratings sent between this fault and the next)."""
    window = [key for key in latency if fault.at <= sent_at[key] < until]
    slow = [key for key in window if latency[key] > 1.0]
    recovered = max((sent_at[key] + latency[key] - fault.at for key in slow), default=0.0)
    worst = max((latency[key] for key in window), default=0.0)
    return (
        f"recovered (every alert within 1 s of its rating again) {recovered:.1f} s after it; "
        f"{len(slow)} of {len(window)} alerts later than 1 s, the slowest {worst:.2f} s"
    )


async def min_insync_replicas(bootstrap: str, topics: list[str]) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in topics]
        )
    finally:
        await admin.close()
    return {
        resource["resource_name"]: entry["config_value"]
        for response in responses
        for resource in response.to_object()["resources"]
        for entry in resource["config_entries"]
        if entry["config_names"] == "min.insync.replicas"
    }


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterStack]:
    stack = ClusterStack(tmp_path / "cluster")
    stack.start()
    try:
        yield stack
    finally:
        running = [server.pid for server in [*stack.kafka.nodes, stack.redis]]
        stack.stop()
        # Every process the cluster stack started ends with it.
        for pid in running:
            if pid is not None:
                with pytest.raises(ProcessLookupError):
                    os.kill(pid, 0)


def first_victim(kafka: KafkaCluster, topics: list[str], controller: int) -> int:
    """A node other than the active controller, leading the most partitions of `topics`."""
    leads = Counter(p.leader for p in kafka.partitions(topics))
    others = [n.node_id for n in kafka.nodes if n.node_id != controller]
    return max(others, key=lambda node: (leads[node], -node))


def test_a_broker_killed_restarted_then_the_controller_killed_loses_and_duplicates_nothing(
    cluster: ClusterStack, unique: str, tmp_path: Path
) -> None:
    kafka = cluster.kafka
    engine = Engine(
        cluster.endpoints,
        unique,
        tmp_path,
        partitions=4,
        replication_factor=3,
        min_insync_replicas=MIN_INSYNC_REPLICAS,
    )
    topics = [engine.kafka.ratings_topic, engine.kafka.alerts_topic]
    replicas = kafka.partitions(topics)
    assert {len(p.replicas) for p in replicas} == {3}
    assert asyncio.run(min_insync_replicas(kafka.bootstrap, topics)) == dict.fromkeys(topics, "2")
    faults: list[Fault] = []

    worker = engine.worker("worker").start()
    feeder = Feeder(kafka.bootstrap, engine.kafka.ratings_topic)
    try:
        feeder.start()

        feeder.wait_more(BEFORE_BROKER_KILL)
        controller = kafka.active_controller()
        victim = first_victim(kafka, topics, controller)
        faults.append(fault_on(kafka, "broker killed", victim, topics))
        kafka.kill(victim)

        feeder.wait_more(BEFORE_RESTART)
        restarted_at = time.time()
        kafka.node(victim).start()
        restart = Fault("broker restarted", victim, restarted_at)
        restart.notes["answering after s"] = round(time.time() - restarted_at, 1)
        kafka.wait_fully_replicated(topics, timeout=90)
        restart.notes["all replicas in sync after s"] = round(time.time() - restarted_at, 1)
        faults.append(restart)

        feeder.wait_more(AFTER_IN_SYNC)
        controller = kafka.active_controller()
        killed = fault_on(kafka, "active controller killed", controller, topics)
        faults.append(killed)
        kafka.kill(controller)
        kafka.active_controller()
        killed.notes["new controller elected after s"] = round(time.time() - killed.at, 1)

        feeder.wait_more(AFTER_CONTROLLER_KILL)
        feeder.finish()
        expected = feeder.expected()
        wait_for_all(engine, worker, expected, topics)
        time.sleep(3.0)  # anything delivered twice would land by now
        entries = [entry for entry in read_outbox(engine.outbox) if "alert" in entry]
    finally:
        feeder.halt()
        worker.stop()

    delivered = [str(entry["alert"]["key"]) for entry in entries]
    counts = Counter(delivered)
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    lost = len(set(expected) - set(counts))
    latency = {
        str(e["alert"]["key"]): datetime.fromisoformat(e["delivered_at"]).timestamp()
        - feeder.sent_at[str(e["alert"]["key"])]
        for e in entries
    }
    ordered = sorted(latency.values())
    print(
        f"\nCLUSTER: {feeder.sent} ratings at {RATE}/s, {len(expected)} alerts expected, "
        f"{len(delivered)} delivered, {duplicates} duplicates, {lost} lost; rating sent to alert "
        f"delivered p50 {statistics.median(ordered):.2f} s, "
        f"p99 {ordered[int(len(ordered) * 0.99) - 1]:.2f} s, max {ordered[-1]:.2f} s; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    ends = [fault.at for fault in faults[1:]] + [float("inf")]
    for fault, until in zip(faults, ends, strict=True):
        print(f"  {fault}; {recovery(fault, until, feeder.sent_at, latency)}")
    assert (duplicates, lost) == (0, 0)
    assert sorted(delivered) == expected
    # The worker has ended; the fixture checks the same of the brokers and Redis.
    assert worker.process is not None and worker.process.poll() is not None


def wait_for_all(
    engine: Engine, worker: WorkerProcess, expected: list[str], topics: list[str]
) -> None:
    def keys() -> list[str]:
        return [str(alert["key"]) for alert in engine.delivered()]

    deadline = time.monotonic() + BUDGET_S
    while not set(expected) <= set(keys()):
        if time.monotonic() > deadline:
            report = explain_missing(
                bootstrap=engine.kafka.bootstrap,
                group=engine.env["ALERT_ENGINE_APP_ID"],
                alerts_topic=engine.kafka.alerts_topic,
                consumed_topics=topics,
                expected=expected,
                delivered=keys,
                budget=BUDGET_S,
                grace=60.0,
            )
            raise AssertionError(f"{report}\n--- the worker's log ---\n{worker.log_tail(80)}")
        time.sleep(0.1)
