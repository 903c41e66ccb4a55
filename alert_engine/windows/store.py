"""Where window state lives: `(rule and key, window range) -> state`.

Live, the state sits in one Faust table (memory store, changelog topic in Kafka): a restarted
worker reads its partitions' state back before it consumes. A replay or `rules test` uses
`MemoryWindowStore`. The evaluator sees only this protocol, so both run the same windowing code.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, MutableMapping
from functools import lru_cache
from heapq import heappop, heappush
from typing import Any, Protocol

import faust
from faust.windows import HoppingWindow

from alert_engine.windows.definitions import WindowRange
from alert_engine.windows.hop import partition_for

# (rule name, group key value) as one string, so table keys stay JSON-able and small.
StateKey = str


def state_key(rule: str, key: str) -> StateKey:
    return f"{rule}\x00{key}"


class WindowStore(Protocol):
    def window(self, shape: str) -> HoppingWindow: ...

    def marks(self, stream: str, partition: int) -> dict[int, float]:
        """The watermark sources' latest times of `stream` on `partition`, as last set."""
        ...

    def set_marks(self, stream: str, partition: int, marks: dict[int, float]) -> None: ...

    def get(self, shape: str, key: StateKey, window: WindowRange) -> Any | None: ...

    def set(self, shape: str, key: StateKey, window: WindowRange, state: Any) -> None: ...


class MemoryWindowStore:
    """Window state in a dict, for replays and rule tests; never expires (replays are bounded)."""

    def __init__(self, windows: Mapping[str, HoppingWindow]) -> None:
        self.windows = dict(windows)
        self.data: dict[tuple[str, StateKey, WindowRange], Any] = {}
        self.watermarks: dict[tuple[str, int], dict[int, float]] = {}

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


# Windows deleted per `expire` call; the rest wait for the partition's next record.
MAX_EXPIRED_PER_CALL = 1000

# A table entry: per window shape, per window (`window_name`), the rules' state.
Entry = dict[str, dict[str, Any]]


# No state key starts so: a state key starts with a rule family's grouping.
MARKS_PREFIX = "\x01marks\x00"


def marks_key(stream: str, partition: int) -> StateKey:
    """The table entry of a stream's watermark on a windows partition: `{"marks": {source:
    latest}}`, written with that partition's window state."""
    return f"{MARKS_PREFIX}{stream}\x00{partition}"


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

    def partition_for_key(self, key: Any) -> int | None:
        if str(key).startswith(MARKS_PREFIX):
            return int(str(key).rsplit("\x00", 1)[1]) % (self.partitions or 1)
        grouping, _, group_key = str(key).partition("\x00")
        return partition_for(grouping, group_key, self.partitions or 1)


class TableWindowStore:
    """All windows of one group key in one entry of one Faust table, written once per batch.

    An entry is `{shape: {window: state}}` under the state key (grouping and key). The windowed
    agent takes a batch of records; `set` changes the entry in memory and `flush`, when the
    batch is done, writes each changed entry to the table: one changelog message per group key
    and batch, to the partition of the group key (`WindowStateTable`), which the hop made the
    windows partition the key's records come from. A hopping window of 1 h every 5 min puts an
    event in 12 windows: with an entry per window (a Faust windowed table) that was 12
    changelog messages per key and batch, and those writes were most of the worker's time.

    Windows expire by event time, here, not by Faust: Faust drops a windowed table's window once
    its end is `expires` behind the wall clock, so a worker catching up on a backlog would count
    into windows its next cleanup deletes. Here a window goes once its end is `expires` behind
    the event time of its partition (`expire`), after the evaluator stopped accepting events
    into it.
    """

    def __init__(
        self,
        table: MutableMapping[StateKey, Entry],
        windows: Mapping[str, HoppingWindow],
        partitions: int,
    ) -> None:
        self.table = table
        # The shapes with their `expires`; a reload adds shapes (`add_windows`).
        self.windows = dict(windows)
        self.partitions = partitions
        # Entries changed by the current batch, written by `flush`.
        self._dirty: dict[StateKey, Entry] = {}
        # Per partition and shape, the windows still held, soonest end first.
        self._ends: dict[tuple[int, str], list[tuple[float, StateKey, str]]] = defaultdict(list)
        self._held: set[tuple[StateKey, str, str]] = set()
        # The table's size after this store last wrote it: any other change is Faust's
        # recovery or a rebalance, after which the held windows are read again from the table.
        self._size = len(table)

    def window(self, shape: str) -> HoppingWindow:
        return self.windows[shape]

    def add_windows(self, windows: Mapping[str, HoppingWindow]) -> None:
        """The shapes of a reloaded rule set; shapes no rule uses any more stay until their
        windows expired."""
        self.windows.update(windows)

    def marks(self, stream: str, partition: int) -> dict[int, float]:
        key = marks_key(stream, partition)
        entry = self._dirty.get(key) or self._contents().get(key) or {}
        return {int(source): float(latest) for source, latest in entry.get("marks", {}).items()}

    def set_marks(self, stream: str, partition: int, marks: dict[int, float]) -> None:
        if marks != self.marks(stream, partition):
            key = marks_key(stream, partition)
            self._dirty[key] = {"marks": {str(source): latest for source, latest in marks.items()}}

    def get(self, shape: str, key: StateKey, window: WindowRange) -> Any | None:
        entry = self._dirty.get(key)
        if entry is None:
            entry = self._contents().get(key)
            if entry is None:
                return None
        windows = entry.get(shape)
        return windows.get(window_name(window)) if windows is not None else None

    def set(self, shape: str, key: StateKey, window: WindowRange, state: Any) -> None:
        entry = self._entry(key)
        name = window_name(window)
        entry.setdefault(shape, {})[name] = state
        self._hold(key, shape, name, window[1])

    def flush(self) -> int:
        """Write the entries the batch changed (delete those left empty); the number written."""
        for key, entry in self._dirty.items():
            if entry:
                self.table[key] = entry
            elif key in self.table:
                del self.table[key]
        written = len(self._dirty)
        self._dirty.clear()
        self._size = len(self.table)
        return written

    def expire(self, partition: int, watermark: float) -> int:
        """Drop the partition's windows that ended more than their shape's `expires` before
        `watermark`; the number dropped. Call from inside the windowed agent before `flush`,
        which writes the shortened entries to the changelog of that partition."""
        if len(self.table) != self._size:
            self._reread()
        dropped = 0
        for shape, window in self.windows.items():
            ends = self._ends.get((partition, shape))
            # A bounded number per call: a burst of tens of thousands of changelog writes at a
            # window's end inflates the process for good.
            while ends and dropped < MAX_EXPIRED_PER_CALL and window.stale(ends[0][0], watermark):
                _, key, name = heappop(ends)
                self._held.discard((key, shape, name))
                entry = self._entry(key)
                windows = entry.get(shape)
                if windows is not None and windows.pop(name, None) is not None:
                    dropped += 1
                    if not windows:
                        del entry[shape]
        return dropped

    def table_changed(self) -> None:
        """Faust changed the table (recovery, a rebalance): the next `expire` reads it again."""
        self._size = -1

    def _entry(self, key: StateKey) -> Entry:
        """The key's entry, to change: marked to be written by `flush`."""
        entry = self._dirty.get(key)
        if entry is None:
            entry = self._dirty[key] = self._contents().get(key) or {}
        return entry

    def _contents(self) -> Mapping[StateKey, Entry]:
        """What the table holds, to read. A Faust table reports each read to its sensors (a
        Prometheus label lookup per read, several per event); its storage (`data`, created
        when the worker starts) does not. Writes go through the table, for its changelog."""
        contents: Mapping[StateKey, Entry] = getattr(self.table, "data", self.table)
        return contents

    def _hold(self, key: StateKey, shape: str, name: str, end: float) -> None:
        held = (key, shape, name)
        if held not in self._held:
            # A state key names its group key, and so the partition the hop sent it to.
            grouping, _, group_key = key.partition("\x00")
            partition = partition_for(grouping, group_key, self.partitions)
            self._held.add(held)
            heappush(self._ends[(partition, shape)], (end, key, name))

    def _reread(self) -> None:
        """Hold exactly the windows in the table: after Faust read entries back from the
        changelog (a restart, partitions assigned) or dropped those of revoked partitions."""
        self._ends.clear()
        self._held.clear()
        for key, entry in list(self.table.items()):
            if key.startswith(MARKS_PREFIX):
                continue
            for shape, windows in entry.items():
                for name in windows:
                    self._hold(key, shape, name, window_of(name)[1])
        self._size = len(self.table)
