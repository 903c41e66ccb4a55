"""Cases: what the recovery team did about an alert, and the records of it on the `cases` topic.

    open ──claim──> claimed ──resolved_followup / resolved_no_followup / not_actionable──> closed
      └──────────────resolved_followup / resolved_no_followup / not_actionable─────────────┘

The state lives in Redis and changes atomically (one Lua script), so two people clicking at once,
or a click Slack delivers twice, change it once: a click that is not a valid transition from the
current state changes nothing, and neither does a click on an alert the store was never given
(`CaseStore.remember`, at first delivery). Every record on the `cases` topic (JSON, keyed by alert
id) is a `CaseEvent`: clicks produce them here, the follow-up side produces `rerated` and
`holdout` ones, and the follow-up scheduler, the outcome figures and the Slack thread replies read
them all with the same model.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from alert_engine.alerts import Alert
from alert_engine.storage import redis_keys
from alert_engine.storage.first_write import FirstWrites

CASE_TTL_SECONDS = 90 * 24 * 3600


class CaseState(StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    RESOLVED_FOLLOWUP = "resolved_followup"
    RESOLVED_NO_FOLLOWUP = "resolved_no_followup"
    NOT_ACTIONABLE = "not_actionable"
    REOPENED = "reopened"
    # Not a workflow state: the customer answered the follow-up survey (see `Rerating`).
    RERATED = "rerated"
    # Not a workflow state: the case was held out of recovery contact (see `followup.holdout`).
    HOLDOUT = "holdout"


class Rerating(BaseModel):
    """What a `rerated` record adds: the follow-up answer next to the initial rating."""

    model_config = ConfigDict(frozen=True)

    rating: int = Field(ge=1, le=5)
    previous_rating: int | None = Field(default=None, ge=1, le=5)
    nps: int | None = Field(default=None, ge=0, le=10)
    rating_id: str
    comment: str | None = None

    def summary(self) -> str:
        """`Customer re-rated 4★ (was 1★)`: the line for the alert's thread."""
        was = f" (was {self.previous_rating}★)" if self.previous_rating is not None else ""
        return f"Customer re-rated {self.rating}★{was}"


class CaseAction(StrEnum):
    CLAIM = "claim"
    RESOLVED_FOLLOWUP = "resolved_followup"
    RESOLVED_NO_FOLLOWUP = "resolved_no_followup"
    NOT_ACTIONABLE = "not_actionable"


CLOSED = {CaseState.RESOLVED_FOLLOWUP, CaseState.RESOLVED_NO_FOLLOWUP, CaseState.NOT_ACTIONABLE}
# The state each action leads to, and the states it may be taken from.
TRANSITIONS: dict[CaseAction, tuple[CaseState, set[CaseState]]] = {
    CaseAction.CLAIM: (CaseState.CLAIMED, {CaseState.OPEN}),
    CaseAction.RESOLVED_FOLLOWUP: (
        CaseState.RESOLVED_FOLLOWUP,
        {CaseState.OPEN, CaseState.CLAIMED},
    ),
    CaseAction.RESOLVED_NO_FOLLOWUP: (
        CaseState.RESOLVED_NO_FOLLOWUP,
        {CaseState.OPEN, CaseState.CLAIMED},
    ),
    CaseAction.NOT_ACTIONABLE: (CaseState.NOT_ACTIONABLE, {CaseState.OPEN, CaseState.CLAIMED}),
}

LABELS = {
    CaseState.OPEN: "Open",
    CaseState.CLAIMED: "Claimed",
    CaseState.RESOLVED_FOLLOWUP: "Resolved, follow-up survey to be sent",
    CaseState.RESOLVED_NO_FOLLOWUP: "Resolved, no follow-up",
    CaseState.NOT_ACTIONABLE: "Not actionable",
}


def allowed_actions(state: CaseState) -> set[CaseAction]:
    return {action for action, (_, sources) in TRANSITIONS.items() if state in sources}


class CaseEvent(BaseModel):
    """One record of the `cases` topic: a change of a case's state (a click), or what the
    follow-up side adds (`rerated`, `holdout`). Fields only a click has stay optional."""

    model_config = ConfigDict(frozen=True, extra="allow")

    alert_id: str = Field(min_length=1, max_length=128)
    state: CaseState
    previous_state: CaseState | None = None
    # Who acted, for people: the Slack user name, or the name typed on the outbox page.
    actor: str = Field(default="", max_length=256)
    at: AwareDatetime
    # The alert the case is about, as delivered.
    alert: Alert
    rerating: Rerating | None = None
    # A click's: the button, who clicked (Slack user id and name), where (`slack` or `outbox`).
    action: CaseAction | None = None
    user_id: str | None = None
    user_name: str | None = None
    source: str | None = None
    claimed_by: str | None = None
    claimed_at: AwareDatetime | None = None

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", exclude_none=True))

    @classmethod
    def from_json(cls, raw: bytes | str) -> CaseEvent:
        return cls.model_validate_json(raw)

    @property
    def customer(self) -> dict[str, Any]:
        customer = self.alert.event.get("customer")
        return customer if isinstance(customer, dict) else {}


class Case(BaseModel):
    alert_id: str
    alert: str | None = None
    state: CaseState = CaseState.OPEN
    claimed_by: str | None = None
    claimed_at: AwareDatetime | None = None
    closed_by: str | None = None
    closed_at: AwareDatetime | None = None
    # The Slack message the alert was posted as (`channel ts`), for replies in its thread.
    slack_message: str | None = None
    # The customer's answer to the follow-up survey (`Rerating.summary()`), once there is one.
    rerated: str | None = None
    # The rating id of the answer already replied in the Slack thread.
    rerated_replied: str | None = None

    @property
    def slack_thread(self) -> tuple[str, str] | None:
        if not self.slack_message:
            return None
        channel, _, ts = self.slack_message.partition(" ")
        return channel, ts


# KEYS[1] the case hash, KEYS[2] the open-cases index. ARGV: new state, allowed states
# (comma-separated), user, time, is claim, TTL, closes the case, alert id. Returns the previous
# state if the transition was made, or false (also for an alert the store does not hold: a case
# record always carries its alert).
_TRANSITION = """
if redis.call('HEXISTS', KEYS[1], 'alert') == 0 then return false end
local current = redis.call('HGET', KEYS[1], 'state') or 'open'
local allowed = false
for state in string.gmatch(ARGV[2], '[^,]+') do
  if state == current then allowed = true end
end
if not allowed then return false end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
if ARGV[5] == '1' then
  redis.call('HSET', KEYS[1], 'claimed_by', ARGV[3], 'claimed_at', ARGV[4])
else
  redis.call('HSET', KEYS[1], 'closed_by', ARGV[3], 'closed_at', ARGV[4])
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
if ARGV[7] == '1' then redis.call('ZREM', KEYS[2], ARGV[8]) end
return current
"""

# KEYS[1] the case hash, KEYS[2] the open-cases index. ARGV: the alert (JSON), TTL, alert id, now.
# The alert is kept once; the case counts as open from its first delivery until it is closed (a
# delivery again of a closed case's alert does not open it again).
_REMEMBER = """
redis.call('HSETNX', KEYS[1], 'alert', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'open' or state == 'claimed' then
  redis.call('ZADD', KEYS[2], 'NX', ARGV[4], ARGV[3])
end
return 1
"""


class CaseStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._transition = redis.register_script(_TRANSITION)
        self._remember = redis.register_script(_REMEMBER)
        self._first_writes = FirstWrites(redis)

    async def remember(self, alert: Alert) -> None:
        """Keep the alert with its case (once), so case changes can carry it; the case is open
        from now until it is closed."""
        await self._remember(
            keys=[redis_keys.case(self.prefix, alert.id), redis_keys.open_cases(self.prefix)],
            args=[alert.to_json(), CASE_TTL_SECONDS, alert.id, time.time()],
        )

    async def open_count(self, now: float | None = None) -> int:
        """Cases not closed yet (open or claimed). A case untouched since its alert was
        delivered CASE_TTL_SECONDS ago has expired with its record and no longer counts."""
        key = redis_keys.open_cases(self.prefix)
        expired_before = (time.time() if now is None else now) - CASE_TTL_SECONDS
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", f"({expired_before}")
            pipe.zcard(key)
            _, count = await pipe.execute()
        return int(count)

    async def remember_slack_message(self, alert_id: str, channel: str, ts: str) -> None:
        """Keep where the alert was posted in Slack (the first post wins: escalations and
        digests elsewhere do not move its thread)."""
        await self._first_writes.write(
            redis_keys.case(self.prefix, alert_id),
            {"slack_message": f"{channel} {ts}"},
            ttl_seconds=CASE_TTL_SECONDS,
        )

    async def record_rerating(self, alert_id: str, rerating: Rerating) -> None:
        key = redis_keys.case(self.prefix, alert_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, "rerated", rerating.summary())
            pipe.expire(key, CASE_TTL_SECONDS)
            await pipe.execute()

    async def rerating_replied(self, alert_id: str, rerating: Rerating) -> None:
        await self.redis.hset(
            redis_keys.case(self.prefix, alert_id), "rerated_replied", rerating.rating_id
        )

    async def get(self, alert_id: str) -> Case:
        raw = await self.redis.hgetall(redis_keys.case(self.prefix, alert_id))
        fields = {_text(key): _text(value) for key, value in raw.items()}
        return Case.model_validate({"alert_id": alert_id, **fields})

    async def apply(
        self,
        alert_id: str,
        action: CaseAction,
        *,
        user_id: str,
        user_name: str,
        source: str,
        at: datetime | None = None,
    ) -> CaseEvent | None:
        """The change made, or None when the action is not valid from the current state (or the
        alert is unknown)."""
        at = at or datetime.now(UTC)
        target, sources = TRANSITIONS[action]
        previous = await self._transition(
            keys=[redis_keys.case(self.prefix, alert_id), redis_keys.open_cases(self.prefix)],
            args=[
                target.value,
                ",".join(sorted(sources)),
                user_id,
                at.isoformat(),
                "1" if action is CaseAction.CLAIM else "0",
                CASE_TTL_SECONDS,
                "1" if target in CLOSED else "0",
                alert_id,
            ],
        )
        if previous is None:
            return None
        case = await self.get(alert_id)
        assert case.alert is not None, "the transition requires the alert"
        return CaseEvent(
            alert_id=alert_id,
            action=action,
            previous_state=CaseState(_text(previous)),
            state=target,
            actor=user_name or user_id,
            user_id=user_id,
            user_name=user_name,
            at=at,
            source=source,
            claimed_by=case.claimed_by,
            claimed_at=case.claimed_at,
            alert=Alert.model_validate_json(case.alert),
        )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
