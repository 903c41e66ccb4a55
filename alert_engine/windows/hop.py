"""The hop to the windowed rules: events re-keyed by their group keys, sent in batches.

A window's state must live on the partition that owns its group key, so an input event whose
windowed rules group it by `agent.id`, `team` and `customer.id` travels to three partitions of the
`windows` topic. Sending one Kafka record per event and group key made the hop, not the rules, the
cost of a windowed rule set: every record is a produce, a fetch, a pass through Faust's stream
machinery and a changelog write. So an input agent collects the group keys of a whole batch of
events and sends one `WindowBatch` record per windows partition; the windowed agent takes it as a
single event on that partition, updates every window it touches and writes each window's table
entry once.

The input agent has the event decoded and validated already, so it also computes what the
windowed rules count: per rule family of the grouping, the values of its aggregates' arguments
(null when its `where` is false), and the event's time. If they were computed for the rules in
force (`Evaluator.inputs_version`), the windowed agent counts those values as they came and
validates the event only to build an alert; a batch computed for other rules (a reload in
between) is evaluated from the event itself.

The partition of a group key is `crc32(grouping, key) mod partitions`: stable across processes
and Python versions (unlike `hash`), and the same function on every worker.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from alert_engine.events import Stream

# Per rule family of a grouping, in the ruleset's order: the event's values of the family's
# aggregate arguments (null for `count()`), or None when the family does not count the event.
Inputs = tuple[list[Any] | None, ...]


@dataclass(frozen=True)
class GroupItem:
    """Event number `event` of the batch belongs to group `key` of the rules grouped by
    `grouping`; `inputs` are its values for the grouping's rule families, None when the windowed
    agent must compute them from the event."""

    grouping: str
    key: str
    event: int
    inputs: Inputs | None = None


# A batch record stays well under Kafka's default 1 MB message limit (events are up to 64 KB).
MAX_BATCH_BYTES = 256 * 1024


@dataclass
class WindowBatch:
    """One record of the windows topic: events of one stream bound for one partition, each
    stored once however many of its group keys hash there, with its time."""

    stream: Stream
    partition: int
    version: str = ""
    events: list[bytes] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    # Per event, the latest event time of its stream when it was sent (see `Outcome.watermark`).
    marks: list[float] = field(default_factory=list)
    items: list[GroupItem] = field(default_factory=list)
    size: int = 0

    def to_json(self) -> bytes:
        # The events are validated JSON objects already: embedded as they came, not re-encoded.
        items = orjson.dumps(
            [[item.grouping, item.key, item.event, item.inputs] for item in self.items]
        )
        return b"".join(
            (
                b'{"stream":',
                orjson.dumps(self.stream.value),
                b',"version":',
                orjson.dumps(self.version),
                b',"times":',
                orjson.dumps(self.times),
                b',"marks":',
                orjson.dumps(self.marks),
                b',"items":',
                items,
                b',"events":[',
                b",".join(self.events),
                b"]}",
            )
        )


@dataclass(frozen=True)
class ReceivedBatch:
    """A `WindowBatch` as the windowed agent reads it: the events' fields, not their bytes.

    A record written before values were shipped has no `version` (""), no `times` or `marks`
    and items without inputs: its events are evaluated from their fields."""

    stream: Stream
    events: list[dict[str, Any]]
    items: list[GroupItem]
    version: str = ""
    times: list[float] = field(default_factory=list)
    marks: list[float] = field(default_factory=list)

    @staticmethod
    def from_json(raw: bytes | None) -> ReceivedBatch:
        """Raises `ValueError` for a record this module did not write."""
        try:
            data = orjson.loads(raw or b"")
            stream = Stream(data["stream"])
            items = [_item(item) for item in data["items"]]
            events = data["events"]
            version = data.get("version", "")
            times = data.get("times", [])
            marks = data.get("marks", [])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a window batch: {exc}") from None
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise ValueError("not a window batch: events are not objects")
        if any(not 0 <= item.event < len(events) for item in items):
            raise ValueError("not a window batch: an item names a missing event")
        if not isinstance(version, str):
            raise ValueError("not a window batch: the version is not text")
        if version and not all(
            isinstance(column, list)
            and len(column) == len(events)
            and all(_is_number(time) for time in column)
            for column in (times, marks)
        ):
            raise ValueError("not a window batch: no time for every event")
        if not version:
            times = marks = []
        return ReceivedBatch(stream, events, items, version, times, marks)


def _item(item: list[Any]) -> GroupItem:
    if len(item) == 3:  # written before values were shipped
        grouping, key, event = item
        return GroupItem(str(grouping), str(key), int(event))
    grouping, key, event, inputs = item
    if inputs is not None:
        if not isinstance(inputs, list) or not all(
            values is None or isinstance(values, list) for values in inputs
        ):
            raise ValueError("inputs are not lists of values")
        inputs = tuple(inputs)
    return GroupItem(str(grouping), str(key), int(event), inputs)


def _is_number(value: Any) -> bool:
    return value.__class__ is float or value.__class__ is int


def shippable(inputs: Inputs) -> bool:
    """Whether the values come back from JSON exactly as they are: null, booleans, text, 64-bit
    integers and finite floats. Anything else (a list, a map, a timestamp, NaN) is computed by
    the windowed agent from the event instead."""
    for values in inputs:
        if values is None:
            continue
        for value in values:
            kind = value.__class__
            if value is None or kind is str or kind is bool:
                continue
            if kind is int:
                if -(2**63) <= value < 2**63:
                    continue
                return False
            if kind is float and math.isfinite(value):
                continue
            return False
    return True


def partition_for(grouping: str, key: str, partitions: int) -> int:
    return zlib.crc32(f"{grouping}\x00{key}".encode()) % partitions


class HopBuilder:
    """Collects the group keys of one input batch into one `WindowBatch` per partition (more
    when one would outgrow `MAX_BATCH_BYTES`). `version` names what the items' inputs were
    computed for (`Evaluator.inputs_version`)."""

    def __init__(self, stream: Stream, partitions: int, version: str = "") -> None:
        self.stream = stream
        self.partitions = partitions
        self.version = version
        self._open: dict[int, WindowBatch] = {}
        self._full: list[WindowBatch] = []

    def add(
        self,
        raw: bytes,
        groups: list[tuple[str, str, Inputs | None]],
        time: float = 0.0,
        mark: float = 0.0,
    ) -> None:
        """The event `raw` (already validated) at `time` (epoch seconds), the latest time of
        its stream `mark`, and its group keys `(grouping, key, inputs)`."""
        placed: dict[int, int] = {}
        for grouping, key, inputs in groups:
            partition = partition_for(grouping, key, self.partitions)
            index = placed.get(partition)
            if index is None:
                batch = self._open.get(partition)
                if batch is None or (batch.events and batch.size + len(raw) > MAX_BATCH_BYTES):
                    if batch is not None:
                        self._full.append(batch)
                    batch = self._open[partition] = WindowBatch(
                        self.stream, partition, self.version
                    )
                index = placed[partition] = len(batch.events)
                batch.events.append(raw)
                batch.times.append(time)
                batch.marks.append(mark)
                batch.size += len(raw)
            else:
                batch = self._open[partition]
            if inputs is not None and not shippable(inputs):
                inputs = None
            batch.items.append(GroupItem(grouping, key, index, inputs))

    def batches(self) -> list[WindowBatch]:
        return [*self._full, *self._open.values()]
