"""Inhibition: an alert that says "the whole team has a problem" mutes the per-agent alerts of
that team while it is active, so the recovery team gets one message, not twenty.

Rules come from the routing file's `inhibit_rules`. When a source alert is delivered, a Redis key
for its `equal` values is set for `active_for`; a target alert with the same values that comes while
the key exists is not delivered. Shared through Redis, so it holds across workers.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from alert_engine.alerts import Alert
from alert_engine.routing import InhibitRule
from alert_engine.storage import redis_keys


class Inhibitor:
    def __init__(self, redis: Redis, prefix: str, rules: Sequence[InhibitRule]) -> None:
        self.redis = redis
        self.prefix = prefix
        self.rules = tuple(rules)

    async def inhibiting_rule(self, alert: Alert) -> int | None:
        """Notes the alert as active if it is a source; returns the index of the rule that mutes
        it, if any."""
        muted_by = None
        for index, rule in enumerate(self.rules):
            key = redis_keys.inhibiting(self.prefix, index, rule.values(alert))
            if rule.is_source(alert):
                await self.redis.set(key, alert.id, ex=int(rule.active_for.total_seconds()))
            elif muted_by is None and rule.is_target(alert) and await self.redis.exists(key):
                muted_by = index
        return muted_by
