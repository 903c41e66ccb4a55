"""Where an event becomes alerts: decode, validate, run every rule of its stream, build alerts.

Pure and synchronous, so the live agent, `alert-engine rules test` and the replay backtest all run
exactly this code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from alert_engine.alerts import Alert, alert_id
from alert_engine.events import Event, EventRejected, Stream, decode_event, event_fields
from alert_engine.expressions import Activation, EvaluationError
from alert_engine.rules import Rule, Ruleset
from alert_engine.stats import Stats


@dataclass(frozen=True)
class Match:
    rule: Rule
    values: dict[str, object]


class Evaluator:
    def __init__(
        self,
        ruleset: Ruleset,
        *,
        max_event_bytes: int,
        stats: Stats | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.ruleset = ruleset
        self.max_event_bytes = max_event_bytes
        self.stats = stats or Stats()
        self.clock = clock

    def decode(self, stream: Stream, raw: bytes | None) -> Event:
        """Raises `EventRejected`; counts what came in and what was rejected."""
        self.stats.events_in[stream.value] += 1
        try:
            return decode_event(stream, raw, max_bytes=self.max_event_bytes)
        except EventRejected as exc:
            self.stats.events_rejected[exc.reason] += 1
            raise

    def matches(self, stream: Stream, event: Event) -> list[Match]:
        activation = Activation(event_fields(event), self.ruleset.functions[stream])
        found: list[Match] = []
        for rule in self.ruleset.by_stream[stream]:
            self.stats.rule_evaluations[rule.name] += 1
            try:
                matched = rule.condition.evaluate(activation)
            except EvaluationError:
                # An event without a field the condition reads: the rule cannot hold for it.
                self.stats.rule_misses[rule.name] += 1
                continue
            if matched:
                self.stats.rule_matches[rule.name] += 1
                found.append(Match(rule, rule.condition.values(activation)))
        return found

    def alerts(self, stream: Stream, event: Event) -> list[Alert]:
        matches = self.matches(stream, event)
        if not matches:
            return []
        fired_at = self.clock()
        fields = event.model_dump(mode="json")
        return [
            Alert(
                id=alert_id(match.rule.name, event.id),
                rule=match.rule.name,
                severity=match.rule.spec.severity,
                route=match.rule.spec.route,
                key=event.id,
                stream=stream,
                event=fields,
                values={name: _jsonable(value) for name, value in match.values.items()},
                event_time=event.time,
                fired_at=fired_at,
                ruleset_version=self.ruleset.version,
                labels=match.rule.spec.labels,
            )
            for match in matches
        ]

    def evaluate(self, stream: Stream, raw: bytes | None) -> list[Alert]:
        return self.alerts(stream, self.decode(stream, raw))


def _jsonable(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value
