"""Windowed rules, evaluated: where a batch of events becomes window counts and alerts.

Windowed rules take steps, because a window's state must live on the partition of its group key:
`Evaluator.regroup` names the group keys an event belongs to, each with what the rules of that
grouping count of it (`inputs`); `fold` (`windows.folding`) counts a batch of events into
partial states per group key, rule family and window (live, in the input agent; they travel to
the windows topic, see `windows.hop`); the windowed agent applies each record once
(`windows.receiving`), and `merge` (`windows.firing`) adds the partial states to the key's
windows in a `WindowStore` and fires a rule the first time its condition holds in a window
after a batch. It needs the validated event only to build an alert. A replay counts each event
as a batch of its own (`count_in_windows`): its rules fire on the very event. Lateness is
judged against `windows.watermarks`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alert_engine.alerts import Alert
from alert_engine.conditions.expressions import Activation
from alert_engine.events import Event, Stream
from alert_engine.windows.counting import Partials, Validated, family_values
from alert_engine.windows.families import Family
from alert_engine.windows.firing import Firing
from alert_engine.windows.folding import Folding
from alert_engine.windows.hop import Inputs, Regroup
from alert_engine.windows.joins import JOIN_GROUPING
from alert_engine.windows.receiving import Receiving
from alert_engine.windows.store import WindowStore
from alert_engine.windows.watermarks import WatermarkTracking

# `Stream.value` goes through an enum descriptor; this is a dict lookup.
_STREAM_NAMES = {stream: stream.value for stream in Stream}


class WindowedEvaluation(Folding, Firing, Receiving, WatermarkTracking):
    """The windowed half of `Evaluator`: its families and pane groups per stream and grouping,
    the watermarks per stream and windows partition, and the caches of window ranges."""

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
        watermark: float | None = None,
    ) -> list[Alert]:
        """Add the event to the windows of its group key; alerts of rules that now hold. The
        group's `inputs` are computed from the event when it has none. `source` is the input
        partition the event came from (default: `partition` itself, as in a replay); lateness
        is judged against `watermark`, or the partition's after the event."""
        stream = group.stream
        activation = activation or self.activation(stream, event)
        timestamp = event.time.timestamp()
        if group.grouping == JOIN_GROUPING:
            self.stats.windowed_in[_STREAM_NAMES[stream]] += 1
            if watermark is None:
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
            watermark=watermark,
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
        watermark: float | None = None,
    ) -> list[Alert]:
        """Count one event at `timestamp` with `inputs` (one per rule family of the group's
        grouping, `Evaluator.inputs`) in the windows of its group key; alerts of rules that now
        hold. `event` gives the validated event, asked for only to build an alert. The same two
        steps as live, for a batch of one: `fold`, then `merge`; lateness judged against
        `watermark`, or the partition's after this event."""
        stream = group.stream
        self.stats.windowed_in[_STREAM_NAMES[stream]] += 1
        if watermark is None:
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
