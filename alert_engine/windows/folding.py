"""Folding: a batch's events counted into partial states, per pane of a pane group or per family
and window, and a pane's counts spread over the windows that hold it.

Live, the input agent computes what each family counts of an event (`inputs`), folds it
(`fold`) and ships the partial states on the `windows` topic; the windowed agent spreads them
over windows (`in_windows`) and merges them (`windows.firing`). A replay folds each event as a
batch of its own. Lateness here is the sender's: a window that ended more than its grace before
`mark` takes no more events.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from faust.windows import HoppingWindow

from alert_engine.conditions.expressions import Activation
from alert_engine.events import Stream
from alert_engine.stats import Stats
from alert_engine.windows.counting import (
    Counting,
    Partial,
    Partials,
    WindowPartial,
    count_into,
    family_values,
    folds_for,
    later_ref,
)
from alert_engine.windows.definitions import WindowRange, window_ranges
from alert_engine.windows.families import Family, PaneGroup
from alert_engine.windows.hop import Inputs
from alert_engine.windows.layout import Layout

# Window ranges kept for the groups of recent events (a few per event and window shape).
MAX_CACHED_RANGES = 4096


class Folder:
    """Counts events into partial states for the rules of one `Layout` (replaced by a reload),
    into `stats`; keeps the window ranges and pane closes of recent events."""

    def __init__(
        self,
        layout: Layout,
        stats: Stats,
        ranges: dict[tuple[HoppingWindow, float], list[WindowRange]] | None = None,
    ) -> None:
        self.layout = layout
        self.stats = stats
        # Window ranges by (window, step number of the event time): the same for every event
        # of one step (steps are whole seconds), so recent events share them.
        self._ranges: dict[tuple[HoppingWindow, float], list[WindowRange]] = (
            {} if ranges is None else ranges
        )
        # When each pane of a pane group stops taking events, by (group id, pane number).
        self._pane_closes: dict[tuple[str, float], float] = {}

    def reload(self, layout: Layout) -> None:
        self.layout = layout
        self._pane_closes = {}  # a group id names the same counting, not the same windows

    def counting_into(self, stats: Stats) -> Folder:
        """A folder of the same layout and window ranges that counts misses and late events
        into `stats` instead."""
        other = Folder(self.layout, stats, self._ranges)
        other._pane_closes = self._pane_closes
        return other

    def inputs(self, families: tuple[Family, ...], activation: Activation) -> Inputs | None:
        """What each rule family counts of the event: its aggregates' argument values, or None
        when its `where` is false or a value cannot be computed (a miss for its rules); None
        when no family counts the event."""
        memo = activation.memo
        found: list[list[Any] | None] = []
        counted = False
        for family in families:
            # Families of other groupings often read the same `where` and arguments: their
            # values are kept for the event under one key.
            values = memo.get(family.inputs)
            if values is None:
                values = memo[family.inputs] = family_values(family, activation)
            if values.__class__ is list:
                counted = True
                found.append(values)
                continue
            if values is not False:  # an EvaluationError
                misses = self.stats.rule_misses
                for rule in family.rules:
                    misses[rule.name] += 1
            found.append(None)
        return tuple(found) if counted else None

    def fold(
        self,
        stream: Stream,
        grouping: str,
        inputs: Inputs,
        timestamp: float,
        mark: float,
        into: Partials,
        ref: Any,
    ) -> None:
        """Count one event of a batch (`ref` names it) into `into`: the state of the batch's
        events so far (`Partial`) per pane of a pane group (`PaneGroup`: the families of
        `grouping` that count the same values), or per family and window for an event one of
        whose windows ended more than its grace before `mark` (the stream's latest event time):
        such a window takes no more events. `inputs` are the event's values per family
        (`inputs`)."""
        if len(self._ranges) > MAX_CACHED_RANGES:
            self._ranges.clear()
        if len(self._pane_closes) > MAX_CACHED_RANGES:
            self._pane_closes.clear()
        for group in self.layout.panes[stream].get(grouping, ()):
            values = inputs[group.first]
            if values is None:
                continue
            folds = folds_for(group.families[0], values)
            if folds.__class__ is not list:
                # A value of the wrong type (text where a number belongs): not counted.
                misses = self.stats.rule_misses
                for rule in group.rules:
                    misses[rule.name] += 1
                continue
            assert isinstance(folds, list)
            if timestamp >= 0:
                pane = group.pane
                number = timestamp // pane
                closes = self._pane_closes.get((group.id, number))
                if closes is None:
                    closes = self._pane_closes[(group.id, number)] = self._closes(group, timestamp)
                if mark <= closes:
                    start = number * pane
                    count_into(into, group, start, start + pane, folds, ref)
                    continue
            for family in group.families:
                for start, end in self.window_ranges(family.window, timestamp):
                    if end + family.grace < mark:
                        late = self.stats.late_events
                        for rule in family.rules:
                            late[rule.name] += 1
                        continue
                    count_into(into, family, start, end, folds, ref)

    def _closes(self, group: PaneGroup, timestamp: float) -> float:
        """The latest mark at which every window of the group's families at `timestamp` still
        takes events: the earliest end plus grace (the oldest window of each family ends first).
        The same for the whole pane of `timestamp`: a pane lies in whole windows."""
        return min(
            self.window_ranges(family.window, timestamp)[0][1] + family.grace
            for family in group.families
        )

    def window_ranges(self, window: HoppingWindow, timestamp: float) -> list[WindowRange]:
        step = timestamp // window.step if timestamp >= 0 else timestamp
        ranges = self._ranges.get((window, step))
        if ranges is None:
            ranges = self._ranges[(window, step)] = window_ranges(window, timestamp)
        return ranges

    def in_windows(self, partials: Iterable[Partial | Counting]) -> list[WindowPartial]:
        """Per family and window, the partial states of panes (`fold`) and windows: a pane's
        counts go to every window of the group's families that holds the pane. The partials
        of one window (several panes, or a pane and a late event's own) are merged into one,
        so the window's condition is checked once, on the whole batch."""
        found: dict[tuple[str, float], WindowPartial] = {}

        def add(
            family: Family, start: float, end: float, count: int, states: list[Any], ref: Any
        ) -> None:
            earlier = found.get((family.id, start))
            if earlier is not None:
                # A new state: a pane's states are shared by all the windows that hold it.
                merged = family.initial()
                for i, merge in enumerate(family.merges):
                    merged[i] = merge(merge(merged[i], earlier.states[i]), states[i])
                count, states, ref = earlier.events + count, merged, later_ref(earlier.ref, ref)
            found[(family.id, start)] = WindowPartial(family, start, end, count, states, ref)

        for partial in partials:
            counted, start, end = partial.counted, partial.start, partial.end
            count, states, ref = partial.events, partial.states, partial.ref
            if isinstance(counted, Family):
                add(counted, start, end, count, states, ref)
                continue
            pane = end - start
            for family in counted.families:
                if family.window.step % pane:
                    continue  # a pane of other rules (a reload): not whole windows of these
                for window_start, window_end in self.window_ranges(family.window, start):
                    add(family, window_start, window_end, count, states, ref)
        return list(found.values())
