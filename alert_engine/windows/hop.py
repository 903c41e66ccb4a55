"""The hop to the windowed rules: events re-keyed by their group keys, sent in batches.

A window's state must live on the partition that owns its group key, so an input event whose
windowed rules group it by `agent.id`, `team` and `customer.id` travels to three partitions of the
`windows` topic. Sending one Kafka record per event and group key made the hop, not the rules, the
cost of a windowed rule set: every record is a produce, a fetch, a pass through Faust's stream
machinery and a changelog write. So an input agent collects the group keys of a whole batch of
events and sends one `WindowBatch` record per windows partition; the windowed agent takes it as a
single event on that partition, updates every window it touches and writes each window's table
entry once.

The input agent has the event decoded and validated already, so it also counts what the
windowed rules count: per group key, rule family and window, the state of the aggregates over the
batch's events (`Evaluator.fold`), with the event counted last. The windowed agent merges each
such partial state into its window's (`Evaluator.merge`) and checks the rules' conditions once
per window and batch, not once per event; it validates an event only to build an alert. So a
windowed rule fires when its condition first holds after a batch of its key's events, and the
alert carries the aggregates after that batch and the batch's last event of the key. The events
themselves do not travel, only one per group key and window.

An event whose values do not come back from JSON unchanged, and join rules' events, travel whole
as items, and the windowed agent evaluates them from the event, one by one.

The partition of a group key is `crc32(grouping, key) mod partitions`: stable across processes
and Python versions (unlike `hash`), and the same function on every worker.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import orjson

from alert_engine.events import Stream

# Per rule family of a grouping, in the ruleset's order: the event's values of the family's
# aggregate arguments (null for `count()`), or None when the family does not count the event.
Inputs = tuple[list[Any] | None, ...]


class Regroup(NamedTuple):
    """The event belongs to group `key` of the windowed rules grouped by `grouping`."""

    stream: Stream
    grouping: str
    key: str
    # What the grouping's rule families count of the event (see `windows.folding.Folder.inputs`);
    # None when not computed (a join, or a batch of another ruleset version).
    inputs: Inputs | None = None


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
# What a new group key or window adds to a record, about: grouping, key, family id, window.
PARTIAL_BYTES = 128


class Fold(Protocol):
    """`Evaluator.fold` for one stream: counts one event of a batch into `into`."""

    def __call__(
        self,
        grouping: str,
        inputs: Inputs,
        timestamp: float,
        mark: float,
        into: dict[Any, Any],
        ref: Any,
    ) -> None: ...


# An event a partial state refers to: its bytes, time, mark, input partition and place in the
# input batch (embedded when it is sent).
EventRef = tuple[bytes, float, float, int, int]


@dataclass
class GroupCount:
    """What a batch counted of one group key: per event `[id, time, mark, inputs]` (so the
    windowed agent can tell an event it counted before, and count the others without it), the
    ids, and the partial states per family or pane and window (`Evaluator.fold`)."""

    events: int = 0
    counted: list[list[Any]] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    partials: dict[Any, Any] = field(default_factory=dict)


@dataclass
class WindowBatch:
    """One record of the windows topic: events of one stream bound for one partition, each
    stored once however many of its group keys hash there, with its time."""

    stream: Stream
    partition: int
    version: str = ""
    events: list[bytes] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    # Per event, the latest event time of its input partition when it was sent (see
    # `Outcome.watermark`), and that input partition.
    marks: list[float] = field(default_factory=list)
    origins: list[int] = field(default_factory=list)
    items: list[GroupItem] = field(default_factory=list)
    # Per (grouping, key): the events counted and the partial states (`Evaluator.fold`).
    groups: dict[tuple[str, str], GroupCount] = field(default_factory=dict)
    # The latest event time of the batch's events' input partitions when it was sent: the
    # latest of any, and per input partition (the sources of the windows' watermark).
    mark: float = 0.0
    sources: dict[int, float] = field(default_factory=dict)
    size: int = 0
    last: EventRef | None = None
    # Where each event in `events` is, by the identity of its bytes, and its place in the
    # input batch.
    indexes: dict[int, int] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)

    def note_source(self, origin: int, mark: float) -> None:
        if mark > self.sources.get(origin, -math.inf):
            self.sources[origin] = mark
        if mark > self.mark:
            self.mark = mark

    def to_json(self) -> bytes:
        # Every event once, the items' and those the partials counted last, in the order they
        # were consumed: the windowed agent takes the one with the larger index as the later
        # one (`later_ref`).
        everything: dict[int, EventRef] = {
            id(raw): (raw, self.times[n], self.marks[n], self.origins[n], self.order[n])
            for n, raw in enumerate(self.events)
        }
        for group in self.groups.values():
            for partial in group.partials.values():
                everything.setdefault(id(partial.ref[0]), partial.ref)
        ordered = sorted(everything.values(), key=lambda ref: ref[4])
        index = {id(ref[0]): n for n, ref in enumerate(ordered)}
        events = [ref[0] for ref in ordered]
        times = [ref[1] for ref in ordered]
        marks = [ref[2] for ref in ordered]
        origins = [ref[3] for ref in ordered]
        groups = []
        for (grouping, key), group in self.groups.items():
            shipped = [
                [p.counted.id, p.start, p.end, p.events, p.states, index[id(p.ref[0])]]
                for p in group.partials.values()
            ]
            groups.append([grouping, key, group.events, shipped, group.counted])
        items = orjson.dumps(
            [
                [item.grouping, item.key, index[id(self.events[item.event])], item.inputs]
                for item in self.items
            ]
        )
        # The events are validated JSON objects already: embedded as they came, not re-encoded.
        return b"".join(
            (
                b'{"stream":',
                orjson.dumps(self.stream.value),
                b',"version":',
                orjson.dumps(self.version),
                b',"mark":',
                orjson.dumps(self.mark),
                b',"groups":',
                orjson.dumps(groups),
                b',"times":',
                orjson.dumps(times),
                b',"marks":',
                orjson.dumps(marks),
                b',"origins":',
                orjson.dumps(origins),
                b',"sources":',
                orjson.dumps([[source, mark] for source, mark in self.sources.items()]),
                b',"items":',
                items,
                b',"events":[',
                b",".join(events),
                b"]}",
            )
        )


class ShippedPartial(NamedTuple):
    """A partial state as it travels: family (or pane group) id, window or pane, events
    counted, the aggregates' states, and the index of the event counted last."""

    counted_id: str
    start: float
    end: float
    events: int
    states: list[Any]
    ref: int


class ShippedGroup(NamedTuple):
    """A group key's share of a record: its partial states, and the events they counted as
    `[id, time, mark, inputs]` (none in a record written before ids were shipped)."""

    grouping: str
    key: str
    events: int
    partials: list[ShippedPartial]
    counted: list[list[Any]]

    def ids(self) -> list[str]:
        return [event[0] for event in self.counted]


@dataclass(frozen=True)
class ReceivedBatch:
    """A `WindowBatch` as the windowed agent reads it: the events' fields, not their bytes.

    A record written before values were shipped has no `version` (""), no `times` or `marks`
    and items without inputs: its events are evaluated from their fields. One written before
    partial states were shipped has no `groups`."""

    stream: Stream
    events: list[dict[str, Any]]
    items: list[GroupItem]
    version: str = ""
    times: list[float] = field(default_factory=list)
    marks: list[float] = field(default_factory=list)
    groups: list[ShippedGroup] = field(default_factory=list)
    mark: float = 0.0
    # Per event its input partition, and per input partition its latest time (a record written
    # before sources were shipped: one unnamed source, -1, at `mark`).
    origins: list[int] = field(default_factory=list)
    sources: list[tuple[int, float]] = field(default_factory=list)

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
            mark = data.get("mark", 0.0)
            groups = [_group(group, len(events)) for group in data.get("groups", [])]
            origins = data.get("origins", [])
            sources = [(source, at) for source, at in data.get("sources", [])]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a window batch: {exc}") from None
        if not _is_number(mark):
            raise ValueError("not a window batch: the mark is not a time")
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
        if origins and not (
            isinstance(origins, list)
            and len(origins) == len(events)
            and all(origin.__class__ is int for origin in origins)
        ):
            raise ValueError("not a window batch: no input partition for every event")
        if not all(source.__class__ is int and _is_number(at) for source, at in sources):
            raise ValueError("not a window batch: a source is not a partition and a time")
        if not sources and mark:
            sources = [(-1, mark)]
        return ReceivedBatch(
            stream, events, items, version, times, marks, groups, mark, origins, sources
        )


def _group(group: list[Any], events: int) -> ShippedGroup:
    grouping, key, count, partials, *rest = group
    counted = rest[0] if rest else []
    if not (grouping.__class__ is str and key.__class__ is str and count.__class__ is int):
        raise ValueError("a group is not grouping, key and count")
    if not (
        counted.__class__ is list
        and all(
            event.__class__ is list and len(event) == 4 and event[0].__class__ is str
            for event in counted
        )
    ):
        raise ValueError("the events a group counted are not ids, times, marks and values")
    shipped = []
    for family_id, start, end, n, states, index in partials:
        if not (
            family_id.__class__ is str
            and _is_number(start)
            and _is_number(end)
            and n.__class__ is int
            and n > 0
            and states.__class__ is list
            and index.__class__ is int
            and 0 <= index < events
        ):
            raise ValueError("a partial state is not family, window, count, states and event")
        shipped.append(ShippedPartial(family_id, float(start), float(end), n, states, index))
    return ShippedGroup(grouping, key, count, shipped, counted)


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
    return shipped_size(inputs) is not None


def shipped_size(inputs: Inputs) -> int | None:
    """About how many bytes of JSON the values take (at least as many), or None when they are
    not `shippable`."""
    size = 2
    for values in inputs:
        if values is None:
            size += 5
            continue
        size += 2
        for value in values:
            kind = value.__class__
            if kind is str:
                # Escapes (a control character as `\u0000`) take up to six bytes a character.
                size += 6 * len(value) + 3
                continue
            if value is None or kind is bool:
                size += 6
                continue
            if kind is int:
                if -(2**63) <= value < 2**63:
                    size += 21
                    continue
                return None
            if kind is float and math.isfinite(value):
                size += 25
                continue
            return None
    return size


def partition_for(grouping: str, key: str, partitions: int) -> int:
    return zlib.crc32(f"{grouping}\x00{key}".encode()) % partitions


class HopBuilder:
    """Collects the group keys of one input batch into one `WindowBatch` per partition (more
    when one would outgrow `MAX_BATCH_BYTES`). With `fold` (`Evaluator.fold` for the stream),
    an event's values are counted into its group keys' partial states; without it, or for
    values that do not travel as JSON, the event travels as an item with its values. `version`
    names what the items' inputs were computed for (`Evaluator.inputs_version`)."""

    def __init__(
        self, stream: Stream, partitions: int, version: str = "", fold: Fold | None = None
    ) -> None:
        self.stream = stream
        self.partitions = partitions
        self.version = version
        self.fold = fold
        self._open: dict[int, WindowBatch] = {}
        self._full: list[WindowBatch] = []
        # Events added so far: the order of the ones partial states refer to.
        self._added = 0

    def _batch(self, partition: int, adding: int) -> WindowBatch:
        batch = self._open.get(partition)
        if batch is None or (
            (batch.events or batch.groups) and batch.size + adding > MAX_BATCH_BYTES
        ):
            if batch is not None:
                self._full.append(batch)
            batch = self._open[partition] = WindowBatch(self.stream, partition, self.version)
        return batch

    def add(
        self,
        raw: bytes,
        groups: list[tuple[str, str, Inputs | None]],
        time: float = 0.0,
        mark: float = 0.0,
        origin: int = 0,
        event_id: str | None = None,
    ) -> None:
        """The event `raw` (already validated) at `time` (epoch seconds) from input partition
        `origin`, the latest time of that partition `mark`, and its group keys
        `(grouping, key, inputs)`. An event whose id a group key of the batch counted already
        is the same event sent twice: it counts once."""
        self._added += 1
        placed: dict[int, tuple[WindowBatch, int]] = {}
        ref: EventRef | None = None
        for grouping, key, inputs in groups:
            partition = partition_for(grouping, key, self.partitions)
            size = shipped_size(inputs) if inputs is not None else None
            if size is None:
                inputs = None
            if self.fold is not None and inputs is not None:
                if ref is None:
                    ref = (raw, time, mark, origin, self._added)
                batch = self._batch(partition, len(raw) + PARTIAL_BYTES)
                if batch.last is not ref:
                    # The event may be embedded as the last one a partial counted.
                    batch.last = ref
                    batch.size += len(raw)
                group = batch.groups.get((grouping, key))
                if group is None:
                    group = batch.groups[(grouping, key)] = GroupCount()
                    batch.size += PARTIAL_BYTES
                if event_id is not None:
                    if event_id in group.ids:
                        continue
                    group.ids.add(event_id)
                    group.counted.append([event_id, time, mark, inputs])
                    assert size is not None
                    batch.size += 6 * len(event_id) + size + 56
                group.events += 1
                partials = group.partials
                before = len(partials)
                self.fold(grouping, inputs, time, mark, partials, ref)
                batch.size += (len(partials) - before) * PARTIAL_BYTES
                batch.note_source(origin, mark)
                continue
            found = placed.get(partition)
            if found is None:
                batch = self._batch(partition, len(raw))
                found = placed[partition] = (batch, len(batch.events))
                batch.indexes[id(raw)] = len(batch.events)
                batch.order.append(self._added)
                batch.events.append(raw)
                batch.times.append(time)
                batch.marks.append(mark)
                batch.origins.append(origin)
                batch.note_source(origin, mark)
                batch.size += len(raw)
            batch, index = found
            batch.items.append(GroupItem(grouping, key, index, inputs))

    def batches(self) -> list[WindowBatch]:
        return [*self._full, *self._open.values()]
