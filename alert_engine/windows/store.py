"""Where window state lives: per group key its windows (`(shape, window) -> bucket`), the offset
of the last `windows` record applied to it, the watermarks, and the event ids already counted.

Live, the state sits in one Faust table (memory store, changelog topic in Kafka): a restarted
worker reads its partitions' state back before it consumes. A replay or `rules test` uses
`MemoryWindowStore`. The evaluator sees only this protocol, so both run the same windowing code.
What an entry holds is `windows.state`.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, MutableMapping
from functools import lru_cache
from heapq import heappop, heappush
from typing import Any, Protocol, cast

import faust
import orjson
from faust.utils import json as faust_json
from faust.windows import HoppingWindow

from alert_engine.windows.definitions import WindowRange
from alert_engine.windows.hop import partition_for
from alert_engine.windows.state import (
    AppliedRecords,
    KeyState,
    SourceMarks,
    applied_records_of,
    key_state_of,
    source_marks_of,
)

# (grouping, group key value) as one string, so table keys stay JSON-able and small.
StateKey = str
# Where an event id was seen: the offset of the record that counted it.
Seen = int


def state_key(grouping: str, key: str) -> StateKey:
    return f"{grouping}\x00{key}"


class WindowStore(Protocol):
    def window(self, shape: str) -> HoppingWindow: ...

    def marks(self, stream: str, partition: int) -> dict[int, float]:
        """The watermark sources' latest times of `stream` on `partition`, as last set."""
        ...

    def set_marks(self, stream: str, partition: int, marks: dict[int, float]) -> None: ...

    def get(self, shape: str, key: StateKey, window: WindowRange) -> Any | None: ...

    def set(self, shape: str, key: StateKey, window: WindowRange, state: Any) -> None: ...

    def applied(self, key: StateKey, partition: int) -> int:
        """The offset of the last record of windows partition `partition` whose counts the
        key's state holds (-1: none)."""
        ...

    def set_applied(self, key: StateKey, partition: int, offset: int) -> None: ...

    def seen(self, partition: int, event_id: str) -> Seen | None:
        """Where a record of `partition` counted the event id, if one did."""
        ...

    def judged(self, partition: int, offset: int) -> float | None:
        """The watermark the record at `offset` of `partition` was judged against, if applied."""
        ...

    def note_record(
        self, partition: int, offset: int, watermark: float, ids: Mapping[str, float]
    ) -> None:
        """The record at `offset` was judged against `watermark` and counted these event ids,
        each seen until its event time."""
        ...


class MemoryWindowStore:
    """Window state in dicts, for replays and rule tests; never expires (replays are bounded)."""

    def __init__(self, windows: Mapping[str, HoppingWindow]) -> None:
        self.windows = dict(windows)
        self.data: dict[tuple[str, StateKey, WindowRange], Any] = {}
        self.watermarks: dict[tuple[str, int], dict[int, float]] = {}
        self.offsets: dict[tuple[StateKey, int], int] = {}
        self.ids: dict[tuple[int, str], Seen] = {}
        self.judgements: dict[tuple[int, int], float] = {}

    def window(self, shape: str) -> HoppingWindow:
        return self.windows[shape]

    def marks(self, stream: str, partition: int) -> dict[int, float]:
        return dict(self.watermarks.get((stream, partition), {}))

    def set_marks(self, stream: str, partition: int, marks: dict[int, float]) -> None:
        self.watermarks[(stream, partition)] = dict(marks)

    def get(self, shape: str, key: StateKey, window: WindowRange) -> Any | None:
        return self.data.get((shape, key, window))

    def set(self, shape: str, key: StateKey, window: WindowRange, state: Any) -> None:
        self.data[(shape, key, window)] = state

    def applied(self, key: StateKey, partition: int) -> int:
        return self.offsets.get((key, partition), -1)

    def set_applied(self, key: StateKey, partition: int, offset: int) -> None:
        self.offsets[(key, partition)] = offset

    def seen(self, partition: int, event_id: str) -> Seen | None:
        return self.ids.get((partition, event_id))

    def judged(self, partition: int, offset: int) -> float | None:
        return self.judgements.get((partition, offset))

    def note_record(
        self, partition: int, offset: int, watermark: float, ids: Mapping[str, float]
    ) -> None:
        self.judgements.setdefault((partition, offset), watermark)
        for event_id in ids:
            self.ids.setdefault((partition, event_id), offset)

    def windows_of(self, key: StateKey) -> Iterator[tuple[str, WindowRange, Any]]:
        """Every window the key has state in: shape, range and bucket."""
        for (shape, skey, window), bucket in self.data.items():
            if skey == key:
                yield shape, window, bucket


# Windows deleted per `expire` call; the rest wait for the partition's next record.
MAX_EXPIRED_PER_CALL = 1000

# No state key starts so: a state key starts with a rule family's grouping.
MARKS_PREFIX = "\x01marks\x00"
RECORDS_PREFIX = "\x01records\x00"
# What a batch applied of a partition's records is kept at least this long (wall clock): until
# the records are committed (every few seconds), a crash replays them.
RECORDS_KEEP_SECONDS = 120.0


def marks_key(stream: str, partition: int) -> StateKey:
    """The table entry of a stream's watermark on a windows partition (`SourceMarks`), written
    with that partition's window state."""
    return f"{MARKS_PREFIX}{stream}\x00{partition}"


def records_key(partition: int, offset: int) -> StateKey:
    """The table entry of what a batch applied of a partition's records from `offset` on
    (`AppliedRecords`)."""
    return f"{RECORDS_PREFIX}{offset}\x00{partition}"


@lru_cache(maxsize=65536)
def window_name(window: WindowRange) -> str:
    # `repr` of a float reads back as the same float: the name gives the range back exactly.
    return f"{window[0]!r} {window[1]!r}"


def window_of(name: str) -> WindowRange:
    start, end = name.split(" ")
    return float(start), float(end)


class WindowStateTable(faust.Table):  # type: ignore[type-arg]
    """The Faust table of the window state. An entry's changelog partition is its group key's
    windows partition, computed from the key as the hop computes it, not taken from the record
    being processed (Faust's default): the windowed agent writes the entries of a batch of
    records, of several partitions, once the batch is done."""

    def send_changelog(
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: Any = None,
        value_serializer: Any = None,
    ) -> Any:
        """The entry as it is now, encoded now: the producer encodes a message when it gets to
        it, and by then the windowed agent may have changed the entry in place for the next
        batch. That batch's state (its records marked applied, its rules fired) must not reach
        the changelog before Kafka has the batch's alerts."""
        if value is not None:
            value = orjson.Fragment(faust_json.dumps(value))
        return super().send_changelog(partition, key, value, key_serializer, value_serializer)

    def partition_for_key(self, key: Any) -> int | None:
        if str(key).startswith("\x01"):
            # A watermark or applied-records entry: its windows partition is its name's last part.
            return int(str(key).rsplit("\x00", 1)[1]) % (self.partitions or 1)
        grouping, _, group_key = str(key).partition("\x00")
        return partition_for(grouping, group_key, self.partitions or 1)


class TableWindowStore:
    """All windows of one group key in one entry of one Faust table, written once per flush.

        An entry is a `KeyState` under the state key (grouping and key). The windowed agent takes
        batches of records; `set` changes the entry in memory and `flush` (once per commit
        interval, `worker.batches.DeferredAcks`) writes each entry changed since the last one to
        the table: one changelog message per group key and flush, to the partition of the group
        key (`WindowStateTable`), which the hop made the windows
        partition the key's records come from. The entry carries the offset of the last record
        applied to it, in the same message: a replay after a crash skips what it already holds.

        Windows expire by event time, here, not by Faust: Faust drops a windowed table's window once
        its end is `expires` behind the wall clock, so a worker catching up on a backlog would count
        into windows its next cleanup deletes. Here a window goes once its end is `expires` behind
        the event time of its partition (`expire`), after the evaluator stopped accepting events
        into it; what a batch applied of a partition's records goes once the watermark passed the
    time its event ids count as seen, and it was written long enough ago to be committed.
    """

    def __init__(
        self,
        table: MutableMapping[StateKey, Any],
        windows: Mapping[str, HoppingWindow],
        partitions: int,
    ) -> None:
        self.table = table
        # The shapes with their `expires`; a reload adds shapes (`add_windows`).
        self.windows = dict(windows)
        self.partitions = partitions
        # Entries changed since the last `flush`, written by it (None: deleted).
        self._dirty: dict[StateKey, Any] = {}
        # Per partition and shape, the windows still held, soonest end first.
        self._ends: dict[tuple[int, str], list[tuple[float, StateKey, str]]] = defaultdict(list)
        self._held: set[tuple[StateKey, str, str]] = set()
        # Per partition: the event ids seen (with their records' offsets), the watermark each
        # applied record was judged against, the entries of applied records (soonest `until`
        # first, with when they were written) and the current batch's.
        self._seen: dict[int, dict[str, Seen]] = defaultdict(dict)
        self._judged: dict[int, dict[int, float]] = defaultdict(dict)
        self._records: dict[int, list[tuple[float, float, StateKey]]] = defaultdict(list)
        self._batch_records: dict[int, AppliedRecords] = {}
        # The table's size after this store last wrote it: any other change is Faust's
        # recovery or a rebalance, after which the held windows are read again from the table.
        # Read at first use: a table may hold entries already (recovered before this store).
        self._size = -1

    def window(self, shape: str) -> HoppingWindow:
        return self.windows[shape]

    def add_windows(self, windows: Mapping[str, HoppingWindow]) -> None:
        """The shapes of a reloaded rule set; shapes no rule uses any more stay until their
        windows expired."""
        self.windows.update(windows)

    def marks(self, stream: str, partition: int) -> dict[int, float]:
        key = marks_key(stream, partition)
        entry = self._dirty.get(key) or self._contents().get(key)
        return dict(source_marks_of(entry).marks) if entry is not None else {}

    def set_marks(self, stream: str, partition: int, marks: dict[int, float]) -> None:
        if marks != self.marks(stream, partition):
            self._dirty[marks_key(stream, partition)] = SourceMarks(dict(marks))

    def get(self, shape: str, key: StateKey, window: WindowRange) -> Any | None:
        entry = self._read(key)
        if entry is None:
            return None
        windows = entry.windows.get(shape)
        return windows.get(window_name(window)) if windows is not None else None

    def set(self, shape: str, key: StateKey, window: WindowRange, state: Any) -> None:
        entry = self._entry(key)
        name = window_name(window)
        entry.windows.setdefault(shape, {})[name] = state
        self._hold(key, shape, name, window[1])

    def applied(self, key: StateKey, partition: int) -> int:
        entry = self._read(key)
        return entry.applied.get(partition, -1) if entry is not None else -1

    def set_applied(self, key: StateKey, partition: int, offset: int) -> None:
        self._entry(key).applied[partition] = offset

    def seen(self, partition: int, event_id: str) -> Seen | None:
        self._fresh()
        return self._seen[partition].get(event_id)

    def judged(self, partition: int, offset: int) -> float | None:
        self._fresh()
        return self._judged[partition].get(offset)

    def note_record(
        self, partition: int, offset: int, watermark: float, ids: Mapping[str, float]
    ) -> None:
        self._fresh()
        records = self._batch_records.get(partition)
        if records is None:
            records = self._batch_records[partition] = AppliedRecords()
            self._dirty[records_key(partition, offset)] = records
        records.watermarks.setdefault(offset, watermark)
        self._judged[partition].setdefault(offset, watermark)
        seen = self._seen[partition]
        for event_id, until in ids.items():
            records.ids.setdefault(event_id, offset)
            seen.setdefault(event_id, offset)
            if until > records.until:
                records.until = until

    def flush(self) -> int:
        """Write the entries changed since the last flush (delete those left empty); the number
        written. The records applied since may be acknowledged once this returns: the messages
        are with Faust's producer, which it flushes before it commits.

        What the batches applied of each partition's records goes first and the watermarks last,
        each partition's to its own changelog partition, in order: a worker that restarts with
        a watermark this batch moved also has the watermark each of its records was judged
        against (and judges a replayed one alike), and one that has a group key's state of this
        batch also has the ids its records counted."""
        now = time.monotonic()
        for partition, records in self._batch_records.items():
            until = _until(records)
            key = records_key(partition, min(records.watermarks))
            heappush(self._records[partition], (until, now, key))
        self._batch_records.clear()
        marks = []
        for key, entry in self._dirty.items():
            if key.startswith(MARKS_PREFIX):
                marks.append((key, entry))
            else:
                self._write(key, entry)
        for key, entry in marks:
            self._write(key, entry)
        written = len(self._dirty)
        self._dirty.clear()
        self._size = len(self.table)
        return written

    def _write(self, key: StateKey, entry: Any) -> None:
        if entry is not None and not (entry.__class__ is KeyState and not entry.windows):
            self.table[key] = entry
        elif key in self.table:
            del self.table[key]

    def expire(self, partition: int, watermark: float) -> int:
        """Drop the partition's windows that ended more than their shape's `expires` before
        `watermark`, and what batches applied of its records once past their `until`; the
        number of entries dropped. Call
        from inside the windowed agent before `flush`, which writes the shortened entries to
        the changelog of that partition."""
        self._fresh()
        dropped = 0
        for shape, window in self.windows.items():
            ends = self._ends.get((partition, shape))
            # A bounded number per call: a burst of tens of thousands of changelog writes at a
            # window's end inflates the process for good.
            while ends and dropped < MAX_EXPIRED_PER_CALL and window.stale(ends[0][0], watermark):
                _, key, name = heappop(ends)
                self._held.discard((key, shape, name))
                entry = self._entry(key)
                windows = entry.windows.get(shape)
                if windows is not None and windows.pop(name, None) is not None:
                    dropped += 1
                    if not windows:
                        del entry.windows[shape]
        records = self._records.get(partition)
        now = time.monotonic()
        while (
            records
            and records[0][0] < watermark
            and now - records[0][1] > RECORDS_KEEP_SECONDS
            and dropped < MAX_EXPIRED_PER_CALL
        ):
            _, _, key = heappop(records)
            self._forget_records(partition, key)
            self._dirty[key] = None
            dropped += 1
        return dropped

    def table_changed(self) -> None:
        """Faust changed the table (recovery, a rebalance): the next use reads it again."""
        self._size = -1

    def _fresh(self) -> None:
        if len(self.table) != self._size:
            self._reread()

    def _read(self, key: StateKey) -> KeyState | None:
        """The key's entry, to read (as a record: the table holds JSON after a recovery)."""
        entry = self._dirty.get(key)
        if entry is not None:
            return cast(KeyState, entry)
        contents = self._contents()
        stored = contents.get(key)
        if stored is None:
            return None
        if stored.__class__ is not KeyState:
            stored = key_state_of(stored)
            if contents is not self.table:
                # The table's storage: the same state, read once, and no changelog write.
                contents[key] = stored
        return stored

    def _entry(self, key: StateKey) -> KeyState:
        """The key's entry, to change: marked to be written by `flush`."""
        entry = self._dirty.get(key)
        if entry is None:
            entry = self._dirty[key] = self._read(key) or KeyState()
        return entry

    def _contents(self) -> MutableMapping[StateKey, Any]:
        """What the table holds, to read. A Faust table reports each read to its sensors (a
        Prometheus label lookup per read, several per event); its storage (`data`, created
        when the worker starts) does not. Writes go through the table, for its changelog."""
        contents: MutableMapping[StateKey, Any] = getattr(self.table, "data", self.table)
        return contents

    def _hold(self, key: StateKey, shape: str, name: str, end: float) -> None:
        held = (key, shape, name)
        if held not in self._held:
            # A state key names its group key, and so the partition the hop sent it to.
            grouping, _, group_key = key.partition("\x00")
            partition = partition_for(grouping, group_key, self.partitions)
            self._held.add(held)
            heappush(self._ends[(partition, shape)], (end, key, name))

    def _index_records(self, partition: int, key: StateKey, records: AppliedRecords) -> None:
        seen, judged = self._seen[partition], self._judged[partition]
        for event_id, offset in records.ids.items():
            found = seen.get(event_id)
            if found is None or found > offset:
                seen[event_id] = offset
        judged.update(records.watermarks)
        heappush(self._records[partition], (_until(records), time.monotonic(), key))

    def _forget_records(self, partition: int, key: StateKey) -> None:
        stored = self._dirty.get(key) or self._contents().get(key)
        if stored is None:
            return
        records = applied_records_of(stored)
        seen, judged = self._seen[partition], self._judged[partition]
        for event_id, offset in records.ids.items():
            if seen.get(event_id) == offset:
                del seen[event_id]
        for offset in records.watermarks:
            judged.pop(offset, None)

    def _reread(self) -> None:
        """Hold exactly the windows and applied records in the table: after Faust read entries
        back from the changelog (a restart, partitions assigned) or dropped those of revoked
        partitions."""
        self._ends.clear()
        self._held.clear()
        self._seen.clear()
        self._judged.clear()
        self._records.clear()
        for key, entry in list(self.table.items()):
            if key.startswith(RECORDS_PREFIX):
                partition = int(key.rsplit("\x00", 1)[1])
                self._index_records(partition, key, applied_records_of(entry))
                continue
            if key.startswith("\x01"):
                continue
            for shape, windows in key_state_of(entry).windows.items():
                for name in windows:
                    self._hold(key, shape, name, window_of(name)[1])
        # This batch's records, not yet in the table.
        for partition, records in self._batch_records.items():
            seen, judged = self._seen[partition], self._judged[partition]
            judged.update(records.watermarks)
            for event_id, found in records.ids.items():
                seen.setdefault(event_id, found)
        self._size = len(self.table)


def _until(records: AppliedRecords) -> float:
    """Until when (event time) a batch's applied records are kept: while their ids count as
    seen, or, with none, about as long as their watermarks may be asked for."""
    if records.ids:
        return records.until
    return max(records.watermarks.values(), default=-math.inf)
