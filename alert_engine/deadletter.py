"""Dead letters: input we could not use, kept whole with the reason, never dropped.

A dead-lettered event keeps its original key and bytes as the record's key and value; the reason
and where it came from travel in headers (as Kafka Connect's dead-letter queues do), so the record
can be inspected with any Kafka tool and replayed to its source topic unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime

HEADER_PREFIX = "alert-engine.deadletter."


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
