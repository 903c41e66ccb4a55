"""Cases: what the recovery team did about an alert, and the records of it on the `cases` topic.

    open ──claim──> claimed ──resolved_followup / resolved_no_followup / not_actionable──> closed
      └──────────────resolved_followup / resolved_no_followup / not_actionable─────────────┘

The state lives in Redis and changes atomically (one Lua script), so two people clicking at once,
or a click Slack delivers twice, change it once: a click that is not a valid transition from the
current state changes nothing. Each change is published as a `CaseChange` record to the `cases`
topic (keyed by alert id); the follow-up scheduler and the outcome figures read those records as
`CaseEvent`s. `rerated` and `holdout` records are produced by the follow-up side.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from alert_engine import redis_keys
from alert_engine.alerts import Alert

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


class CaseEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    alert_id: str = Field(min_length=1, max_length=128)
    state: CaseState
    previous_state: CaseState | None = None
    actor: str = Field(default="", max_length=256)
    at: AwareDatetime
    alert: Alert
    rerating: Rerating | None = None

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", exclude_none=True))

    @classmethod
    def from_json(cls, raw: bytes | str) -> CaseEvent:
        return cls.model_validate_json(raw)

    @property
    def customer(self) -> dict[str, Any]:
        customer = self.alert.event.get("customer")
        return customer if isinstance(customer, dict) else {}


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


class CaseChange(BaseModel):
    """One change of a case's state: the record on the `cases` topic (JSON, keyed by alert id)."""

    model_config = ConfigDict(frozen=True)

    alert_id: str
    action: CaseAction
    previous_state: CaseState
    state: CaseState
    # Who acted, for people: the Slack user name, or the name typed on the outbox page.
    actor: str
    user_id: str
    user_name: str
    at: AwareDatetime
    # Where the click came from: `slack` or `outbox`.
    source: str
    claimed_by: str | None = None
    claimed_at: AwareDatetime | None = None
    # The alert the case is about (as delivered), for consumers that need its event.
    alert: dict[str, Any] | None = None

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))


class Case(BaseModel):
    alert_id: str
    alert: str | None = None
    state: CaseState = CaseState.OPEN
    claimed_by: str | None = None
    claimed_at: AwareDatetime | None = None
    closed_by: str | None = None
    closed_at: AwareDatetime | None = None


# KEYS[1] the case hash. ARGV: new state, allowed states (comma-separated), user, time, is claim.
# Returns the previous state if the transition was made, or false.
_TRANSITION = """
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
return current
"""


class CaseStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._transition = redis.register_script(_TRANSITION)

    async def remember(self, alert: Alert) -> None:
        """Keep the alert with its case (once), so case changes can carry it."""
        key = redis_keys.case(self.prefix, alert.id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "alert", alert.to_json())
            pipe.expire(key, CASE_TTL_SECONDS)
            await pipe.execute()

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
    ) -> CaseChange | None:
        """The change made, or None when the action is not valid from the current state."""
        at = at or datetime.now(UTC)
        target, sources = TRANSITIONS[action]
        previous = await self._transition(
            keys=[redis_keys.case(self.prefix, alert_id)],
            args=[
                target.value,
                ",".join(sorted(sources)),
                user_id,
                at.isoformat(),
                "1" if action is CaseAction.CLAIM else "0",
                CASE_TTL_SECONDS,
            ],
        )
        if previous is None:
            return None
        case = await self.get(alert_id)
        return CaseChange(
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
            alert=orjson.loads(case.alert) if case.alert else None,
        )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
