"""Alerts whose delivery failed for good: read back from `alerts.failed` and replayed.

A failed alert keeps its original record (key and JSON) with the destination and error in the
dead-letter headers. Replaying sends it to the `alerts` topic again: delivery skips destinations
that already have it (the Redis ledger), so a replay delivers only what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from alert_engine.cli.kafka import produce_lines
from alert_engine.deadletters import read_headers
from alert_engine.settings import KafkaSettings


@dataclass(frozen=True)
class FailedAlert:
    alert_id: str
    destination: str
    reason: str
    time: str
    value: bytes
    offset: int
    partition: int


async def read_failed(kafka: KafkaSettings, wait: float = 10.0) -> list[FailedAlert]:
    """Every record now on the failed-alerts topic, oldest first per partition."""
    topic = kafka.failed_alerts_topic
    # Without a group, a consumer reads every partition of the topic and commits nothing.
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        # Inside the try: a start that cannot reach the broker leaves a consumer to close.
        await consumer.start()
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return []
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[FailedAlert] = []
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=int(wait * 1000))
            if not batch:
                raise TimeoutError(f"could not read {topic} within {wait} s")
            for tp, records in batch.items():
                for record in records:
                    headers = read_headers(list(record.headers))
                    found.append(
                        FailedAlert(
                            alert_id=(record.key or b"").decode(errors="replace"),
                            destination=headers.get("topic", ""),
                            reason=headers.get("detail", ""),
                            time=headers.get("time", ""),
                            value=record.value or b"",
                            offset=record.offset,
                            partition=record.partition,
                        )
                    )
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return found
    finally:
        await consumer.stop()


async def replay(kafka: KafkaSettings, alerts: list[FailedAlert]) -> int:
    """Send each alert (once, however often it failed) back to the alerts topic. An alert and
    its escalation are different records, and both go back."""
    unique = {alert.value: alert for alert in alerts}
    return await produce_lines(
        kafka.bootstrap,
        kafka.alerts_topic,
        list(unique),
        keys=[alert.alert_id.encode() for alert in unique.values()],
    )
