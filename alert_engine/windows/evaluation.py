"""Windowed rules, evaluated: where a batch of events becomes window counts and alerts.

Windowed rules take steps, because a window's state must live on the partition of its group key:
`Evaluator.regroup` names the group keys an event belongs to, each with what the rules of that
grouping count of it (`inputs`); `fold` counts a batch of events into partial states per group
key, rule family and window (live, in the input agent; they travel to the windows topic, see
`windows.hop`); `merge` adds them to the key's windows in a `WindowStore` and fires a rule the
first time its condition holds in a window after a batch (`_check`). It needs the validated event
only to build an alert. A replay counts each event as a batch of its own (`count_in_windows`):
its rules fire on the very event. Lateness is judged against `windows.watermarks`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from faust.windows import HoppingWindow

from alert_engine.alerts import Alert, AlertWindow, jsonable
from alert_engine.conditions.expressions import CEL_ERRORS, Activation
from alert_engine.conditions.fastpaths import EXACT_INT
from alert_engine.events import Event, EventRejected, Stream, validate_event
from alert_engine.rules.ruleset import Rule
from alert_engine.windows.counting import (
    Fired,
    KeyBuckets,
    Partial,
    Partials,
    Validated,
    WindowPartial,
    count_into,
    family_values,
    folds_for,
    inputs_fit,
    later_ref,
    raised_alerts,
)
from alert_engine.windows.definitions import WindowRange, window_ranges
from alert_engine.windows.families import Family, PaneGroup, cohorts_of
from alert_engine.windows.hop import Inputs, ReceivedBatch, Regroup
from alert_engine.windows.joins import JOIN_GROUPING
from alert_engine.windows.parts import EvaluatorParts
from alert_engine.windows.store import WindowStore, state_key
from alert_engine.windows.watermarks import Watermark

log = logging.getLogger(__name__)

# Window ranges kept for the groups of recent events (a few per event and window shape).
MAX_CACHED_RANGES = 4096
# `Stream.value` goes through an enum descriptor; this is a dict lookup.
_STREAM_NAMES = {stream: stream.value for stream in Stream}


class WindowedEvaluation(EvaluatorParts):
    """The windowed half of `Evaluator`: its families and pane groups per stream and grouping,
    the watermarks per stream and windows partition, and the caches of window ranges."""

    _families: dict[Stream, dict[str, tuple[Family, ...]]]
    _panes: dict[Stream, dict[str, tuple[PaneGroup, ...]]]
    _counted_ids: dict[Stream, dict[str, dict[str, Family | PaneGroup]]]
    inputs_version: str
    idle_seconds: float
    input_partitions: int
    watermarks: dict[tuple[Stream, int], Watermark]
    _ranges: dict[tuple[HoppingWindow, float], list[WindowRange]]
    _pane_closes: dict[tuple[str, float], float]

    if TYPE_CHECKING:

        def _join(
            self, group: Regroup, event: Event, store: WindowStore, activation: Activation
        ) -> list[Alert]: ...

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

    def windowed(
        self,
        group: Regroup,
        event: Event,
        store: WindowStore,
        *,
        partition: int = 0,
        activation: Activation | None = None,
        source: int | None = None,
    ) -> list[Alert]:
        """Add the event to the windows of its group key; alerts of rules that now hold. The
        group's `inputs` are computed from the event when it has none. `source` is the input
        partition the event came from (default: `partition` itself, as in a replay)."""
        stream = group.stream
        activation = activation or self.activation(stream, event)
        timestamp = event.time.timestamp()
        if group.grouping == JOIN_GROUPING:
            self.stats.windowed_in[_STREAM_NAMES[stream]] += 1
            self._advance(stream, partition, timestamp, source)
            return self._join(group, event, store, activation)
        inputs = group.inputs
        if inputs is None:
            inputs = self.inputs(self._families[stream].get(group.grouping, ()), activation)
        found: Validated = (event, activation)
        return self.count_in_windows(
            group,
            inputs,
            timestamp,
            store,
            partition=partition,
            event=lambda: found,
            source=source,
        )

    def count_in_windows(
        self,
        group: Regroup,
        inputs: Inputs | None,
        timestamp: float,
        store: WindowStore,
        *,
        partition: int,
        event: Callable[[], Validated],
        source: int | None = None,
    ) -> list[Alert]:
        """Count one event at `timestamp` with `inputs` (one per rule family of the group's
        grouping, `Evaluator.inputs`) in the windows of its group key; alerts of rules that now
        hold. `event` gives the validated event, asked for only to build an alert. The same two
        steps as live, for a batch of one: `fold`, then `merge`."""
        stream = group.stream
        self.stats.windowed_in[_STREAM_NAMES[stream]] += 1
        watermark = self._advance(stream, partition, timestamp, source)
        if inputs is None:
            return []
        partials: Partials = {}
        self.fold(stream, group.grouping, inputs, timestamp, watermark, partials, None)
        if not partials:
            return []
        return self.merge(
            stream,
            group.grouping,
            group.key,
            self._in_windows(partials.values()),
            store,
            watermark,
            lambda _: event(),
        )

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
        (`Evaluator.inputs`)."""
        if len(self._ranges) > MAX_CACHED_RANGES:
            self._ranges.clear()
        if len(self._pane_closes) > MAX_CACHED_RANGES:
            self._pane_closes.clear()
        for group in self._panes[stream].get(grouping, ()):
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
                for start, end in self._window_ranges(family.window, timestamp):
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
            self._window_ranges(family.window, timestamp)[0][1] + family.grace
            for family in group.families
        )

    def _window_ranges(self, window: HoppingWindow, timestamp: float) -> list[WindowRange]:
        step = timestamp // window.step if timestamp >= 0 else timestamp
        ranges = self._ranges.get((window, step))
        if ranges is None:
            ranges = self._ranges[(window, step)] = window_ranges(window, timestamp)
        return ranges

    def _in_windows(self, partials: Iterable[Partial | list[Any]]) -> list[WindowPartial]:
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
                    merged[i] = merge(merge(merged[i], earlier[4][i]), states[i])
                count, states, ref = earlier[3] + count, merged, later_ref(earlier[5], ref)
            found[(family.id, start)] = (family, start, end, count, states, ref)

        for counted, start, end, count, states, ref in partials:
            if isinstance(counted, Family):
                add(counted, start, end, count, states, ref)
                continue
            pane = end - start
            for family in counted.families:
                if family.window.step % pane:
                    continue  # a pane of other rules (a reload): not whole windows of these
                for window_start, window_end in self._window_ranges(family.window, start):
                    add(family, window_start, window_end, count, states, ref)
        return list(found.values())

    def merge(
        self,
        stream: Stream,
        grouping: str,
        key: str,
        partials: Iterable[WindowPartial],
        store: WindowStore,
        watermark: float,
        event_of: Callable[[Any], Validated],
    ) -> list[Alert]:
        """Add the `partials` of group `key` (see `fold`) to its windows in `store`; alerts of
        rules whose condition now holds in them (see `raised_alerts`), built from the event a
        partial counted last (`event_of` its reference). A window that ended more than its
        grace before `watermark` takes no more events."""
        buckets = KeyBuckets(store, state_key(grouping, key))
        fired: Fired = {}
        for family, start, end, count, states, ref in partials:
            if end + family.grace < watermark:
                late = self.stats.late_events
                for rule in family.rules:
                    late[rule.name] += count
                continue
            window = (start, end)
            bucket = buckets.get(family.shape, window)
            merges = family.merges
            event = partial(event_of, ref)
            state = bucket.get(family.key)
            if state is not None:
                # The usual case: all the family's rules count in one state.
                current = state["a"]
                for i, merge in enumerate(merges):
                    current[i] = merge(current[i], states[i])
                total = state["n"] = state["n"] + count
                if total >= family.min_sample:
                    self._check(family, stream, key, window, state, None, event, fired)
                continue
            for cohort_key, state, members in cohorts_of(family, bucket):
                current = state["a"]
                for i, merge in enumerate(merges):
                    current[i] = merge(current[i], states[i])
                total = state["n"] = state["n"] + count
                bucket[cohort_key] = state  # a new state, or one moved by `cohorts_of`
                if total >= family.min_sample:
                    self._check(family, stream, key, window, state, members, event, fired)
        buckets.write_back()
        if not fired:
            return []
        return [
            alert
            for rule in self._ruleset.windowed[stream][grouping]
            if rule.name in fired
            for alert in raised_alerts(fired[rule.name])
        ]

    def windowed_batch(
        self, batch: ReceivedBatch, store: WindowStore, *, partition: int
    ) -> list[Alert]:
        """A record of the windows topic: the partial states of its group keys (`fold`)
        merged into their windows, and each item's event counted in its group's windows.

        A partial is merged into the family of the rules in force with the same id (same
        grouping, window, `where` and aggregates); one of a family no longer loaded (a reload
        in between) is left out. Items are counted from their inputs if computed for this
        `inputs_version`, else evaluated from the event, as `evaluate_all` does (joins, values
        that do not travel as JSON, records of earlier versions). An event is validated only
        if a rule fires on it."""
        stream = batch.stream
        validated: dict[int, Validated] = {}
        if (stream, partition) not in self.watermarks:
            # Started, or took the partition over: the watermark its last owner persisted.
            self._watermark(stream, partition).restore(store.marks(stream.value, partition))

        def event_of(index: int) -> Validated:
            if index not in validated:
                validated[index] = self._validated(stream, batch.events[index])
            return validated[index]

        alerts: list[Alert] = []
        if batch.groups:
            # Lateness was decided per event by the sender against its own input partition's
            # latest time; here against this partition's watermark over all the sources of its
            # events, before this record.
            watermark = self._watermark(stream, partition).value()
            by_id = self._counted_ids[stream]
            windowed_in = self.stats.windowed_in
            for grouping, key, events, shipped in batch.groups:
                windowed_in[_STREAM_NAMES[stream]] += events
                counted_ids = by_id.get(grouping)
                if counted_ids is None:
                    continue
                partials: list[Partial] = []
                for counted_id, start, end, count, states, index in shipped:
                    counted = counted_ids.get(counted_id)
                    if counted is None:
                        continue
                    if counted.accepts(states):
                        partials.append((counted, start, end, count, states, index))
                    else:
                        log.warning("unreadable window state on the windows topic: %r", states)
                if partials:
                    alerts.extend(
                        self.merge(
                            stream,
                            grouping,
                            key,
                            self._in_windows(partials),
                            store,
                            watermark,
                            event_of,
                        )
                    )
            for source, mark in batch.sources:
                self._advance(stream, partition, mark, source)

        shipped_inputs = batch.version == self.inputs_version
        families_of = self._families[stream]
        marks = batch.marks
        origins = batch.origins
        for item in batch.items:
            index = item.event
            inputs = item.inputs
            source = origins[index] if origins else -1
            if marks:
                self._advance(stream, partition, marks[index], source)
            if (
                shipped_inputs
                and inputs is not None
                and inputs_fit(families_of.get(item.grouping), inputs)
            ):
                alerts.extend(
                    self.count_in_windows(
                        Regroup(stream, item.grouping, item.key),
                        inputs,
                        batch.times[index],
                        store,
                        partition=partition,
                        event=partial(event_of, index),
                        source=source,
                    )
                )
                continue
            found = event_of(index)
            if found is None:
                continue
            event, activation = found
            alerts.extend(
                self.windowed(
                    Regroup(stream, item.grouping, item.key),
                    event,
                    store,
                    partition=partition,
                    activation=activation,
                    source=source,
                )
            )
        store.set_marks(stream.value, partition, self._watermark(stream, partition).snapshot())
        return alerts

    def forget_watermarks(self) -> None:
        """Partitions moved (a rebalance): each windows partition's watermark is read again
        from the store, where its last owner left it."""
        self.watermarks.clear()

    def _validated(self, stream: Stream, fields: dict[str, Any]) -> Validated:
        try:
            event = validate_event(stream, fields)
        except EventRejected as exc:
            # Validated before it was sent: only a foreign producer could get here.
            log.warning("invalid event on the windows topic: %s", exc)
            return None
        return event, self.activation(stream, event)

    def _watermark(self, stream: Stream, partition: int) -> Watermark:
        found = self.watermarks.get((stream, partition))
        if found is None:
            found = self.watermarks[(stream, partition)] = Watermark.over(
                range(self.input_partitions), self.idle_seconds
            )
        return found

    def _advance(
        self, stream: Stream, partition: int, timestamp: float, source: int | None = None
    ) -> float:
        """The partition's watermark after its source `source` (an input partition; default
        the partition itself) showed an event at `timestamp`."""
        return self._watermark(stream, partition).advance(
            partition if source is None else source, timestamp
        )

    def watermark(self, partition: int) -> float:
        """The latest watermark of any stream on `partition`: windows there whose end is this
        far behind are done (the store drops them)."""
        return max(
            (mark.value() for (_, at), mark in self.watermarks.items() if at == partition),
            default=-math.inf,
        )

    def _check(
        self,
        family: Family,
        stream: Stream,
        key: str,
        window: WindowRange,
        state: dict[str, Any],
        members: frozenset[str] | None,
        event: Callable[[], Validated],
        fired: Fired,
    ) -> None:
        """Evaluate the conditions of the rules counting in `state` (all of the family's, or
        the state ids `members`) that may fire now."""
        count = state["n"]
        fired_ids: list[str] = state["f"]
        current = state["a"]
        variables: dict[str, Any] = {}
        # The names of values the Python form of a condition cannot read (null, text, NaN):
        # `plain_number` inlined.
        others: list[str] = []
        for name, i, result in family.reads:
            value = variables[name] = result(current[i])
            kind = value.__class__
            if kind is float:
                if value == value:
                    continue
            elif kind is int and -EXACT_INT <= value <= EXACT_INT:
                continue
            others.append(name)
        if family.reads_key:
            variables["key"] = key
            others.append("key")
        context: Any = None
        for guard, checks in family.checks:
            if (
                guard is not None
                and (not others or guard.names.isdisjoint(others))
                and not guard.test(variables)
            ):
                continue  # false for every rule of the group
            for rule, state_id, min_sample, numeric in checks:
                if count < min_sample or state_id in fired_ids:
                    continue
                if members is not None and state_id not in members:
                    continue
                if numeric is not None and (not others or numeric.names.isdisjoint(others)):
                    holds: Any = numeric.test(variables)
                else:
                    if context is None:
                        # One context for all the family's conditions: they read the same
                        # aggregates.
                        context = Activation(variables, self._ruleset.window_functions).context
                    # `Condition.evaluate` inlined.
                    try:
                        holds = rule.condition.program.execute(context)
                    except CEL_ERRORS:
                        holds = None
                if holds is not True and holds is not False:
                    # e.g. an average over no values yet (null): the condition cannot hold.
                    self.stats.rule_misses[rule.name] += 1
                    continue
                if holds:
                    fired_ids.append(state_id)
                    found = event()
                    if found is None:
                        continue  # an invalid event (logged): no alert can be built
                    results = {
                        aggregate.name: aggregate.result(value)
                        for aggregate, value in zip(family.aggregates, current, strict=True)
                    }
                    fired.setdefault(rule.name, []).append(
                        (
                            window,
                            self._window_alert(rule, stream, key, window, results, count, *found),
                        )
                    )

    def _window_alert(
        self,
        rule: Rule,
        stream: Stream,
        key: str,
        window: tuple[float, float],
        results: dict[str, Any],
        sample: int,
        event: Event,
        activation: Activation,
    ) -> Alert:
        assert rule.windowed is not None and rule.spec.group_by is not None
        self.stats.rule_matches[rule.name] += 1
        start = datetime.fromtimestamp(window[0], UTC)
        end = datetime.fromtimestamp(window[0] + rule.windowed.window.size, UTC)
        values = {**results, "window_start": start, "window_end": end}
        about = AlertWindow(
            group_by=rule.spec.group_by,
            key=key,
            start=start,
            end=end,
            condition=rule.spec.condition,
            aggregates={name: jsonable(value) for name, value in results.items()},
            sample=sample,
            min_sample=rule.windowed.min_sample,
        )
        return self._alert(
            rule,
            stream,
            key,
            event.model_dump(mode="json"),
            values,
            event,
            self.clock(),
            activation,
            id_key=f"{key}@{int(window[0])}",
            window=about,
        )
