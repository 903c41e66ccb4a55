"""The case lifecycle as a pure function: which action may be taken from which state, what it
changes, and for every action that may not be taken, why not (`Refusal`, in words a person
reads in Slack or on the web).

    open/reopened ──claim / reassign──> claimed ──unclaim──> open
    claimed ──resolved_followup / resolved_no_followup──> resolved_*   (a reason code)
    open/reopened/claimed ──not_actionable──> not_actionable
    resolved_* / not_actionable ──reopen (within reopen_seconds)──> reopened
    a final action ──undo (within undo_seconds)──> the state before it
    any state ──note──> the same state

`decide` is the model; `CaseStore` makes the same change atomically in Redis (one Lua script),
and a differential test holds the two to each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from alert_engine.cases.records import (
    ACTION_LABELS,
    CLOSED,
    FINAL_ACTIONS,
    LABELS,
    NOTE_MAX_CHARS,
    RESOLUTIONS,
    Actor,
    Case,
    CaseAction,
    CaseState,
    HistoryEntry,
    Rerating,
    reason_label,
)
from alert_engine.settings import DEFAULT_REASONS, CaseSettings

__all__ = [
    "DEFAULT_REASONS",
    "OTHER",
    "TRANSITIONS",
    "CasePolicy",
    "CaseRequest",
    "Refusal",
    "RefusalReason",
    "Transition",
    "allowed_actions",
    "check_request",
    "decide",
    "duration_text",
]

# The reason code that needs a note saying what was done.
OTHER = "other"


class Transition(NamedTuple):
    """Where an action leads (None: the state stays, for a note, or is restored, for an undo)
    and the states it may be taken from."""

    target: CaseState | None
    sources: frozenset[CaseState]


_WORKING = frozenset({CaseState.OPEN, CaseState.REOPENED})
TRANSITIONS: dict[CaseAction, Transition] = {
    CaseAction.CLAIM: Transition(CaseState.CLAIMED, _WORKING),
    CaseAction.UNCLAIM: Transition(CaseState.OPEN, frozenset({CaseState.CLAIMED})),
    CaseAction.REASSIGN: Transition(CaseState.CLAIMED, _WORKING | {CaseState.CLAIMED}),
    CaseAction.RESOLVED_FOLLOWUP: Transition(
        CaseState.RESOLVED_FOLLOWUP, frozenset({CaseState.CLAIMED})
    ),
    CaseAction.RESOLVED_NO_FOLLOWUP: Transition(
        CaseState.RESOLVED_NO_FOLLOWUP, frozenset({CaseState.CLAIMED})
    ),
    CaseAction.NOT_ACTIONABLE: Transition(CaseState.NOT_ACTIONABLE, _WORKING | {CaseState.CLAIMED}),
    CaseAction.REOPEN: Transition(CaseState.REOPENED, CLOSED),
    CaseAction.NOTE: Transition(None, _WORKING | {CaseState.CLAIMED} | CLOSED),
    CaseAction.UNDO: Transition(None, CLOSED),
}


def allowed_actions(state: CaseState) -> set[CaseAction]:
    """The actions the state allows (undo and reopen still depend on time)."""
    return {action for action, (_, sources) in TRANSITIONS.items() if state in sources}


@dataclass(frozen=True)
class CasePolicy:
    """The team's rules for cases (`CaseSettings`): reason codes, how long an undo and a reopen
    stay possible, and which follow-up answers count as still unhappy."""

    reasons: tuple[str, ...] = DEFAULT_REASONS
    undo_seconds: float = 300.0
    reopen_seconds: float = 14 * 24 * 3600.0
    reopen_when_unhappy: bool = True
    unhappy_at_most: int = 2
    unhappy_if_not_better: bool = False

    @classmethod
    def of(cls, settings: CaseSettings) -> CasePolicy:
        return cls(
            reasons=settings.reasons,
            undo_seconds=settings.undo_seconds,
            reopen_seconds=settings.reopen_days * 86400,
            reopen_when_unhappy=settings.reopen_when_unhappy,
            unhappy_at_most=settings.unhappy_at_most,
            unhappy_if_not_better=settings.unhappy_if_not_better,
        )

    def is_unhappy(self, rerating: Rerating) -> bool:
        """Whether a follow-up answer says the recovery did not work: at most
        `unhappy_at_most` stars, or (if `unhappy_if_not_better`) no better than before."""
        if rerating.rating <= self.unhappy_at_most:
            return True
        return (
            self.unhappy_if_not_better
            and rerating.previous_rating is not None
            and rerating.rating <= rerating.previous_rating
        )


class RefusalReason(StrEnum):
    UNKNOWN_CASE = "unknown_case"
    NOT_FROM_STATE = "not_from_state"
    SAME_ASSIGNEE = "same_assignee"
    NOTHING_TO_UNDO = "nothing_to_undo"
    UNDO_EXPIRED = "undo_expired"
    REOPEN_EXPIRED = "reopen_expired"
    REASON_REQUIRED = "reason_required"
    UNKNOWN_REASON = "unknown_reason"
    NOTE_REQUIRED = "note_required"
    NOTE_TOO_LONG = "note_too_long"
    ASSIGNEE_REQUIRED = "assignee_required"


@dataclass(frozen=True)
class Refusal:
    """An action that changed nothing, and why, for the person who tried it."""

    reason: RefusalReason
    message: str
    state: CaseState | None = None


@dataclass(frozen=True)
class CaseRequest:
    """One action someone asks for. Times are kept to the millisecond (as the store keeps them)."""

    action: CaseAction
    actor: Actor
    at: datetime
    reason: str | None = None
    note: str | None = None
    assignee: str | None = None
    assignee_name: str | None = None

    @classmethod
    def of(
        cls,
        action: CaseAction,
        actor: Actor,
        *,
        at: datetime | None = None,
        reason: str | None = None,
        note: str | None = None,
        assignee: str | None = None,
        assignee_name: str | None = None,
    ) -> CaseRequest:
        when = (at or datetime.now(UTC)).astimezone(UTC)
        when = when.replace(microsecond=when.microsecond // 1000 * 1000)
        return cls(
            action=action,
            actor=actor,
            at=when,
            reason=(reason or "").strip() or None,
            note=(note or "").strip() or None,
            assignee=(assignee or "").strip() or None,
            assignee_name=(assignee_name or "").strip() or None,
        )


def epoch_ms(at: datetime) -> int:
    return (at - EPOCH) // timedelta(milliseconds=1)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def check_request(request: CaseRequest, policy: CasePolicy) -> Refusal | None:
    """What is wrong with the request whatever the case's state: a resolution without a known
    reason, `other` or a note action without a note, a reassignment to nobody."""
    if request.note is not None and len(request.note) > NOTE_MAX_CHARS:
        return Refusal(
            RefusalReason.NOTE_TOO_LONG,
            f"The note is {len(request.note)} characters long; at most {NOTE_MAX_CHARS} are kept.",
        )
    if request.action in RESOLUTIONS:
        if request.reason is None:
            return Refusal(
                RefusalReason.REASON_REQUIRED,
                "Choose a reason before resolving: "
                + ", ".join(reason_label(code) for code in policy.reasons)
                + ".",
            )
        if request.reason not in policy.reasons:
            return Refusal(
                RefusalReason.UNKNOWN_REASON,
                f"{request.reason!r} is not one of the reasons: " + ", ".join(policy.reasons) + ".",
            )
        if request.reason == OTHER and request.note is None:
            return Refusal(
                RefusalReason.NOTE_REQUIRED,
                "The reason \u201cOther\u201d needs a note saying what was done.",
            )
    if request.action is CaseAction.NOTE and request.note is None:
        return Refusal(RefusalReason.NOTE_REQUIRED, "A note needs some text.")
    if request.action is CaseAction.REASSIGN and request.assignee is None:
        return Refusal(RefusalReason.ASSIGNEE_REQUIRED, "Choose who the case goes to.")
    return None


def normalized(request: CaseRequest) -> CaseRequest:
    """Only resolutions keep a reason code."""
    if request.reason is not None and request.action not in RESOLUTIONS:
        return CaseRequest(
            request.action,
            request.actor,
            request.at,
            None,
            request.note,
            request.assignee,
            request.assignee_name,
        )
    return request


def refusal_message(
    reason: RefusalReason,
    action: CaseAction,
    state: CaseState,
    assignee: str | None,
    policy: CasePolicy,
) -> str:
    """Why the action changed nothing, from the state the store found."""
    label = LABELS.get(state, state.value)
    owner = assignee or "someone"
    if reason is RefusalReason.UNKNOWN_CASE:
        return "This alert has no case here (never delivered, or its case expired)."
    if reason is RefusalReason.SAME_ASSIGNEE:
        return f"The case is already {owner}'s: nothing changed."
    if reason is RefusalReason.NOTHING_TO_UNDO:
        return "Nothing to undo: the last change was not a resolution, or it was undone already."
    if reason is RefusalReason.UNDO_EXPIRED:
        return (
            f"Too late to undo: a change can be undone for {duration_text(policy.undo_seconds)}. "
            "Reopen the case instead."
        )
    if reason is RefusalReason.REOPEN_EXPIRED:
        period = duration_text(policy.reopen_seconds)
        return f"Too late to reopen: a case can be reopened for {period} after it closed."
    # Not from this state.
    if action is CaseAction.CLAIM and state is CaseState.CLAIMED:
        return f"Already claimed by {owner}: nothing changed."
    if state in CLOSED and action is not CaseAction.REOPEN:
        return f"This case is closed ({label}): nothing changed. Reopen it to work on it."
    if action in RESOLUTIONS:
        return "Claim the case before resolving it: nothing changed."
    if action is CaseAction.UNCLAIM:
        return "Nobody has claimed this case: nothing changed."
    if action is CaseAction.UNDO:
        return f"Nothing to undo: the case is {label.lower()}, not closed."
    if action is CaseAction.REOPEN:
        return f"This case is not closed (it is {label.lower()}): nothing to reopen."
    return f"{ACTION_LABELS[action]} cannot be done on a case that is {label.lower()}."


def duration_text(seconds: float) -> str:
    """`5 minutes`, `14 days`: a configured period as a person reads it."""
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:g} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:g} hours"
    if seconds >= 120:
        return f"{seconds / 60:g} minutes"
    return f"{seconds:g} seconds"


def decide(
    case: Case, request: CaseRequest, policy: CasePolicy, *, reopen_limit: bool = True
) -> tuple[Case, HistoryEntry] | Refusal:
    """The case after the request and its history entry, or why nothing changes. The store's
    Lua script does the same; `reopen_limit=False` reopens whenever (the follow-up side)."""
    problem = check_request(request, policy)
    if problem is not None:
        return problem
    request = normalized(request)
    action = request.action
    state = case.state

    def refuse(reason: RefusalReason) -> Refusal:
        message = refusal_message(
            reason, action, state, case.assignee_name or case.assignee, policy
        )
        return Refusal(reason, message, state)

    if case.alert is None:
        return refuse(RefusalReason.UNKNOWN_CASE)
    target, sources = TRANSITIONS[action]
    if state not in sources:
        return refuse(RefusalReason.NOT_FROM_STATE)
    now = request.at
    actor = request.actor
    if (
        action is CaseAction.REASSIGN
        and state is CaseState.CLAIMED
        and case.assignee == request.assignee
    ):
        return refuse(RefusalReason.SAME_ASSIGNEE)
    if action is CaseAction.UNDO:
        if case.undo_action is None or case.undo_state is None:
            return refuse(RefusalReason.NOTHING_TO_UNDO)
        if case.undo_until is None or epoch_ms(now) > epoch_ms(case.undo_until):
            return refuse(RefusalReason.UNDO_EXPIRED)
        target = case.undo_state
    if (
        action is CaseAction.REOPEN
        and reopen_limit
        and case.closed_at is not None
        and epoch_ms(now) > epoch_ms(case.closed_at) + round(policy.reopen_seconds * 1000)
    ):
        return refuse(RefusalReason.REOPEN_EXPIRED)
    if target is None:
        target = state
    changes: dict[str, object] = {"state": target}
    entry: dict[str, object] = {
        "action": action,
        "previous_state": state,
        "state": target,
        "at": now,
        "user_id": actor.id,
        "user_name": actor.name,
        "source": actor.source,
        "reason": request.reason,
        "note": request.note,
    }
    clear_undo = action is not CaseAction.NOTE and action not in FINAL_ACTIONS
    if action in (CaseAction.CLAIM, CaseAction.REASSIGN):
        who, name = actor.id, actor.name
        if action is CaseAction.REASSIGN:
            who, name = request.assignee or "", request.assignee_name or ""
        changes.update(
            assignee=who,
            assignee_name=name or None,
            claimed_by=who,
            claimed_at=now,
            first_claimed_at=case.first_claimed_at or now,
        )
        entry.update(assignee=who, assignee_name=name or None)
    elif action in (CaseAction.UNCLAIM, CaseAction.REOPEN):
        changes.update(assignee=None, assignee_name=None, claimed_by=None, claimed_at=None)
        if action is CaseAction.REOPEN:
            changes.update(closed_by=None, closed_at=None, reason=None)
    elif action in FINAL_ACTIONS:
        changes.update(
            closed_by=actor.id,
            closed_at=now,
            reason=request.reason,
            undo_action=action,
            undo_state=state,
            undo_assignee=case.assignee,
            undo_assignee_name=case.assignee_name,
            undo_until=now + timedelta(milliseconds=round(policy.undo_seconds * 1000)),
        )
    elif action is CaseAction.UNDO:
        entry["undone"] = case.undo_action
        changes.update(
            closed_by=None,
            closed_at=None,
            reason=None,
            assignee=case.undo_assignee,
            assignee_name=case.undo_assignee_name,
        )
    if clear_undo:
        changes.update(
            undo_action=None,
            undo_state=None,
            undo_assignee=None,
            undo_assignee_name=None,
            undo_until=None,
        )
    history_entry = HistoryEntry.model_validate(entry)
    changes["history"] = (*case.history, history_entry)
    return case.model_copy(update=changes), history_entry
