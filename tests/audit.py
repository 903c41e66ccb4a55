"""Why an expected alert is not in the outbox: never produced to the `alerts` topic (the
evaluation side), produced but not yet delivered (delivery stuck or late), or delivered later.

A test that waits for its alerts and runs out of time calls `explain_missing`, which looks at the
`alerts` topic, the consumer group's committed offsets against the partitions' end offsets, then
waits a while longer and says, per missing alert, "late by N s" or "lost".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from alert_engine.cli.kafka import read_topic


@dataclass(frozen=True)
class PartitionProgress:
    """One partition of a topic the group consumes: what it committed, what the topic holds."""

    topic: str
    partition: int
    committed: int | None
    end: int

    @property
    def lag(self) -> int:
        return self.end - (self.committed or 0)

    def __str__(self) -> str:
        committed = "none" if self.committed is None else str(self.committed)
        return f"{self.topic}[{self.partition}] committed {committed} / end {self.end}"


@dataclass(frozen=True)
class Produced:
    """Where an alert's record is on the `alerts` topic."""

    partition: int
    offset: int


async def group_progress(
    bootstrap: str, group: str, topics: Iterable[str]
) -> list[PartitionProgress]:
    """The group's committed offset and the end offset of every partition of `topics`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        await admin.start()
        await consumer.start()
        committed = await admin.list_consumer_group_offsets(group)
        partitions = [
            TopicPartition(described["topic"], p["partition"])
            for described in await admin.describe_topics(list(topics))
            for p in sorted(described["partitions"], key=lambda p: int(p["partition"]))
        ]
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
        await admin.close()
    return [
        PartitionProgress(
            tp.topic,
            tp.partition,
            committed[tp].offset if tp in committed and committed[tp].offset >= 0 else None,
            ends[tp],
        )
        for tp in partitions
    ]


async def alerts_on_topic(bootstrap: str, topic: str) -> dict[str, list[Produced]]:
    """Every alert record on the topic, by the alert's key (the rating id for a filter rule)."""
    found: dict[str, list[Produced]] = {}
    for record in await read_topic(bootstrap, topic, wait=20.0):
        if record.value is None:
            continue
        key = str(orjson.loads(record.value)["key"])
        found.setdefault(key, []).append(Produced(record.partition, record.offset))
    return found


def explain_missing(
    *,
    bootstrap: str,
    group: str,
    alerts_topic: str,
    consumed_topics: Iterable[str],
    expected: Iterable[str],
    delivered: Callable[[], list[str]],
    budget: float,
    grace: float,
) -> str:
    """Called when `budget` seconds ran out with alerts missing: what the topic and the group
    show, then up to `grace` seconds more of waiting, and per missing alert whether it came
    (late by N s) or not (lost, and on which side)."""
    ran_out = time.monotonic()
    missing = sorted(set(expected) - set(delivered()))
    on_topic = asyncio.run(alerts_on_topic(bootstrap, alerts_topic))
    progress = asyncio.run(group_progress(bootstrap, group, consumed_topics))
    arrived: dict[str, float] = {}
    while len(arrived) < len(missing) and time.monotonic() - ran_out < grace:
        now = set(delivered())
        for key in missing:
            if key in now and key not in arrived:
                arrived[key] = time.monotonic() - ran_out
        time.sleep(0.2)
    progress_after = asyncio.run(group_progress(bootstrap, group, consumed_topics))
    still_missing = [key for key in missing if key not in arrived]
    on_topic_after = asyncio.run(alerts_on_topic(bootstrap, alerts_topic)) if still_missing else {}
    lines = [f"{len(missing)} alert(s) not delivered within {budget:.0f} s: {missing}"]
    for key in missing:
        where = on_topic.get(key, [])
        produced = (
            "on "
            + ", ".join(f"{alerts_topic}[{p.partition}]@{p.offset}" for p in where)
            + " when the budget ran out (delivery side)"
            if where
            else f"not on {alerts_topic} when the budget ran out (evaluation side)"
        )
        if key in arrived:
            verdict = f"late by {arrived[key]:.1f} s (delivered that long after the budget)"
        elif on_topic_after.get(key):
            verdict = (
                f"lost on the delivery side (on {alerts_topic} but still not delivered "
                f"{grace:.0f} s after the budget)"
            )
        else:
            verdict = (
                f"lost on the evaluation side (still not on {alerts_topic} {grace:.0f} s "
                "after the budget)"
            )
        lines.append(f"  {key}: {produced}; {verdict}")
    lines.append("group offsets when the budget ran out (committed / end):")
    lines.extend(f"  {p}" for p in progress)
    lines.append(f"and {time.monotonic() - ran_out:.0f} s later:")
    lines.extend(f"  {p}" for p in progress_after)
    return "\n".join(lines)
