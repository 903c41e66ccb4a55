"""Escalation: an alert nobody claimed within its rule's `escalate_after` is delivered again,
through the routing tree with the label `escalated=true` (so a route can send it to leads).
`escalate_after` is working time where the alert's route has `business_hours`: an alert at 18:55
on a Friday, 30 minutes, office hours to 18:00, escalates at 09:30 on Monday.

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
from alert_engine.storage.due_queue import DueQueue

ESCALATED_LABEL = "escalated"
LEASE = timedelta(minutes=1)


def escalated(alert: Alert) -> Alert:
    return alert.model_copy(update={"labels": {**alert.labels, ESCALATED_LABEL: "true"}})


def is_escalated(alert: Alert) -> bool:
    return alert.labels.get(ESCALATED_LABEL) == "true"


class Escalations:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.queue = DueQueue(
            redis, redis_keys.escalations_due(prefix), redis_keys.escalation_alerts(prefix)
        )

    async def schedule(self, alert: Alert, due: datetime) -> None:
        """Idempotent: a redelivered alert keeps its first due time."""
        await self.queue.add(alert.id, due.timestamp(), alert.to_json())

    async def cancel(self, alert_id: str) -> None:
        await self.queue.remove(alert_id)

    async def take_due(self, now: datetime, limit: int = 50) -> list[Alert]:
        taken = await self.queue.take_due(
            now.timestamp(), lease_seconds=LEASE.total_seconds(), limit=limit
        )
        return [Alert.model_validate_json(item.payload) for item in taken]

    async def pending(self) -> int:
        return await self.queue.pending()
