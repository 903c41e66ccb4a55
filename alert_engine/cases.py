"""Case state changes: the records on the `cases` topic, one per change, keyed by alert id.

The recovery workflow (claim / resolve buttons in Slack or email) produces them; the follow-up
scheduler and the outcome figures consume them. `rerated` is produced by the follow-up side when
the customer answers the survey, so the workflow can tell the alert's thread.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from alert_engine.alerts import Alert


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
