"""What the worker saw and did: the counters the hot path increments.

One source of truth for `/stats` (JSON, per-worker totals) and `/metrics` (Prometheus): each
counter is a plain `collections.Counter`, which a `CountersCollector` serves at scrape time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from alert_engine.history.database import DATABASE
from alert_engine.storage.outage import REDIS
from alert_engine.worker.metrics import CountersCollector, delivery_latency_histogram

# name -> (help, label): every counter of the engine, declared once.
COUNTERS: dict[str, tuple[str, str]] = {
    "events_in": ("Events read, by stream", "stream"),
    "events_rejected": ("Events dead-lettered, by reason", "reason"),
    "rule_evaluations": ("Conditions evaluated, by rule", "rule"),
    "rule_matches": ("Conditions that held", "rule"),
    "rule_misses": ("Conditions that read a field the event lacks", "rule"),
    "late_events": ("Events after their window's grace period, by rule", "rule"),
    "windowed_in": ("Events taken by the windowed agent, by stream", "stream"),
    "alerts_delivered": ("Alerts delivered, by destination", "destination"),
    "alerts_duplicate": (
        "Alerts consumed again but already delivered (skipped), by destination",
        "destination",
    ),
    "alerts_failed": ("Alerts given up on (dead-lettered), by destination", "destination"),
    "destination_held": (
        "Times a destination's circuit opened (its sends held while it keeps failing)",
        "destination",
    ),
    "lookups_failed": (
        "Look-ups of an earlier send that failed (the alert was sent anyway), by destination",
        "destination",
    ),
    "alerts_throttled": ("Alerts held back by their rule's throttle, by rule", "rule"),
    "alerts_silenced": ("Alerts muted by a silence, by silence id", "silence"),
    "alerts_inhibited": ("Alerts muted by an inhibition rule, by rule", "inhibition"),
    "alerts_held_out": ("Alerts held out of recovery contact (surveyed only)", "rule"),
    "ledger_unavailable": (
        "Redis calls that found Redis unreachable (delivery and look-ups wait, a timer's tick is"
        " skipped), by error",
        "error",
    ),
    "cases_in": ("Case state changes read, by state", "state"),
    "surveys_sent": ("Follow-up surveys sent", "channel"),
    "surveys_answered": ("Follow-up surveys answered, by stars", "rating"),
    "history_records": ("Records the outcome history's projection wrote, by topic", "topic"),
    "history_unreadable": (
        "Records the outcome history's projection could not read (skipped; kept in Kafka), by"
        " topic",
        "topic",
    ),
    "history_refused": (
        "History rows PostgreSQL refused for their content (skipped, logged), by topic",
        "topic",
    ),
    "history_unavailable": (
        "PostgreSQL calls of the outcome history that found it unreachable (the batch waits), by"
        " error",
        "error",
    ),
}


class Stats:
    events_in: Counter[str]
    events_rejected: Counter[str]
    rule_evaluations: Counter[str]
    rule_matches: Counter[str]
    rule_misses: Counter[str]
    late_events: Counter[str]
    windowed_in: Counter[str]
    alerts_delivered: Counter[str]
    alerts_duplicate: Counter[str]
    alerts_failed: Counter[str]
    destination_held: Counter[str]
    lookups_failed: Counter[str]
    alerts_throttled: Counter[str]
    alerts_silenced: Counter[str]
    alerts_inhibited: Counter[str]
    alerts_held_out: Counter[str]
    ledger_unavailable: Counter[str]
    cases_in: Counter[str]
    surveys_sent: Counter[str]
    surveys_answered: Counter[str]
    history_records: Counter[str]
    history_unreadable: Counter[str]
    history_refused: Counter[str]
    history_unavailable: Counter[str]

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        counters = []
        for name, (documentation, label) in COUNTERS.items():
            counter: Counter[str] = Counter()
            setattr(self, name, counter)
            counters.append((name, documentation, label, counter))
        self._settlers: list[Callable[[], None]] = [
            self._settle_redis_errors,
            self._settle_database_errors,
        ]
        # Every wait on Redis counts, wherever it is (`redis_outage.REDIS`): these since now.
        self._redis_errors_before = Counter(REDIS.errors)
        self._database_errors_before = Counter(DATABASE.errors)
        self.registry.register(CountersCollector(counters, before=self.settle))
        self.delivery_latency = delivery_latency_histogram(self.registry)

    def observe_delivery(self, destination: str, latency_seconds: float) -> None:
        self.alerts_delivered[destination] += 1
        self.delivery_latency.labels(destination).observe(max(0.0, latency_seconds))

    def on_settle(self, settle: Callable[[], None]) -> None:
        """`settle` adds counts kept aside on the hot path (see `Evaluator`) to the counters."""
        self._settlers.append(settle)

    def _settle_redis_errors(self) -> None:
        self.ledger_unavailable.clear()
        self.ledger_unavailable.update(REDIS.errors - self._redis_errors_before)

    def _settle_database_errors(self) -> None:
        self.history_unavailable.clear()
        self.history_unavailable.update(DATABASE.errors - self._database_errors_before)

    def settle(self) -> None:
        """Bring every counter up to date; `/stats` and `/metrics` call it before reading."""
        for settle in self._settlers:
            settle()

    def as_dict(self) -> dict[str, dict[str, int]]:
        self.settle()
        return {name: dict(getattr(self, name)) for name in COUNTERS}
