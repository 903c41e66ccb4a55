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

from datetime import UTC, datetime

from aiokafka.record.default_records import DefaultRecordBatchBuilder

HEADER_PREFIX = "alert-engine.deadletter."
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
