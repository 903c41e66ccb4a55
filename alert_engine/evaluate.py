"""Where an event becomes alerts: decode, validate, run every rule of its stream, build alerts.

Pure and synchronous, so the live agents, `alert-engine rules test` and the replay backtest all run
exactly this code. Filters decide on one event (`matches`). For windowed rules `regroup` names
the group keys an event belongs to, each with what the rules of that grouping count of it; the
rest of their way, counting into windows and firing, is the evaluator's windowed half
(`windows`, a `windows.evaluation.WindowedRules`; joins: `windows.joins`), which builds its
alerts with `_alert`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

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
from alert_engine.windows.evaluation import WindowedRules
from alert_engine.windows.hop import ReceivedBatch, Regroup
from alert_engine.windows.joins import JOIN_GROUPING
from alert_engine.windows.store import WindowStore
from alert_engine.windows.watermarks import DEFAULT_IDLE_SECONDS, Watermarks

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


class Evaluator:
    """Every rule of a ruleset over the events of both streams: filters here, windowed rules
    and joins in `windows` (a `WindowedRules`)."""

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
        self.windows = WindowedRules(
            ruleset,
            stats=self.stats,
            clock=clock,
            activation=self.activation,
            build_alert=self._alert,
            # The watermark per (stream, windows partition) over the sources of its events: the
            # input topics' partitions, each holding it back until it sent something or went
            # idle (none: a replay, whose source is the partition itself).
            watermarks=Watermarks(idle_seconds, input_partitions),
        )
        self._take(ruleset)
        # The latest event time per (stream, input partition) that `process` saw.
        self.latest: dict[tuple[Stream, int], float] = {}
        # The input agent's `fold` (`windows.folding`): the folder's own method, not a call
        # through this object, as it runs once per event and grouping.
        self.fold = self.windows.folder.fold

    @property
    def ruleset(self) -> Ruleset:
        return self._ruleset

    @ruleset.setter
    def ruleset(self, ruleset: Ruleset) -> None:
        # Swapped by a reload between two events: the filter groups and the windowed half go
        # with it.
        self._settle()
        self.windows.ruleset = ruleset
        self._take(ruleset)

    def _take(self, ruleset: Ruleset) -> None:
        self._guarded = {stream: guard_groups(rules) for stream, rules in ruleset.by_stream.items()}
        self._ruleset = ruleset

    @property
    def inputs_version(self) -> str:
        """What the inputs of the input agent's records are computed for (`windows.layout`)."""
        return self.windows.layout.inputs_version

    def windowed_batch(
        self, batch: ReceivedBatch, store: WindowStore, *, partition: int, offset: int | None = None
    ) -> list[Alert]:
        """The windowed agent's step: a record of the windows topic at `offset` of `partition`
        applied to the window state once (`windows.receiving`)."""
        return self.windows.receiver.apply(batch, store, partition=partition, offset=offset)

    def watermark(self, partition: int) -> float:
        """The latest watermark of any stream on `partition` (`Watermarks.latest`)."""
        return self.windows.watermarks.latest(partition)

    def forget_watermarks(self) -> None:
        """Partitions moved (a rebalance): each windows partition's watermark is read again
        from the store, where its last owner left it."""
        self.windows.watermarks.forget()

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
        windows = self.windows
        families = windows.layout.families[stream]
        folder = windows.folder
        for grouping, expression in self._ruleset.groupings[stream].items():
            key = group_key(expression, activation)
            if key is None:
                for rule in self._ruleset.windowed[stream][grouping]:
                    self.stats.rule_misses[rule.name] += 1
                continue
            inputs = folder.inputs(families[grouping], activation)
            if inputs is not None:
                found.append(Regroup(stream, grouping, key, inputs))
        join_key = windows.joins.key(stream, activation)
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
        alerts.extend(
            self.windows.count_alone(
                stream,
                event,
                activation,
                self.regroup(stream, activation),
                store,
                partition=partition,
                source=source,
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
