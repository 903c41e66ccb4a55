"""Firing: partial states merged into a group key's windows, the rules' conditions checked once
per window and batch, and the alerts of the windows that now hold.

A rule fires once per key and window, the first time its condition holds with at least its
`min_sample` events. Every window that fires raises its alert (`raised_alerts`: hopping windows
that hold at once raise one, for the oldest), built by the filter side (`BuildAlert`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from alert_engine.alerts import Alert, AlertWindow, jsonable
from alert_engine.conditions.expressions import CEL_ERRORS, Activation
from alert_engine.conditions.fastpaths import EXACT_INT
from alert_engine.events import Event, Stream
from alert_engine.rules.ruleset import Rule, Ruleset
from alert_engine.stats import Stats
from alert_engine.windows.counting import (
    Fired,
    KeyBuckets,
    Partials,
    Validated,
    WindowPartial,
    raised_alerts,
)
from alert_engine.windows.definitions import WindowRange
from alert_engine.windows.families import Family, cohorts_of
from alert_engine.windows.folding import Folder
from alert_engine.windows.hop import Inputs
from alert_engine.windows.state import CohortState
from alert_engine.windows.store import WindowStore, state_key

# How the filter side builds an alert (`Evaluator._alert`), from: the rule, the stream, the key,
# the event's fields, the values shown, the event, when it fired, the event's activation, what
# the alert id is made of instead of the key (None: the key), and the window.
BuildAlert = Callable[
    [
        Rule,
        Stream,
        str,
        dict[str, Any],
        dict[str, object],
        Event,
        datetime,
        Activation,
        str | None,
        AlertWindow | None,
    ],
    Alert,
]


@dataclass(frozen=True, slots=True)
class Firing:
    """Fires the windowed rules of one ruleset (replaced by a reload) on the partial states
    `folder` counted; misses, late events and matches go to `stats`."""

    ruleset: Ruleset
    folder: Folder
    stats: Stats
    clock: Callable[[], datetime]
    build_alert: BuildAlert

    def count(
        self,
        stream: Stream,
        grouping: str,
        key: str,
        inputs: Inputs,
        timestamp: float,
        store: WindowStore,
        watermark: float,
        event: Callable[[], Validated],
    ) -> list[Alert]:
        """One event at `timestamp` with `inputs` counted in the windows of group `key` as a
        batch of its own, the same two steps as live: `fold`, then `merge`; lateness judged
        against `watermark`. `event` gives the validated event, asked for only to build an
        alert."""
        partials: Partials = {}
        self.folder.fold(stream, grouping, inputs, timestamp, watermark, partials, None)
        if not partials:
            return []
        return self.merge(
            stream,
            grouping,
            key,
            self.folder.in_windows(partials.values()),
            store,
            watermark,
            lambda _: event(),
        )

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
        """Add the `partials` of group `key` (see `Folder.fold`) to its windows in `store`;
        alerts of rules whose condition now holds in them (see `raised_alerts`), built from the
        event a partial counted last (`event_of` its reference). A window that ended more than its
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
                current = state.aggregates
                for i, merge in enumerate(merges):
                    current[i] = merge(current[i], states[i])
                state.count += count
                if state.count >= family.min_sample:
                    self._check(family, key, window, state, None, event, fired)
                continue
            for cohort_key, state, members in cohorts_of(family, bucket):
                current = state.aggregates
                for i, merge in enumerate(merges):
                    current[i] = merge(current[i], states[i])
                state.count += count
                bucket[cohort_key] = state  # a new state, or one moved by `cohorts_of`
                if state.count >= family.min_sample:
                    self._check(family, key, window, state, members, event, fired)
        buckets.write_back()
        if not fired:
            return []
        return [
            alert
            for rule in self.ruleset.windowed[stream][grouping]
            if rule.name in fired
            for alert in raised_alerts(fired[rule.name])
        ]

    def _check(
        self,
        family: Family,
        key: str,
        window: WindowRange,
        state: CohortState,
        members: frozenset[str] | None,
        event: Callable[[], Validated],
        fired: Fired,
    ) -> None:
        """Evaluate the conditions of the rules counting in `state` (all of the family's, or
        the state ids `members`) that may fire now."""
        count = state.count
        fired_ids = state.fired
        current = state.aggregates
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
                        context = Activation(variables, self.ruleset.window_functions).context
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
                    about = window_about(rule, key, window, results, count)
                    fired.setdefault(rule.name, []).append(
                        (window, self._window_alert(rule, window, about, found))
                    )

    def _window_alert(
        self, rule: Rule, window: WindowRange, about: AlertWindow, found: tuple[Event, Activation]
    ) -> Alert:
        """The alert of `rule` for the `window` it fired in (`about`), showing `found`."""
        self.stats.rule_matches[rule.name] += 1
        event, activation = found
        # The aggregates' results and the window's bounds, as the alert's values hold them.
        values = {**about.aggregates, "window_start": about.start, "window_end": about.end}
        return self.build_alert(
            rule,
            rule.spec.source,
            about.key,
            event.model_dump(mode="json"),
            values,
            event,
            self.clock(),
            activation,
            f"{about.key}@{int(window[0])}",
            about,
        )


def window_about(
    rule: Rule, key: str, window: WindowRange, results: dict[str, Any], sample: int
) -> AlertWindow:
    """What an alert of `rule` for group `key` says of the window it fired in: the window's
    bounds, the condition, the aggregates' `results` and the `sample` of events counted."""
    assert rule.windowed is not None and rule.spec.group_by is not None
    return AlertWindow(
        group_by=rule.spec.group_by,
        key=key,
        start=datetime.fromtimestamp(window[0], UTC),
        end=datetime.fromtimestamp(window[0] + rule.windowed.window.size, UTC),
        condition=rule.spec.condition,
        aggregates={name: jsonable(value) for name, value in results.items()},
        sample=sample,
        min_sample=rule.windowed.min_sample,
    )
