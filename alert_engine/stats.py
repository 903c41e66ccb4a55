"""In-process counters of what the worker saw and did, served on the worker's web server."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Stats:
    events_in: Counter[str] = field(default_factory=Counter)
    events_rejected: Counter[str] = field(default_factory=Counter)
    rule_matches: Counter[str] = field(default_factory=Counter)
    rule_misses: Counter[str] = field(default_factory=Counter)
    # Events that came after their window's grace period, by windowed rule: not counted.
    late_events: Counter[str] = field(default_factory=Counter)
    # Events taken by the windowed agent, by stream (once per group key of the event).
    windowed_in: Counter[str] = field(default_factory=Counter)
    alerts_delivered: Counter[str] = field(default_factory=Counter)
    alerts_duplicate: Counter[str] = field(default_factory=Counter)
    alerts_failed: Counter[str] = field(default_factory=Counter)
    # Alerts not delivered because their rule already alerted for the same key within its
    # throttle period, by rule.
    alerts_throttled: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {name: dict(counter) for name, counter in vars(self).items()}
