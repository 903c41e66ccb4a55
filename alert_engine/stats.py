"""What the worker saw and did: the counters the hot path increments.

One source of truth for `/stats` (JSON, per-worker totals) and `/metrics` (Prometheus): each
counter is a `MeteredCounter`, so an increment updates both.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from alert_engine.metrics import delivery_latency_histogram, metered_counter


class Stats:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.events_in = metered_counter(r, "events_in", "Events read, by stream", "stream")
        self.events_rejected = metered_counter(
            r, "events_rejected", "Events dead-lettered, by reason", "reason"
        )
        self.rule_evaluations = metered_counter(
            r, "rule_evaluations", "Conditions evaluated, by rule", "rule"
        )
        self.rule_matches = metered_counter(r, "rule_matches", "Conditions that held", "rule")
        self.rule_misses = metered_counter(
            r, "rule_misses", "Conditions that read a field the event lacks", "rule"
        )
        self.alerts_delivered = metered_counter(
            r, "alerts_delivered", "Alerts delivered, by destination", "destination"
        )
        self.alerts_duplicate = metered_counter(
            r,
            "alerts_duplicate",
            "Alerts consumed again but already delivered (skipped), by destination",
            "destination",
        )
        self.alerts_failed = metered_counter(
            r, "alerts_failed", "Alerts given up on (dead-lettered), by destination", "destination"
        )
        self.ledger_unavailable = metered_counter(
            r,
            "ledger_unavailable",
            "Delivery-ledger calls that found Redis unreachable (delivery waits), by error",
            "error",
        )
        self.alerts_held_out = metered_counter(
            r, "alerts_held_out", "Alerts held out of recovery contact (surveyed only)", "rule"
        )
        self.cases_in = metered_counter(r, "cases_in", "Case state changes read, by state", "state")
        self.surveys_sent = metered_counter(r, "surveys_sent", "Follow-up surveys sent", "channel")
        self.surveys_answered = metered_counter(
            r, "surveys_answered", "Follow-up surveys answered, by stars", "rating"
        )
        # By silence id / by inhibition rule: alerts muted rather than delivered.
        self.alerts_silenced = metered_counter(
            r, "alerts_silenced", "Alerts muted by a silence, by silence id", "silence"
        )
        self.alerts_inhibited = metered_counter(
            r, "alerts_inhibited", "Alerts muted by an inhibition rule, by rule", "inhibition"
        )
        # Events that came after their window's grace period, by windowed rule: not counted.
        self.late_events = metered_counter(
            r, "late_events", "Events after their window's grace period, by rule", "rule"
        )
        # Events taken by the windowed agent, by stream (once per group key of the event).
        self.windowed_in = metered_counter(
            r, "windowed_in", "Events taken by the windowed agent, by stream", "stream"
        )
        # Alerts not delivered because their rule already alerted for the same key within its
        # throttle period, by rule.
        self.alerts_throttled = metered_counter(
            r, "alerts_throttled", "Alerts held back by their rule's throttle, by rule", "rule"
        )
        self.delivery_latency = delivery_latency_histogram(r)

    def observe_delivery(self, destination: str, latency_seconds: float) -> None:
        self.alerts_delivered[destination] += 1
        self.delivery_latency.labels(destination).observe(max(0.0, latency_seconds))

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {
            "events_in": dict(self.events_in),
            "events_rejected": dict(self.events_rejected),
            "rule_evaluations": dict(self.rule_evaluations),
            "rule_matches": dict(self.rule_matches),
            "rule_misses": dict(self.rule_misses),
            "alerts_delivered": dict(self.alerts_delivered),
            "alerts_duplicate": dict(self.alerts_duplicate),
            "alerts_failed": dict(self.alerts_failed),
            "ledger_unavailable": dict(self.ledger_unavailable),
            "alerts_held_out": dict(self.alerts_held_out),
            "cases_in": dict(self.cases_in),
            "surveys_sent": dict(self.surveys_sent),
            "surveys_answered": dict(self.surveys_answered),
            "alerts_silenced": dict(self.alerts_silenced),
            "alerts_inhibited": dict(self.alerts_inhibited),
            "late_events": dict(self.late_events),
            "windowed_in": dict(self.windowed_in),
            "alerts_throttled": dict(self.alerts_throttled),
        }
