"""The durable follow-up schedule in Redis.

A sorted set holds each scheduled alert's due time, a hash its survey. Sending claims due entries
atomically (`DueQueue`: their score moves to a lease deadline), so two workers never claim the
same survey; a sender that dies leaves its claim to expire and another worker claims it again.
A settled survey gets a per-alert marker, which makes scheduling it again a no-op. With Redis's
append-only file (the stack and the deploy config turn it on) all of it survives a Redis restart.

Known gap, as for alert delivery: a worker that dies after the mail service accepted a survey and
before the marker was written sends that survey once more when the claim expires.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict
from redis.asyncio import Redis

from alert_engine.alerts import Alert
from alert_engine.storage import redis_keys
from alert_engine.storage.due_queue import DueQueue, claim, text

# Settled markers outlive any replay of the cases topic (7 days' retention) by far.
DONE_TTL_SECONDS = 180 * 24 * 3600

_SCHEDULE = """
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
"""

_SETTLE = """
redis.call('SET', KEYS[3], ARGV[2], 'EX', tonumber(ARGV[3]))
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""


class Settled(StrEnum):
    SENT = "sent"
    SUPPRESSED = "suppressed"
    NO_EMAIL = "no_email"
    # The email service refused the email for good (a bad address, say): retrying cannot help.
    REJECTED = "rejected"


class ScheduledSurvey(BaseModel):
    """What a survey needs once due: who gets it and what the answer will be about."""

    model_config = ConfigDict(frozen=True)

    alert_id: str
    survey_id: str
    due_at: AwareDatetime
    resolved_at: AwareDatetime
    rule: str
    # The original event's customer, agent, team, channel, interaction and rating, as they were.
    event: dict[str, Any]
    holdout: bool = False
    # The alert itself, for the `rerated` case record of the answer: the survey's own hot state
    # carries it (no year-long copy elsewhere). None in a survey scheduled by a release before.
    alert: Alert | None = None

    @property
    def customer(self) -> dict[str, Any]:
        customer = self.event.get("customer")
        return customer if isinstance(customer, dict) else {}


def new_survey_id() -> str:
    """Opaque and unguessable: the only thing a survey link carries."""
    return "sv-" + secrets.token_urlsafe(16)


class FollowupSchedule:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.queue = DueQueue(
            redis, redis_keys.followup_due(prefix), redis_keys.followup_payloads(prefix)
        )
        # Scheduling and settling also read or write the alert's settled marker: their own
        # scripts, on the queue's keys.
        self._schedule = redis.register_script(_SCHEDULE)
        self._settle = redis.register_script(_SETTLE)

    def _keys(self, alert_id: str) -> list[str]:
        return [
            redis_keys.followup_due(self.prefix),
            redis_keys.followup_payloads(self.prefix),
            redis_keys.followup_done(self.prefix, alert_id),
        ]

    async def schedule(self, survey: ScheduledSurvey) -> bool:
        """False if the alert is already scheduled or settled: scheduling twice is once."""
        added = await self._schedule(
            keys=self._keys(survey.alert_id),
            args=[survey.alert_id, survey.due_at.timestamp(), survey.model_dump_json()],
        )
        return bool(added)

    async def cancel(self, alert_id: str) -> bool:
        """False if nothing was scheduled (or it is already settled)."""
        return await self.queue.remove(alert_id)

    async def claim_due(
        self, now: datetime, *, lease_seconds: float, limit: int = 100
    ) -> list[ScheduledSurvey]:
        """Surveys due at `now`, each claimed for `lease_seconds` by this caller alone."""
        taken = await self.queue.take_due(now.timestamp(), lease_seconds=lease_seconds, limit=limit)
        return [ScheduledSurvey.model_validate_json(item.payload) for item in taken]

    async def settle(self, alert_id: str, how: Settled) -> None:
        await self._settle(keys=self._keys(alert_id), args=[alert_id, how.value, DONE_TTL_SECONDS])

    async def settled(self, alert_id: str) -> Settled | None:
        value = await self.redis.get(redis_keys.followup_done(self.prefix, alert_id))
        return Settled(text(value)) if value else None

    async def due_at(self, alert_id: str) -> datetime | None:
        due = await self.queue.due_at(alert_id)
        return None if due is None else datetime.fromtimestamp(due, UTC)

    async def pending(self) -> int:
        return await self.queue.pending()

    async def suppress_customer(self, customer_id: str, alert_id: str, seconds: float) -> bool:
        """True if this alert may survey the customer: no survey for another alert within
        `seconds`. Asking again for the same alert (a retried send) is still true."""
        if seconds <= 0:
            return True
        key = redis_keys.followup_suppressed(self.prefix, customer_id)
        return await claim(self.redis, key, alert_id, ttl_ms=int(seconds * 1000))
