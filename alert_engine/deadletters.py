"""Dead letters: input we could not use, kept whole with the reason, never dropped.

A dead-lettered event keeps its original key and bytes as the record's key and value; the reason
and where it came from travel in headers (as Kafka Connect's dead-letter queues do), so the record
can be inspected with any Kafka tool and replayed to its source topic unchanged.

A record too large for the engine's own producer (the broker takes far larger ones compressed:
2 MB of a gzip-compressed value, a 1 MB key) is sent truncated instead, the prefix of its key
and value that fits, with `truncated: true` and the original sizes in headers: the reason and
where the original lies in its topic are never lost, and the worker goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka.record.default_records import DefaultRecordBatchBuilder
from faust.types import EventT

HEADER_PREFIX = "alert-engine.deadletter."
# Reasons the engine itself gives (the edge's own, `not_json`, `invalid`, ..., are in
# `alert_engine.events`): an event whose processing raised, a record on the windows topic that
# no input agent wrote, an alert a destination refused for good.
PROCESSING_ERROR = "processing_error"
UNREADABLE = "unreadable"
DELIVERY_FAILED = "delivery_failed"
# What a truncated dead letter keeps of its key: enough to recognise it.
MAX_KEPT_KEY_BYTES = 1024


def headers(
    *, reason: str, detail: str, topic: str, partition: int | None = None, offset: int | None = None
) -> dict[str, bytes]:
    values = {
        "reason": reason,
        "detail": detail[:2000],
        "topic": topic,
        "partition": "" if partition is None else str(partition),
        "offset": "" if offset is None else str(offset),
        "time": datetime.now(UTC).isoformat(),
    }
    return {HEADER_PREFIX + name: value.encode() for name, value in values.items()}


@dataclass(frozen=True)
class DeadLetter:
    """A record for a dead-letter topic: the original key and value, the reason in headers."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]

    @staticmethod
    def of(event: EventT[bytes], topic: str, *, reason: str, detail: str) -> DeadLetter:
        """The consumed record `event` as it came, with where it came from and why."""
        message = event.message
        return DeadLetter(
            topic=topic,
            key=event.key,
            value=event.value,
            headers=headers(
                reason=reason,
                detail=detail,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
            ),
        )

    @staticmethod
    def failed_delivery(
        topic: str, alert_id: str, value: bytes, *, destination: str, error: str
    ) -> DeadLetter:
        """An alert `destination` refused for good, for the failed-alerts topic."""
        return DeadLetter(
            topic=topic,
            key=alert_id.encode(),
            value=value,
            headers=headers(reason=DELIVERY_FAILED, detail=error, topic=destination),
        )


@dataclass(frozen=True)
class ReadDeadLetter:
    """A record read back from the dead-letter topic: what came in, and why it was refused."""

    reason: str
    detail: str
    # Where the original record was: its topic, partition and offset.
    source_topic: str
    source_partition: int | None
    source_offset: int | None
    time: str
    key: bytes | None
    value: bytes
    # Only a prefix of the original is kept: it cannot be replayed.
    truncated: bool

    @staticmethod
    def of(
        key: bytes | None, value: bytes | None, raw_headers: list[tuple[str, bytes]]
    ) -> ReadDeadLetter:
        found = read_headers(raw_headers)
        partition, offset = found.get("partition", ""), found.get("offset", "")
        return ReadDeadLetter(
            reason=found.get("reason", ""),
            detail=found.get("detail", ""),
            source_topic=found.get("topic", ""),
            source_partition=int(partition) if partition.isdigit() else None,
            source_offset=int(offset) if offset.isdigit() else None,
            time=found.get("time", ""),
            key=key,
            value=value or b"",
            truncated=found.get("truncated") == "true",
        )


def read_headers(raw: list[tuple[str, bytes]] | dict[str, bytes]) -> dict[str, str]:
    """The dead-letter headers of a consumed record, without their prefix."""
    items = raw.items() if isinstance(raw, dict) else raw
    return {
        name.removeprefix(HEADER_PREFIX): value.decode(errors="replace")
        for name, value in items
        if name.startswith(HEADER_PREFIX)
    }


def fit(
    key: bytes | None, value: bytes | None, headers: dict[str, bytes], max_bytes: int
) -> tuple[bytes | None, bytes | None, dict[str, bytes]]:
    """The dead letter's key, value and headers as sent: as they are if the record fits in
    `max_bytes` (the producer's limit, measured as the producer does), else truncated to fit."""
    if _size(key, value, headers) <= max_bytes:
        return key, value, headers
    headers = {
        **headers,
        HEADER_PREFIX + "truncated": b"true",
        HEADER_PREFIX + "original-key-bytes": b"" if key is None else str(len(key)).encode(),
        HEADER_PREFIX + "original-value-bytes": b"" if value is None else str(len(value)).encode(),
    }
    if key is not None:
        key = key[:MAX_KEPT_KEY_BYTES]
    if value is not None:
        # The value's length prefix (a varint of up to 5 bytes) is counted once as empty.
        room = max_bytes - _size(key, b"", headers) - 4
        value = value[: max(room, 0)]
    return key, value, headers


def _size(key: bytes | None, value: bytes | None, headers: dict[str, bytes]) -> int:
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, list(headers.items())))
