"""Alerts whose delivery failed for good: read back from `alerts.failed` and replayed.

A failed alert keeps its original record (key and JSON) with the destination and error in the
dead-letter headers. Replaying sends it to the `alerts` topic again: delivery skips destinations
that already have it (the Redis ledger), so a replay delivers only what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from alert_engine.cli.kafka import produce_lines, read_topic
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
    found = []
    for record in await read_topic(kafka.bootstrap, kafka.failed_alerts_topic, wait):
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
    return found


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
