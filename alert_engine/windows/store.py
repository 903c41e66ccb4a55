"""Where window state lives: `(rule and key, window range) -> state`.

Live, each window shape has a Faust windowed table (memory store, changelog topic in Kafka): a
restarted worker reads its partitions' state back before it consumes, and Faust drops windows
once they are older than their grace period. A replay or `rules test` uses `MemoryWindowStore`.
The evaluator sees only this protocol, so both run the same windowing code.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from heapq import heappop, heappush
from typing import Any, Protocol

from faust.windows import HoppingWindow

from alert_engine.windows.definitions import WindowRange
from alert_engine.windows.hop import partition_for

# (rule name, group key value) as one string, so table keys stay JSON-able and small.
StateKey = str


def state_key(rule: str, key: str) -> StateKey:
    return f"{rule}\x00{key}"


class WindowStore(Protocol):
    def window(self, shape: str) -> HoppingWindow: ...

    def get(self, shape: str, key: StateKey, window: WindowRange) -> Any | None: ...

    def set(self, shape: str, key: StateKey, window: WindowRange, state: Any) -> None: ...


class MemoryWindowStore:
    """Window state in a dict, for replays and rule tests; never expires (replays are bounded)."""

    def __init__(self, windows: Mapping[str, HoppingWindow]) -> None:
        self.windows = dict(windows)
        self.data: dict[tuple[str, StateKey, WindowRange], Any] = {}

    def window(self, shape: str) -> HoppingWindow:
        return self.windows[shape]

    def get(self, shape: str, key: StateKey, window: WindowRange) -> Any | None:
        return self.data.get((shape, key, window))

    def set(self, shape: str, key: StateKey, window: WindowRange, state: Any) -> None:
        self.data[(shape, key, window)] = state


class TableWindowStore:
    """Faust windowed tables, one per window shape, used from inside the windowed agent.

    Keys are Faust's own windowed keys, `(key, (start, end))`; writing one sends it to the
    table's changelog partition (the partition of the record being processed, which the hop made
    the partition of the group key).

    Windows expire by event time, here, not by Faust: Faust drops a window once its end is
    `expires` behind the wall clock, so a worker catching up on a backlog (after downtime, or
    lagging under load) would count into windows that its next cleanup deletes, and the rule
    would start over from zero. Here a window goes once its end is `expires` behind the event
    time of its partition (`expire`), after the evaluator stopped accepting events into it. The
    tables' own windows have no `expires`, so Faust keeps no expiry bookkeeping of its own.
    """

    def __init__(
        self, tables: Mapping[str, Any], windows: Mapping[str, HoppingWindow], partitions: int
    ) -> None:
        # `windows`: the tables' shapes with their `expires`.
        self.tables = dict(tables)
        self.windows = dict(windows)
        self.partitions = partitions
        # Per partition and shape, the windows still held, soonest end first.
        self._ends: dict[tuple[int, str], list[tuple[float, StateKey, WindowRange]]] = defaultdict(
            list
        )
        self._held: set[tuple[str, StateKey, WindowRange]] = set()
        self._held_per_shape: Counter[str] = Counter()

    def window(self, shape: str) -> HoppingWindow:
        return self.windows[shape]

    def get(self, shape: str, key: StateKey, window: WindowRange) -> Any | None:
        return self.tables[shape].get((key, window))

    def set(self, shape: str, key: StateKey, window: WindowRange, state: Any) -> None:
        self.tables[shape][(key, window)] = state
        self._hold(shape, key, window)

    def _hold(self, shape: str, key: StateKey, window: WindowRange) -> None:
        entry = (shape, key, window)
        if entry not in self._held:
            # A state key names its group key, and so the partition the hop sent it to.
            grouping, _, group_key = key.partition("\x00")
            partition = partition_for(grouping, group_key, self.partitions)
            self._held.add(entry)
            self._held_per_shape[shape] += 1
            heappush(self._ends[(partition, shape)], (window[1], key, window))

    def expire(self, partition: int, watermark: float) -> int:
        """Delete the partition's windows that ended more than their shape's `expires` before
        `watermark` (from inside the windowed agent, so the deletions reach the changelog of
        that partition); the number deleted."""
        deleted = 0
        for shape, table in self.tables.items():
            self._adopt(shape, table)
            ends = self._ends.get((partition, shape))
            window = self.windows[shape]
            while ends and window.stale(ends[0][0], watermark):
                _, key, range_ = heappop(ends)
                self._held.discard((shape, key, range_))
                self._held_per_shape[shape] -= 1
                if (key, range_) in table:
                    del table[(key, range_)]
                    deleted += 1
        return deleted

    def _adopt(self, shape: str, table: Any) -> None:
        """Hold the windows this worker did not write itself: read back from the changelog
        after a restart or a rebalance."""
        if len(table) <= self._held_per_shape[shape]:
            return
        for key, range_ in list(table.keys()):
            self._hold(shape, key, (float(range_[0]), float(range_[1])))


class BufferedWindowStore:
    """Reads through to another store and keeps writes until `flush`.

    The windowed agent takes a batch of events as one Kafka record; a window touched by many of
    them is written to its table (a changelog message) once, when the batch is done."""

    def __init__(self, inner: WindowStore) -> None:
        self.inner = inner
        self._pending: dict[tuple[str, StateKey, WindowRange], Any] = {}

    def window(self, shape: str) -> HoppingWindow:
        return self.inner.window(shape)

    def get(self, shape: str, key: StateKey, window: WindowRange) -> Any | None:
        pending = self._pending.get((shape, key, window))
        return pending if pending is not None else self.inner.get(shape, key, window)

    def set(self, shape: str, key: StateKey, window: WindowRange, state: Any) -> None:
        self._pending[(shape, key, window)] = state

    def flush(self) -> int:
        """Write what the batch changed; the number of entries written."""
        for (shape, key, window), state in self._pending.items():
            self.inner.set(shape, key, window, state)
        written = len(self._pending)
        self._pending.clear()
        return written
