"""Escalation: an alert nobody claimed within its rule's `escalate_after` is delivered again,
through the routing tree with the label `escalated=true` (so a route can send it to leads).

Due times live in Redis (a sorted set, and the alert itself in a hash), so they survive worker
restarts, and any worker may send a due escalation. A worker takes a due alert with a lease (its
due time moved a minute on) and removes it once delivered: a worker dying in between leaves it to
be taken again, and the delivery ledger keeps that from posting twice. Claiming or closing the
case cancels the escalation.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from redis.asyncio import Redis

from alert_engine.alerts import Alert
from alert_engine.storage import redis_keys

ESCALATED_LABEL = "escalated"
LEASE = timedelta(minutes=1)

# KEYS: due set, alerts hash. ARGV: now, lease end, max count. Returns alert JSONs taken.
_TAKE_DUE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local taken = {}
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], ARGV[2], id)
  local alert = redis.call('HGET', KEYS[2], id)
  if alert then table.insert(taken, alert) else redis.call('ZREM', KEYS[1], id) end
end
return taken
"""


def escalated(alert: Alert) -> Alert:
    return alert.model_copy(update={"labels": {**alert.labels, ESCALATED_LABEL: "true"}})


def is_escalated(alert: Alert) -> bool:
    return alert.labels.get(ESCALATED_LABEL) == "true"


class Escalations:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.due_key = redis_keys.escalations_due(prefix)
        self.alerts_key = redis_keys.escalation_alerts(prefix)
        self._take_due = redis.register_script(_TAKE_DUE)

    async def schedule(self, alert: Alert, after: timedelta) -> None:
        """Idempotent: a redelivered alert keeps its first due time."""
        due = (alert.fired_at + after).timestamp()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(self.alerts_key, alert.id, alert.to_json())
            pipe.zadd(self.due_key, {alert.id: due}, nx=True)
            await pipe.execute()

    async def cancel(self, alert_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.due_key, alert_id)
            pipe.hdel(self.alerts_key, alert_id)
            await pipe.execute()

    async def take_due(self, now: datetime, limit: int = 50) -> list[Alert]:
        raw = await self._take_due(
            keys=[self.due_key, self.alerts_key],
            args=[now.timestamp(), (now + LEASE).timestamp(), limit],
        )
        return [Alert.from_json(item) for item in raw]

    async def pending(self) -> int:
        return int(await self.redis.zcard(self.due_key))
