"""Where window state lives: `(rule and key, window range) -> state`.

Live, each window shape has a Faust windowed table (memory store, changelog topic in Kafka): a
restarted worker reads its partitions' state back before it consumes, and Faust drops windows
once they are older than their grace period. A replay or `rules test` uses `MemoryWindowStore`.
The evaluator sees only this protocol, so both run the same windowing code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from faust.windows import HoppingWindow

from alert_engine.windows.definitions import WindowRange

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

    Keys are Faust's own windowed keys, `(key, (start, end))`, so Faust tracks each window's end
    for expiry; writing one sends it to the table's changelog partition (the partition of the
    event being processed, which the repartitioning made the partition of the group key).
    """

    def __init__(self, tables: Mapping[str, Any]) -> None:
        self.tables = dict(tables)

    def window(self, shape: str) -> HoppingWindow:
        window: HoppingWindow = self.tables[shape].window
        return window

    def get(self, shape: str, key: StateKey, window: WindowRange) -> Any | None:
        return self.tables[shape].get((key, window))

    def set(self, shape: str, key: StateKey, window: WindowRange, state: Any) -> None:
        self.tables[shape][(key, window)] = state


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
