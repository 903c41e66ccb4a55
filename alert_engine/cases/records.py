"""The records of a case: its states and actions, the `CaseEvent` that goes on the `cases` topic
for every change, the `HistoryEntry` kept with it in Redis, and the `Case` as stored.

Every record on the `cases` topic (JSON, keyed by alert id) is a `CaseEvent`: the team's
actions produce them (`CaseStore.attempt`), the follow-up side produces `rerated` and `holdout`
ones, and the follow-up scheduler, the outcome figures and the Slack thread replies read them all
with the same model.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from alert_engine.alerts import Alert

__all__ = [
    "ACTION_LABELS",
    "CASE_TTL_SECONDS",
    "CLOSED",
    "FINAL_ACTIONS",
    "LABELS",
    "NOTE_MAX_CHARS",
    "RESOLUTIONS",
    "Actor",
    "Case",
    "CaseAction",
    "CaseEvent",
    "CaseState",
    "HistoryEntry",
    "Rerating",
    "reason_label",
]

CASE_TTL_SECONDS = 90 * 24 * 3600
NOTE_MAX_CHARS = 2000


class CaseState(StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    RESOLVED_FOLLOWUP = "resolved_followup"
    RESOLVED_NO_FOLLOWUP = "resolved_no_followup"
    NOT_ACTIONABLE = "not_actionable"
    # Closed once, then reopened (by a person, or by a follow-up answer still unhappy): it is
    # worked like an open case, nobody's until someone claims it.
    REOPENED = "reopened"
    # Not a workflow state: the customer answered the follow-up survey (see `Rerating`).
    RERATED = "rerated"
    # Not a workflow state: the case was held out of recovery contact (see `followup.holdout`).
    HOLDOUT = "holdout"


class CaseAction(StrEnum):
    CLAIM = "claim"
    UNCLAIM = "unclaim"
    REASSIGN = "reassign"
    RESOLVED_FOLLOWUP = "resolved_followup"
    RESOLVED_NO_FOLLOWUP = "resolved_no_followup"
    NOT_ACTIONABLE = "not_actionable"
    REOPEN = "reopen"
    NOTE = "note"
    UNDO = "undo"


CLOSED = frozenset(
    {CaseState.RESOLVED_FOLLOWUP, CaseState.RESOLVED_NO_FOLLOWUP, CaseState.NOT_ACTIONABLE}
)
# The actions that close a case: they ask for confirmation and can be undone for a while.
FINAL_ACTIONS = frozenset(
    {CaseAction.RESOLVED_FOLLOWUP, CaseAction.RESOLVED_NO_FOLLOWUP, CaseAction.NOT_ACTIONABLE}
)
# The resolutions: they record a reason code.
RESOLUTIONS = frozenset({CaseAction.RESOLVED_FOLLOWUP, CaseAction.RESOLVED_NO_FOLLOWUP})

LABELS = {
    CaseState.OPEN: "Open",
    CaseState.CLAIMED: "Claimed",
    CaseState.RESOLVED_FOLLOWUP: "Resolved, follow-up survey to be sent",
    CaseState.RESOLVED_NO_FOLLOWUP: "Resolved, no follow-up",
    CaseState.NOT_ACTIONABLE: "Not actionable",
    CaseState.REOPENED: "Reopened",
    CaseState.RERATED: "Re-rated by the customer",
    CaseState.HOLDOUT: "Held out of recovery",
}

ACTION_LABELS = {
    CaseAction.CLAIM: "Claim",
    CaseAction.UNCLAIM: "Unclaim",
    CaseAction.REASSIGN: "Reassign",
    CaseAction.RESOLVED_FOLLOWUP: "Resolve \u2013 follow-up",
    CaseAction.RESOLVED_NO_FOLLOWUP: "Resolve \u2013 no follow-up",
    CaseAction.NOT_ACTIONABLE: "Not actionable",
    CaseAction.REOPEN: "Reopen",
    CaseAction.NOTE: "Add a note",
    CaseAction.UNDO: "Undo",
}


def reason_label(code: str) -> str:
    """`call_back` -> `Call back`: how a reason code reads."""
    text = code.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


class Actor(BaseModel):
    """Who acts: a Slack user (`U0ANA`), a web user, or the engine itself (`followup`). The one
    parameter every action takes, so the web's sign-in can supply it."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1, max_length=256)
    name: str = Field(default="", max_length=256)
    # Where: `slack`, `outbox`, `console`, `followup`.
    source: str = Field(min_length=1, max_length=32)


class Rerating(BaseModel):
    """What a `rerated` record adds: the follow-up answer next to the initial rating."""

    model_config = ConfigDict(frozen=True)

    rating: int = Field(ge=1, le=5)
    previous_rating: int | None = Field(default=None, ge=1, le=5)
    nps: int | None = Field(default=None, ge=0, le=10)
    rating_id: str
    comment: str | None = None

    def summary(self) -> str:
        """`Customer re-rated 4★ (was 1★): “Thanks, sorted.”`: the line for the alert's thread
        and its card. The comment as the customer typed it: each channel escapes it."""
        was = f" (was {self.previous_rating}★)" if self.previous_rating is not None else ""
        said = (
            f": \u201c{self.comment.strip()}\u201d" if self.comment and self.comment.strip() else ""
        )
        return f"Customer re-rated {self.rating}★{was}{said}"


class CaseEvent(BaseModel):
    """One record of the `cases` topic: a change of a case (an action), or what the follow-up
    side adds (`rerated`, `holdout`). Fields only an action has stay optional."""

    model_config = ConfigDict(frozen=True, extra="allow")

    alert_id: str = Field(min_length=1, max_length=128)
    state: CaseState
    previous_state: CaseState | None = None
    # Who acted, for people: the Slack user name, or the name given on the web.
    actor: str = Field(default="", max_length=256)
    at: AwareDatetime
    # The alert the case is about, as delivered.
    alert: Alert
    rerating: Rerating | None = None
    # An action's: what was done, who did it (user id and name), where (`slack`, `outbox`...).
    action: CaseAction | None = None
    user_id: str | None = None
    user_name: str | None = None
    source: str | None = None
    claimed_by: str | None = None
    claimed_at: AwareDatetime | None = None
    # A resolution's reason code; a note (any action may carry one).
    reason: str | None = None
    note: str | None = None
    # Whose case it is after the change (claim, reassign), id and name.
    assignee: str | None = None
    assignee_name: str | None = None
    # An undo's: the action it took back.
    undone: CaseAction | None = None
    # Until when the change can be undone (a final action's).
    undo_until: AwareDatetime | None = None

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", exclude_none=True))

    @classmethod
    def from_json(cls, raw: bytes | str) -> CaseEvent:
        return cls.model_validate_json(raw)

    @property
    def customer(self) -> dict[str, Any]:
        customer = self.alert.event.get("customer")
        return customer if isinstance(customer, dict) else {}

    def summary(
        self,
        who: Callable[[str, str], str] | None = None,
        escape: Callable[[str], str] = str,
    ) -> str:
        """The change as a person reads it: `Claimed by ana`, `Resolved, no follow-up by bo ·
        reason: Refund`. `who(id, name)` shows a person (Slack: a mention, escaped name);
        `escape` makes the note and the customer's words safe for the channel."""
        show = who or (lambda user_id, name: name or user_id)
        actor = show(self.user_id or self.actor, self.user_name or self.actor)
        if self.rerating is not None and self.state is CaseState.RERATED:
            text = escape(self.rerating.summary())
        elif self.action is CaseAction.NOTE:
            text = f"Note by {actor}"
        elif self.action is CaseAction.UNDO:
            undone = ACTION_LABELS[self.undone] if self.undone else "the last change"
            text = f"{actor} undid \u201c{undone}\u201d: back to {LABELS[self.state]}"
        elif self.action is CaseAction.REASSIGN:
            assignee = show(self.assignee or "", self.assignee_name or self.assignee or "")
            text = f"Assigned to {assignee} by {actor}"
        elif self.action is CaseAction.UNCLAIM:
            text = f"Unclaimed by {actor}"
        elif self.action is CaseAction.REOPEN and self.source == "followup":
            text = "Reopened: the customer is still unhappy"
        elif self.action is CaseAction.REOPEN:
            text = f"Reopened by {actor}"
        else:
            text = f"{LABELS[self.state]} by {actor}"
        if self.reason:
            text += f" \u00b7 reason: {escape(reason_label(self.reason))}"
        if self.note:
            text += f"\n\u201c{escape(self.note)}\u201d"
        return text


class HistoryEntry(BaseModel):
    """One change, as kept with the case (a Redis list) for the case's page and card."""

    model_config = ConfigDict(frozen=True)

    action: CaseAction
    previous_state: CaseState
    state: CaseState
    at: AwareDatetime
    user_id: str
    user_name: str = ""
    source: str
    reason: str | None = None
    note: str | None = None
    assignee: str | None = None
    assignee_name: str | None = None
    undone: CaseAction | None = None

    def event(self, alert_id: str, alert: Alert, case: Case) -> CaseEvent:
        return CaseEvent(
            alert_id=alert_id,
            action=self.action,
            previous_state=self.previous_state,
            state=self.state,
            actor=self.user_name or self.user_id,
            user_id=self.user_id,
            user_name=self.user_name,
            at=self.at,
            source=self.source,
            claimed_by=case.claimed_by,
            claimed_at=case.claimed_at,
            reason=self.reason,
            note=self.note,
            assignee=self.assignee,
            assignee_name=self.assignee_name,
            undone=self.undone,
            undo_until=case.undo_until if self.action in FINAL_ACTIONS else None,
            alert=alert,
        )


class Case(BaseModel):
    """A case as stored (a Redis hash): its state, whose it is, when it closed, what can be
    undone until when, and where it was posted in Slack."""

    alert_id: str
    alert: str | None = None
    state: CaseState = CaseState.OPEN
    # Whose case it is now (claimed, or assigned): id and name.
    assignee: str | None = None
    assignee_name: str | None = None
    # The current claim (or assignment), and the first one ever (time to claim counts that).
    claimed_by: str | None = None
    claimed_at: AwareDatetime | None = None
    first_claimed_at: AwareDatetime | None = None
    closed_by: str | None = None
    closed_at: AwareDatetime | None = None
    reason: str | None = None
    # The last final action, while it can be undone: what the case was before it.
    undo_action: CaseAction | None = None
    undo_state: CaseState | None = None
    undo_assignee: str | None = None
    undo_assignee_name: str | None = None
    undo_until: AwareDatetime | None = None
    # When the alert was first delivered (the case's age counts from it).
    delivered_at: AwareDatetime | None = None
    # The Slack message the alert was posted as (`channel ts`), for replies in its thread.
    slack_message: str | None = None
    # The customer's answer to the follow-up survey (`Rerating.summary()`), once there is one.
    rerated: str | None = None
    # The rating id of the answer already replied in the Slack thread.
    rerated_replied: str | None = None
    history: tuple[HistoryEntry, ...] = ()

    @property
    def slack_thread(self) -> tuple[str, str] | None:
        if not self.slack_message:
            return None
        channel, _, ts = self.slack_message.partition(" ")
        return channel, ts

    @property
    def is_closed(self) -> bool:
        return self.state in CLOSED

    def can_undo(self, now: datetime | None = None) -> bool:
        now = now or datetime.now(UTC)
        return (
            self.undo_action is not None and self.undo_until is not None and now <= self.undo_until
        )

    def parsed_alert(self) -> Alert | None:
        return Alert.model_validate_json(self.alert) if self.alert else None
