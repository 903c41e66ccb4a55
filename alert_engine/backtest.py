"""`rules test` and `replay`: run rules on a file of events with the live engine's `Evaluator`.

Window state lives in a `MemoryWindowStore` and time is the events' own `time`, so a replay of a
day of history places events in the same windows, with the same grace and the same "fire once per
window", as the live agents did or would have.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from alert_engine.alerts import Alert
from alert_engine.conditions.expressions import EvaluationError
from alert_engine.evaluate import Evaluator, group_key
from alert_engine.events import Event, EventRejected, Stream, decode_event
from alert_engine.rules.ruleset import Rule, Ruleset
from alert_engine.stats import Stats
from alert_engine.windows.inspection import window_results
from alert_engine.windows.store import MemoryWindowStore


@dataclass(frozen=True)
class Record:
    """One line of an events file."""

    source: str  # file:line
    stream: Stream | None
    raw: bytes


def read_events(
    paths: Iterable[Path],
    stream: Stream | None = None,
    *,
    on_read: Callable[[int], None] | None = None,
) -> Iterator[Record]:
    """Lines of JSON events; the stream of each is `stream`, or guessed from its fields.
    `on_read` is told the size in bytes of each line read (for a progress bar)."""
    for path in paths:
        with path.open("rb") as lines:
            for number, line in enumerate(lines, start=1):
                if on_read is not None:
                    on_read(len(line))
                raw = line.strip()
                if raw:
                    yield Record(f"{path}:{number}", stream or guess_stream(raw), raw)


def guess_stream(raw: bytes) -> Stream | None:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, dict) and "rating" in data:
        return Stream.RATINGS
    if isinstance(data, dict) and "wait_seconds" in data:
        return Stream.INTERACTIONS
    return None


@dataclass
class RuleReport:
    alerts: int = 0
    throttled: int = 0
    per_day: Counter[str] = field(default_factory=Counter)
    keys: Counter[str] = field(default_factory=Counter)


# A line whose fields tell neither stream (and that the edge would not refuse for any stream).
UNKNOWN_STREAM = "unknown_stream"

# What each reason a replay rejects a line for means, in words: the edge's reasons
# (`alert_engine.events.decode_event`, the same labels as the dead letters and `rules test`)
# and the replay's own.
REJECTION_REASONS = {
    "empty": "line has no event",
    "too_large": "line is larger than ALERT_ENGINE_MAX_EVENT_BYTES",
    "not_json": "line is not JSON",
    "not_object": "line is JSON but not an object",
    "invalid": "event does not fit the schema of its stream",
    UNKNOWN_STREAM: "neither a rating nor an interaction",
}


@dataclass
class ReplayReport:
    events: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    rules: dict[str, RuleReport] = field(default_factory=dict)
    stats: Stats = field(default_factory=Stats)

    @property
    def per_day(self) -> Counter[str]:
        """Alerts per day, all rules together."""
        total: Counter[str] = Counter()
        for rule in self.rules.values():
            total.update(rule.per_day)
        return total


def replay(ruleset: Ruleset, records: Iterable[Record], *, max_event_bytes: int) -> ReplayReport:
    """Every alert the rule set would have raised on `records`, in event-time order; throttles
    are applied by event time as the live delivery would."""
    report = ReplayReport(rules={rule.name: RuleReport() for rule in ruleset.rules})
    decoded: list[tuple[float, int, Stream, bytes]] = []
    for index, record in enumerate(records):
        report.events += 1
        if record.stream is None:
            report.rejected[_reason_without_stream(record.raw, max_event_bytes)] += 1
            continue
        try:
            event = decode_event(record.stream, record.raw, max_bytes=max_event_bytes)
        except EventRejected as exc:
            report.rejected[exc.reason] += 1
            continue
        decoded.append((event.time.timestamp(), index, record.stream, record.raw))
    decoded.sort()
    evaluator = Evaluator(ruleset, max_event_bytes=max_event_bytes, stats=report.stats)
    store = MemoryWindowStore(ruleset.windows())
    throttled_until: dict[tuple[str, str], float] = {}
    for timestamp, _, stream, raw in decoded:
        for alert in evaluator.evaluate_all(stream, raw, store):
            rule = report.rules[alert.rule]
            if alert.throttle is not None:
                mark = (alert.rule, alert.throttle.key)
                if throttled_until.get(mark, float("-inf")) > timestamp:
                    rule.throttled += 1
                    continue
                throttled_until[mark] = timestamp + alert.throttle.seconds
            rule.alerts += 1
            rule.per_day[alert.event_time.date().isoformat()] += 1
            rule.keys[_report_key(alert)] += 1
    return report


def _reason_without_stream(raw: bytes, max_event_bytes: int) -> str:
    """Why a line that names no stream is rejected: what the edge says of it whatever its
    stream (`not_json`, `too_large`, ...), else that its stream is unknown."""
    try:
        decode_event(Stream.RATINGS, raw, max_bytes=max_event_bytes)
    except EventRejected as exc:
        if exc.reason != "invalid":  # the one reason that depends on the stream's schema
            return exc.reason
    return UNKNOWN_STREAM


def _report_key(alert: Alert) -> str:
    # A filter's key is the event id; its throttle key or customer says more about the noise.
    if alert.throttle is not None:
        return alert.throttle.key
    customer = alert.event.get("customer")
    if alert.key == alert.event.get("id") and isinstance(customer, dict) and "id" in customer:
        return f"customer {customer['id']}"
    return alert.key


@dataclass(frozen=True)
class Verdict:
    source: str
    event_id: str | None
    outcome: str  # match | no | miss | rejected | alert | counted
    detail: str


def try_rule(rule: Rule, records: Iterable[Record], *, max_event_bytes: int) -> list[Verdict]:
    """For each event: did `rule` match, and the values that decided it."""
    single = Ruleset.of([rule])
    evaluator = Evaluator(single, max_event_bytes=max_event_bytes)
    store = MemoryWindowStore(single.windows())
    verdicts = []
    for record in records:
        if record.stream is not None and record.stream is not rule.spec.source:
            continue  # an event of the other stream
        record = Record(record.source, rule.spec.source, record.raw)
        try:
            event = decode_event(rule.spec.source, record.raw, max_bytes=max_event_bytes)
        except EventRejected as exc:
            verdicts.append(Verdict(record.source, None, "rejected", str(exc)))
            continue
        verdicts.append(_verdict(evaluator, store, rule, record, event))
    return verdicts


def _verdict(
    evaluator: Evaluator, store: MemoryWindowStore, rule: Rule, record: Record, event: Event
) -> Verdict:
    stream = rule.spec.source
    activation = evaluator.activation(stream, event)
    if rule.windowed is None:
        values = _show(rule.condition.values(activation))
        try:
            matched = rule.condition.evaluate(activation)
        except EvaluationError as exc:
            return Verdict(record.source, event.id, "miss", f"{values}  ({exc})")
        return Verdict(record.source, event.id, "match" if matched else "no", values)
    alerts = evaluator.evaluate_all(stream, record.raw, store)
    if alerts:
        [alert] = alerts
        return Verdict(record.source, event.id, "alert", f"key={alert.key} {_show(alert.values)}")
    if evaluator.stats.rule_misses[rule.name]:
        evaluator.stats.rule_misses.clear()
        return Verdict(record.source, event.id, "miss", "a field the rule reads is missing")
    key = group_key(rule.windowed.group_by, activation) or ""
    latest = _latest_window(store, rule, key, event.time.timestamp())
    return Verdict(record.source, event.id, "counted", latest)


def _latest_window(store: MemoryWindowStore, rule: Rule, key: str, timestamp: float) -> str:
    assert rule.windowed is not None
    found = window_results(store, rule, key, timestamp)
    if found is None:
        return f"key={key} not counted (`where` is false, or the event came too late)"
    start, results = found
    return f"key={key} window from {start.isoformat(timespec='minutes')}: {_show(results)}"


def _show(values: dict[str, Any]) -> str:
    return " ".join(f"{name}={_short(value)}" for name, value in values.items())


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    if isinstance(value, float):
        text = f"{value:.4g}"
    return text if len(text) <= 80 else text[:77] + "..."
