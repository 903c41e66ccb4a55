"""The hop to the windowed rules: events re-keyed by their group keys, sent in batches.

A window's state must live on the partition that owns its group key, so an input event whose
windowed rules group it by `agent.id`, `team` and `customer.id` travels to three partitions of the
`windows` topic. Sending one Kafka record per event and group key made the hop, not the rules, the
cost of a windowed rule set: every record is a produce, a fetch, a pass through Faust's stream
machinery and a changelog write. So an input agent collects the group keys of a whole batch of
events and sends one `WindowBatch` record per windows partition; the windowed agent takes it as a
single event on that partition, updates every window it touches and writes each window's table
entry once.

The partition of a group key is `crc32(grouping, key) mod partitions`: stable across processes
and Python versions (unlike `hash`), and the same function on every worker.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from alert_engine.events import Stream


@dataclass(frozen=True)
class GroupItem:
    """Event number `event` of the batch belongs to group `key` of the rules grouped by
    `grouping`."""

    grouping: str
    key: str
    event: int


# A batch record stays well under Kafka's default 1 MB message limit (events are up to 64 KB).
MAX_BATCH_BYTES = 256 * 1024


@dataclass
class WindowBatch:
    """One record of the windows topic: events of one stream bound for one partition, each
    stored once however many of its group keys hash there."""

    stream: Stream
    partition: int
    events: list[bytes] = field(default_factory=list)
    items: list[GroupItem] = field(default_factory=list)
    size: int = 0

    def to_json(self) -> bytes:
        # The events are validated JSON objects already: embedded as they came, not re-encoded.
        items = orjson.dumps([[item.grouping, item.key, item.event] for item in self.items])
        return b"".join(
            (
                b'{"stream":',
                orjson.dumps(self.stream.value),
                b',"items":',
                items,
                b',"events":[',
                b",".join(self.events),
                b"]}",
            )
        )


@dataclass(frozen=True)
class ReceivedBatch:
    """A `WindowBatch` as the windowed agent reads it: the events' fields, not their bytes."""

    stream: Stream
    events: list[dict[str, Any]]
    items: list[GroupItem]

    @staticmethod
    def from_json(raw: bytes | None) -> ReceivedBatch:
        """Raises `ValueError` for a record this module did not write."""
        try:
            data = orjson.loads(raw or b"")
            stream = Stream(data["stream"])
            items = [GroupItem(str(g), str(k), int(i)) for g, k, i in data["items"]]
            events = data["events"]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a window batch: {exc}") from None
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise ValueError("not a window batch: events are not objects")
        if any(not 0 <= item.event < len(events) for item in items):
            raise ValueError("not a window batch: an item names a missing event")
        return ReceivedBatch(stream, events, items)


def partition_for(grouping: str, key: str, partitions: int) -> int:
    return zlib.crc32(f"{grouping}\x00{key}".encode()) % partitions


class HopBuilder:
    """Collects the group keys of one input batch into one `WindowBatch` per partition (more
    when one would outgrow `MAX_BATCH_BYTES`)."""

    def __init__(self, stream: Stream, partitions: int) -> None:
        self.stream = stream
        self.partitions = partitions
        self._open: dict[int, WindowBatch] = {}
        self._full: list[WindowBatch] = []

    def add(self, raw: bytes, groups: list[tuple[str, str]]) -> None:
        """The event `raw` (already validated) and its group keys `(grouping, key)`."""
        placed: dict[int, int] = {}
        for grouping, key in groups:
            partition = partition_for(grouping, key, self.partitions)
            index = placed.get(partition)
            if index is None:
                batch = self._open.get(partition)
                if batch is None or (batch.events and batch.size + len(raw) > MAX_BATCH_BYTES):
                    if batch is not None:
                        self._full.append(batch)
                    batch = self._open[partition] = WindowBatch(self.stream, partition)
                index = placed[partition] = len(batch.events)
                batch.events.append(raw)
                batch.size += len(raw)
            else:
                batch = self._open[partition]
            batch.items.append(GroupItem(grouping, key, index))

    def batches(self) -> list[WindowBatch]:
        return [*self._full, *self._open.values()]
