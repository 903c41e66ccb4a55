"""A case in Slack: the controls its state allows, its status line, what a click asks for, the
note modal, and the lines its changes add to the alert's thread.

Controls by state: before a claim, Claim, Not actionable and Assign to (a user picker); claimed,
Resolve - follow-up and Resolve - no follow-up (with a reason picker), Not actionable, Unclaim
and Reassign; closed, Reopen, and Undo while the change can be undone. Add a note, always. The
final actions carry Block Kit `confirm` objects: Slack asks before the click is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    SectionBlock,
    StaticSelectElement,
    UserSelectElement,
)
from slack_sdk.models.views import View

from alert_engine.cases import (
    ACTION_LABELS,
    CLOSED,
    LABELS,
    NOTE_MAX_CHARS,
    OTHER,
    RESOLUTIONS,
    Actor,
    Case,
    CaseAction,
    CaseEvent,
    CasePolicy,
    CaseRequest,
    CaseState,
    duration_text,
    reason_label,
)
from alert_engine.channels.slack_text import (
    SLACK_USER_ID,
    mrkdwn_text,
    person,
    plain,
    slack_ago,
    slack_date,
)

ACTIONS_BLOCK = "actions:"
STATUS_BLOCK = "status:"
# Controls that are not actions themselves: the reason picker is read when a Resolve is
# clicked; Add a note opens the note modal.
REASON_SELECT = "reason"
NOTE_BUTTON = "note"
NOTE_VIEW = "case_note"
NOTE_BLOCK = "note"


def _confirm(title: str, text: str, confirm: str, policy: CasePolicy) -> ConfirmObject:
    undo = f" You can undo it for {duration_text(policy.undo_seconds)}."
    return ConfirmObject(
        title=title,
        text=text + (undo if policy.undo_seconds else ""),
        confirm=confirm,
        deny="Cancel",
    )


def _button(action: CaseAction | str, alert_id: str, **extra: Any) -> ButtonElement:
    label = ACTION_LABELS[action] if isinstance(action, CaseAction) else "Add a note"
    return ButtonElement(text=label, action_id=str(action), value=alert_id, **extra)


def controls(case: Case, policy: CasePolicy, now: datetime | None = None) -> ActionsBlock:
    """The case's buttons and pickers for its state."""
    now = now or datetime.now(UTC)
    alert_id = case.alert_id
    # A case claimed before the engine kept an assignee has only its claimer.
    owner = case.assignee or case.claimed_by
    elements: list[Any] = []
    not_actionable = _button(
        CaseAction.NOT_ACTIONABLE,
        alert_id,
        style="danger",
        confirm=_confirm(
            "Not actionable?",
            "The case closes without recovery contact.",
            "Not actionable",
            policy,
        ),
    )
    if case.state in (CaseState.OPEN, CaseState.REOPENED):
        elements += [
            _button(CaseAction.CLAIM, alert_id, style="primary"),
            not_actionable,
            UserSelectElement(placeholder="Assign to\u2026", action_id=CaseAction.REASSIGN.value),
        ]
    elif case.state is CaseState.CLAIMED:
        elements += [
            _button(
                CaseAction.RESOLVED_FOLLOWUP,
                alert_id,
                style="primary",
                confirm=_confirm(
                    "Resolve with a follow-up?",
                    "The customer gets the follow-up survey.",
                    "Resolve",
                    policy,
                ),
            ),
            _button(
                CaseAction.RESOLVED_NO_FOLLOWUP,
                alert_id,
                confirm=_confirm(
                    "Resolve without a follow-up?",
                    "The case closes; no survey is sent.",
                    "Resolve",
                    policy,
                ),
            ),
            StaticSelectElement(
                placeholder="Reason\u2026",
                action_id=REASON_SELECT,
                options=[
                    Option(value=code, label=reason_label(code)[:75]) for code in policy.reasons
                ],
            ),
            not_actionable,
            _button(CaseAction.UNCLAIM, alert_id),
            UserSelectElement(
                placeholder="Reassign to\u2026",
                action_id=CaseAction.REASSIGN.value,
                # The picker shows whose case it is (a Slack user's).
                initial_user=owner if owner and SLACK_USER_ID.match(owner) else None,
            ),
        ]
    elif case.state in CLOSED:
        elements.append(_button(CaseAction.REOPEN, alert_id))
        if case.can_undo(now):
            elements.append(_button(CaseAction.UNDO, alert_id))
    elements.append(_button(NOTE_BUTTON, alert_id))
    return ActionsBlock(block_id=ACTIONS_BLOCK + alert_id, elements=elements)


def status_text(case: Case, now: datetime | None = None) -> str:
    """`*Claimed* by <@U0ANA> · opened <!date…{ago}>`, in mrkdwn."""
    now = now or datetime.now(UTC)
    line = f"*{LABELS[case.state]}*"
    last = case.history[-1] if case.history else None
    owner = case.assignee or case.claimed_by
    if case.state is CaseState.CLAIMED and owner:
        line += " by " + person(owner, case.assignee_name or "")
    elif case.state in CLOSED and last is not None:
        line += " by " + person(last.user_id, last.user_name)
        if case.reason:
            line += f" \u00b7 reason: {mrkdwn_text(reason_label(case.reason))}"
    elif case.state is CaseState.REOPENED and last is not None:
        line += " by " + person(last.user_id, last.user_name)
    if case.delivered_at is not None:
        line += f" \u00b7 opened {slack_ago(case.delivered_at)}"
    if case.can_undo(now) and case.undo_until is not None:
        line += f" \u00b7 can be undone until {slack_date(case.undo_until, '{time}')}"
    notes = sum(1 for entry in case.history if entry.note)
    if notes:
        line += f" \u00b7 {notes} note{'s' if notes > 1 else ''} in the thread"
    if case.rerated:
        line += f"\n{mrkdwn_text(case.rerated)}"
    return line


def case_blocks(case: Case, policy: CasePolicy, now: datetime | None = None) -> list[Block]:
    """The status line and the controls: the part of a card that follows its case."""
    return [
        ContextBlock(
            block_id=STATUS_BLOCK + case.alert_id,
            # Verbatim: nothing in it is auto-linked; mentions and dates are explicit syntax.
            elements=[MarkdownTextObject(text=status_text(case, now)[:3000], verbatim=True)],
        ),
        controls(case, policy, now),
    ]


def updated_blocks(
    blocks: list[dict[str, Any]], case: Case, policy: CasePolicy, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The message's blocks with the case's status and controls in place of the earlier ones
    (a digest holds several alerts' cases: only this one's change)."""
    ours = {STATUS_BLOCK + case.alert_id, ACTIONS_BLOCK + case.alert_id}
    fresh = [block.to_dict() for block in case_blocks(case, policy, now)]
    updated: list[dict[str, Any]] = []
    placed = False
    for block in blocks:
        if block.get("block_id") in ours:
            if not placed:
                updated.extend(fresh)
                placed = True
            continue
        updated.append(block)
    if not placed:
        updated.extend(fresh)
    return updated[:50]


def thread_text(change: CaseEvent) -> str:
    """The change's line in the alert's thread: mentions for Slack users, the rest escaped."""
    return change.summary(who=person, escape=mrkdwn_text)[:3000]


@dataclass(frozen=True)
class Click:
    """What a click on a card asks for."""

    alert_id: str
    control: str
    actor: Actor
    channel: str
    ts: str
    blocks: list[dict[str, Any]]
    trigger_id: str | None = None
    reason: str | None = None
    assignee: str | None = None

    @property
    def action(self) -> CaseAction | None:
        """The case action, or None for the reason picker and the note button."""
        try:
            return CaseAction(self.control)
        except ValueError:
            return None

    @property
    def needs_note(self) -> bool:
        """The note button, or a resolution with the reason "other": the note modal first."""
        return self.control == NOTE_BUTTON or (self.action in RESOLUTIONS and self.reason == OTHER)

    def request(self, at: datetime | None = None) -> CaseRequest:
        assert self.action is not None
        return CaseRequest.of(
            self.action, self.actor, at=at, reason=self.reason, assignee=self.assignee
        )


CONTROLS = {action.value for action in CaseAction} | {REASON_SELECT, NOTE_BUTTON}


def read_click(payload: dict[str, Any]) -> Click:
    """A `block_actions` payload as a `Click`; raises (KeyError, TypeError, ValueError) on one
    this app's cards do not send."""
    if payload["type"] != "block_actions":
        raise ValueError("not a click")
    [action] = payload["actions"]
    control = str(action["action_id"])
    if control not in CONTROLS:
        raise ValueError(f"not a control of this app: {control!r}")
    block_id = str(action.get("block_id") or "")
    alert_id = str(action.get("value") or block_id.removeprefix(ACTIONS_BLOCK))
    if not alert_id:
        raise ValueError("no alert")
    user = payload["user"]
    user_id = str(user["id"])
    name = str(user.get("name") or user.get("username") or user_id)
    message = payload["message"]
    values = ((payload.get("state") or {}).get("values") or {}).get(ACTIONS_BLOCK + alert_id) or {}
    reason = ((values.get(REASON_SELECT) or {}).get("selected_option") or {}).get("value")
    assignee = action.get("selected_user") if control == CaseAction.REASSIGN.value else None
    return Click(
        alert_id=alert_id,
        control=control,
        actor=Actor(id=user_id, name=name, source="slack"),
        channel=str(payload["channel"]["id"]),
        ts=str(message["ts"]),
        blocks=list(message.get("blocks") or []),
        trigger_id=payload.get("trigger_id"),
        reason=str(reason) if reason else None,
        assignee=str(assignee) if assignee else None,
    )


@dataclass(frozen=True)
class NoteSubmission:
    """The note modal sent: the note, and the action it goes with (a note, or a resolution
    with the reason "other")."""

    alert_id: str
    action: CaseAction
    actor: Actor
    note: str
    channel: str
    ts: str
    reason: str | None = None

    def request(self, at: datetime | None = None) -> CaseRequest:
        return CaseRequest.of(self.action, self.actor, at=at, reason=self.reason, note=self.note)


def note_modal(click: Click) -> View:
    """The modal asking for a note; what it is for travels in its private metadata."""
    action = click.action if click.action in RESOLUTIONS else CaseAction.NOTE
    metadata = {
        "alert_id": click.alert_id,
        "action": action.value,
        "reason": click.reason if action in RESOLUTIONS else None,
        "channel": click.channel,
        "ts": click.ts,
    }
    intro = (
        f"{ACTION_LABELS[action]} with the reason \u201cOther\u201d: say what was done."
        if action in RESOLUTIONS
        else "The note goes into the case's history and the alert's thread."
    )
    return View(
        type="modal",
        callback_id=NOTE_VIEW,
        title="Case note",
        submit="Resolve" if action in RESOLUTIONS else "Add note",
        close="Cancel",
        private_metadata=orjson.dumps(metadata).decode(),
        blocks=[
            SectionBlock(text=plain(intro)),
            InputBlock(
                block_id=NOTE_BLOCK,
                label="Note",
                element=PlainTextInputElement(
                    action_id=NOTE_BLOCK, multiline=True, max_length=NOTE_MAX_CHARS
                ),
            ),
        ],
    )


def read_note_submission(payload: dict[str, Any]) -> NoteSubmission:
    """A `view_submission` of the note modal; raises on anything else."""
    if payload["type"] != "view_submission" or payload["view"]["callback_id"] != NOTE_VIEW:
        raise ValueError("not the note modal")
    view = payload["view"]
    metadata = orjson.loads(view["private_metadata"])
    note = view["state"]["values"][NOTE_BLOCK][NOTE_BLOCK]["value"]
    user = payload["user"]
    user_id = str(user["id"])
    return NoteSubmission(
        alert_id=str(metadata["alert_id"]),
        action=CaseAction(metadata["action"]),
        actor=Actor(
            id=user_id,
            name=str(user.get("name") or user.get("username") or user_id),
            source="slack",
        ),
        note=str(note or ""),
        channel=str(metadata["channel"]),
        ts=str(metadata["ts"]),
        reason=metadata.get("reason"),
    )
