"""Where an event becomes alerts: decode, validate, run every rule of its stream, build alerts.

Pure and synchronous, so the live agents, `alert-engine rules test` and the replay backtest all run
exactly this code. Filters decide on one event (`matches`). For windowed rules `regroup` names
the group keys an event belongs to, each with what the rules of that grouping count of it; the
rest of their way, counting into windows and firing, is `windows.evaluation` (joins:
`windows.joins`), whose methods `Evaluator` has.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from faust.windows import HoppingWindow

from alert_engine.alerts import Alert, AlertWindow, Throttle, alert_id, jsonable
from alert_engine.conditions.expressions import CEL_ERRORS, Activation, EvaluationError, Expression
from alert_engine.conditions.fastpaths import plain_number
from alert_engine.conditions.guards import guard_groups
from alert_engine.events import (
    Event,
    EventRejected,
    Stream,
    decode_event,
    event_fields,
)
from alert_engine.rules.ruleset import Rule, Ruleset
from alert_engine.stats import Stats
from alert_engine.windows.counting import Validated
from alert_engine.windows.definitions import WindowRange
from alert_engine.windows.duplicates import dedupe_spans, duplicates
from alert_engine.windows.evaluation import WindowedEvaluation
from alert_engine.windows.families import Family, PaneGroup, families_of, pane_groups_of
from alert_engine.windows.hop import Regroup
from alert_engine.windows.joins import JOIN_GROUPING, JoinEvaluation
from alert_engine.windows.receiving import unnamed_offset
from alert_engine.windows.store import WindowStore
from alert_engine.windows.watermarks import DEFAULT_IDLE_SECONDS, Watermark

log = logging.getLogger(__name__)

MAX_KEY_LENGTH = 256


@dataclass(frozen=True)
class Match:
    rule: Rule
    values: dict[str, object]


class Outcome(NamedTuple):
    alerts: list[Alert]
    regroups: list[Regroup]
    # The event's time in epoch seconds: where it falls in windows.
    timestamp: float = 0.0
    # The latest event time of the event's input partition so far, this event's included: what
    # the event tells its windows partitions about how far its source has got (see
    # `windows.watermarks`).
    watermark: float = 0.0
    # The event's id: an event sent twice counts once in windows (`windows.duplicates`).
    event_id: str = ""


class Evaluator(WindowedEvaluation, JoinEvaluation):
    """Every rule of a ruleset over the events of both streams: filters here, windowed rules
    (`WindowedEvaluation`) and joins (`JoinEvaluation`) in `windows/`."""

    def __init__(
        self,
        ruleset: Ruleset,
        *,
        max_event_bytes: int,
        stats: Stats | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
        input_partitions: int = 0,
    ) -> None:
        self.max_event_bytes = max_event_bytes
        self.stats = stats or Stats()
        self.clock = clock
        # Filter rules found false by a shared guard, per (stream, guard group) and not yet added
        # to `rule_evaluations`: `Stats.settle` adds them before the counters are read.
        self._owed: Counter[tuple[Stream, int]] = Counter()
        self.stats.on_settle(self._settle)
        self.ruleset = ruleset
        # The watermark per (stream, partition) over the sources of its events (the input
        # partitions; a replay's own partition): windows that ended more than their grace
        # before it take no more events.
        self.idle_seconds = idle_seconds
        # The input topics' partitions: the sources of the windows partitions' events, each
        # holding their watermark back until it sent something or went idle (none: a replay).
        self.input_partitions = input_partitions
        self.watermarks: dict[tuple[Stream, int], Watermark] = {}
        # The latest event time per (stream, input partition) that `process` saw.
        self.latest: dict[tuple[Stream, int], float] = {}
        # Window ranges by (window, step number of the event time): the same for every event
        # of one step (steps are whole seconds), so recent events share them.
        self._ranges: dict[tuple[HoppingWindow, float], list[WindowRange]] = {}
        # When each pane of a pane group stops taking events, by (group id, pane number).
        self._pane_closes: dict[tuple[str, float], float] = {}

    @property
    def ruleset(self) -> Ruleset:
        return self._ruleset

    @ruleset.setter
    def ruleset(self, ruleset: Ruleset) -> None:
        # Swapped by a reload between two events: the filter groups and the windowed rules'
        # families go with it.
        self._settle()
        self._pane_closes = {}  # a group id names the same counting, not the same windows
        self._guarded = {stream: guard_groups(rules) for stream, rules in ruleset.by_stream.items()}
        windows = ruleset.windows()
        self._families = {
            stream: {grouping: families_of(rules, windows) for grouping, rules in groupings.items()}
            for stream, groupings in ruleset.windowed.items()
        }
        self._panes = {
            stream: {grouping: pane_groups_of(families) for grouping, families in groupings.items()}
            for stream, groupings in self._families.items()
        }
        self._dedupe_spans = dedupe_spans(self._families)
        # What a partial state on the windows topic names: a family, or a pane group.
        self._counted_ids: dict[Stream, dict[str, dict[str, Family | PaneGroup]]] = {
            stream: {
                grouping: {
                    **{family.id: family for family in families},
                    **{group.id: group for group in self._panes[stream][grouping]},
                }
                for grouping, families in groupings.items()
            }
            for stream, groupings in self._families.items()
        }
        # Names the ruleset and the layout of the inputs `regroup` computes for it: a windows
        # record is counted from its inputs only if they were computed for the same layout (not
        # by another ruleset, nor by another version of this code grouping rules otherwise).
        layout = orjson.dumps(
            [
                [stream.value, grouping, [family.folds for family in families]]
                for stream, groupings in self._families.items()
                for grouping, families in groupings.items()
            ]
        )
        self.inputs_version = f"{ruleset.version}-{hashlib.sha256(layout).hexdigest()[:12]}"
        self._ruleset = ruleset

    def _settle(self) -> None:
        if not self._owed:
            return
        evaluations = self.stats.rule_evaluations
        for (stream, group), count in self._owed.items():
            for _, rule in self._guarded[stream][group][1]:
                evaluations[rule.name] += count
        self._owed.clear()

    def decode(self, stream: Stream, raw: bytes | None) -> Event:
        """Raises `EventRejected`; counts what came in and what was rejected."""
        self.stats.events_in[stream.value] += 1
        try:
            return decode_event(stream, raw, max_bytes=self.max_event_bytes)
        except EventRejected as exc:
            self.stats.events_rejected[exc.reason] += 1
            raise

    def activation(self, stream: Stream, event: Event) -> Activation:
        ruleset = self._ruleset
        return Activation(
            event_fields(event), ruleset.functions[stream], ruleset.variables.get(stream)
        )

    def matches(
        self, stream: Stream, event: Event, activation: Activation | None = None
    ) -> list[Match]:
        activation = activation or self.activation(stream, event)
        context: Any = None  # built when a condition first runs in CEL
        fields = activation.fields
        stats = self.stats
        evaluations, misses = stats.rule_evaluations, stats.rule_misses
        found: list[tuple[int, Match]] = []
        for group, (guard, rules) in enumerate(self._guarded[stream]):
            if (
                guard is not None
                and all(plain_number(fields.get(name)) for name in guard.names)
                and not guard.test(fields)
            ):
                # Every rule of the group is false for this event: no condition to run.
                self._owed[(stream, group)] += 1
                continue
            for position, rule in rules:
                name = rule.name
                evaluations[name] += 1
                # `Condition.evaluate` inlined: this loop runs once per filter rule per event.
                if context is None:
                    context = activation.context
                try:
                    matched = rule.condition.program.execute(context)
                except CEL_ERRORS:
                    # An event without a field the condition reads: the rule cannot hold for it.
                    misses[name] += 1
                    continue
                if matched is True:
                    stats.rule_matches[name] += 1
                    found.append((position, Match(rule, rule.condition.values(activation))))
                elif matched is not False:
                    misses[name] += 1  # not a boolean: the condition cannot be decided
        found.sort(key=lambda item: item[0])
        return [match for _, match in found]

    def alerts(
        self, stream: Stream, event: Event, activation: Activation | None = None
    ) -> list[Alert]:
        activation = activation or self.activation(stream, event)
        matches = self.matches(stream, event, activation)
        if not matches:
            return []
        fired_at = self.clock()
        fields = event.model_dump(mode="json")
        return [
            self._alert(
                match.rule, stream, event.id, fields, match.values, event, fired_at, activation
            )
            for match in matches
        ]

    def regroup(self, stream: Stream, activation: Activation) -> list[Regroup]:
        """The group keys of the event for every grouping whose windowed rules count it, each
        with what they count (`inputs`); an event no rule of a grouping counts (its `where` is
        false for all) does not go there."""
        found = []
        families = self._families[stream]
        for grouping, expression in self._ruleset.groupings[stream].items():
            key = group_key(expression, activation)
            if key is None:
                for rule in self._ruleset.windowed[stream][grouping]:
                    self.stats.rule_misses[rule.name] += 1
                continue
            inputs = self.inputs(families[grouping], activation)
            if inputs is not None:
                found.append(Regroup(stream, grouping, key, inputs))
        join_key = self._join_key(stream, activation)
        if join_key is not None:
            found.append(Regroup(stream, JOIN_GROUPING, join_key[:MAX_KEY_LENGTH]))
        return found

    def process(self, stream: Stream, raw: bytes | None, *, partition: int = 0) -> Outcome:
        """One input event of input partition `partition`: the filter alerts, and the group
        keys for the windowed rules."""
        event = self.decode(stream, raw)
        activation = self.activation(stream, event)
        timestamp = event.time.timestamp()
        source = (stream, partition)
        latest = self.latest.get(source, timestamp)
        if timestamp > latest:
            latest = timestamp
        self.latest[source] = latest
        return Outcome(
            self.alerts(stream, event, activation),
            self.regroup(stream, activation),
            timestamp,
            latest,
            event.id,
        )

    def evaluate(self, stream: Stream, raw: bytes | None) -> list[Alert]:
        """The filter rules' alerts for one input event."""
        return self.process(stream, raw).alerts

    def evaluate_all(
        self,
        stream: Stream,
        raw: bytes | None,
        store: WindowStore,
        partition: int = 0,
        source: int | None = None,
    ) -> list[Alert]:
        """Filters and windowed rules in one step, on one store: for replays and rule tests.
        `source`: the input partition the event came from, for a watermark over several (as
        live); by default the partition's own."""
        event = self.decode(stream, raw)
        activation = self.activation(stream, event)
        alerts = self.alerts(stream, event, activation)
        timestamp = event.time.timestamp()
        # Every event moves the watermark, also one that no windowed rule counts (live, its
        # time travels with the next event that goes to a windows partition).
        watermark = self._advance(stream, partition, timestamp, source)
        found: Validated = (event, activation)
        # Each event a record of its own: an event sent twice counts once, as live.
        offset = unnamed_offset()
        counts = True
        for group in self.regroup(stream, activation):
            if group.grouping == JOIN_GROUPING:
                alerts.extend(
                    self.windowed(group, event, store, partition=partition, activation=activation)
                )
                continue
            if counts and group.inputs is not None:
                if duplicates(store, partition, offset, (event.id,)):
                    counts = False
                else:
                    until = timestamp + self._dedupe_spans.get(stream, 0.0)
                    store.note_record(partition, offset, watermark, {event.id: until})
            if not counts:
                continue
            # What the windowed agent does with a group the input agent shipped.
            alerts.extend(
                self.count_in_windows(
                    group,
                    group.inputs,
                    timestamp,
                    store,
                    partition=partition,
                    event=lambda: found,
                    watermark=watermark,
                )
            )
        return alerts

    def _alert(
        self,
        rule: Rule,
        stream: Stream,
        key: str,
        fields: dict[str, Any],
        values: dict[str, object],
        event: Event,
        fired_at: datetime,
        activation: Activation,
        id_key: str | None = None,
        window: AlertWindow | None = None,
    ) -> Alert:
        return Alert(
            id=alert_id(rule.name, id_key or key),
            rule=rule.name,
            severity=rule.spec.severity,
            route=rule.spec.route,
            key=key,
            stream=stream,
            event=fields,
            values={name: jsonable(value) for name, value in values.items()},
            event_time=event.time,
            fired_at=fired_at,
            ruleset_version=self.ruleset.version,
            labels=rule.spec.labels,
            throttle=self._throttle(rule, key, activation),
            window=window,
        )

    def _throttle(self, rule: Rule, key: str, activation: Activation) -> Throttle | None:
        if rule.spec.throttle is None:
            return None
        throttle_key = key
        if rule.throttle_key is not None:
            try:
                value = rule.throttle_key.value(activation)
            except EvaluationError:
                value = None
            if value is not None:
                throttle_key = value if isinstance(value, str) else orjson.dumps(value).decode()
        return Throttle(key=throttle_key[:MAX_KEY_LENGTH], seconds=rule.spec.throttle.period)


def group_key(expression: Expression, activation: Activation) -> str | None:
    """The event's key in a grouping; None when it has none (a missing or null field)."""
    try:
        value = expression.value(activation)
    except EvaluationError:
        return None
    if value is None:
        return None
    key = value if isinstance(value, str) else orjson.dumps(value).decode()
    return key[:MAX_KEY_LENGTH]
