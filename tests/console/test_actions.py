"""The case page's parts without a worker: whom a case may be assigned to, what a page offers
for each state (Undo and Reopen only while they can be: property-tested against the lifecycle's
`decide`), and the notice after an action."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alert_engine.cases import (
    CLOSED,
    FINAL_ACTIONS,
    Actor,
    Case,
    CaseAction,
    CasePolicy,
    CaseRequest,
    CaseState,
    Refusal,
    decide,
)
from alert_engine.console.actions import case_actions, case_buttons
from alert_engine.console.case_page import WITH_FORMS, done_text, pick_member
from alert_engine.signin.members import Member
from tests.factories import make_alert

NOT_WORKFLOW = {CaseState.RERATED, CaseState.HOLDOUT}

TEAM = [Member(name="ana", display_name="Ana Souza"), Member(name="bo")]
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "members", "expected"),
    [
        ("bo", TEAM, "bo"),
        (" ANA ", TEAM, "ana"),
        ("cy", TEAM, None),  # not in the file
        ("", TEAM, None),
        # Behind a proxy without a members file: any member name, nothing else.
        ("cy", [], "cy"),
        ("cy@example.com", [], "cy@example.com"),
        ("<script>", [], None),
        ("", [], None),
    ],
)
def test_a_case_is_assigned_only_to_a_member(
    name: str, members: list[Member], expected: str | None
) -> None:
    member = pick_member(name, members)
    assert (member.name if member else None) == expected
    if member is not None:
        assert member.user_id == f"member:{expected}"


@pytest.mark.parametrize(
    ("case", "buttons"),
    [
        (Case(alert_id="al-1"), ["claim", "not_actionable"]),
        (Case(alert_id="al-1", state=CaseState.CLAIMED), ["unclaim", "not_actionable"]),
        (Case(alert_id="al-1", state=CaseState.REOPENED), ["claim", "not_actionable"]),
        (
            Case(
                alert_id="al-1",
                state=CaseState.NOT_ACTIONABLE,
                undo_action=CaseAction.NOT_ACTIONABLE,
                undo_state=CaseState.OPEN,
                undo_until=NOW + timedelta(seconds=1),
            ),
            ["reopen", "undo"],
        ),
        (
            Case(
                alert_id="al-1",
                state=CaseState.RESOLVED_FOLLOWUP,
                undo_action=CaseAction.RESOLVED_FOLLOWUP,
                undo_state=CaseState.CLAIMED,
                undo_until=NOW - timedelta(seconds=1),
            ),
            ["reopen"],
        ),
    ],
)
def test_the_state_block_offers_the_buttons_the_state_allows_now(
    case: Case, buttons: list[str]
) -> None:
    assert [action for action, _ in case_buttons(case, NOW, WITH_FORMS)] == buttons


def test_the_notice_after_a_final_action_says_how_long_it_can_be_undone() -> None:
    assert done_text(CaseAction.CLAIM, 300) == "Done: Claim."
    assert done_text(CaseAction.NOT_ACTIONABLE, 300) == (
        "Done: Not actionable. You can undo it for 5 minutes."
    )
    assert done_text(CaseAction.NOT_ACTIONABLE, 0) == "Done: Not actionable."


POLICY = CasePolicy(undo_seconds=60, reopen_seconds=3600)
ANA = Actor(id="member:ana", name="Ana Souza", source="console")
ALERT_JSON = make_alert("r-1", NOW).to_json()
offsets = st.integers(-7200_000, 7200_000).map(lambda ms: NOW + timedelta(milliseconds=ms))


@st.composite
def stored_cases(draw: st.DrawFn) -> Case:
    state = draw(st.sampled_from([s for s in CaseState if s not in NOT_WORKFLOW]))
    fields: dict[str, object] = {"alert_id": "al-1", "alert": ALERT_JSON, "state": state}
    if state in (CaseState.CLAIMED,):
        fields.update(assignee="member:bo", claimed_by="member:bo", claimed_at=NOW)
    if state in CLOSED:
        fields["closed_at"] = draw(offsets)
        if draw(st.booleans()):
            fields.update(
                undo_action=draw(st.sampled_from(sorted(FINAL_ACTIONS))),
                undo_state=CaseState.CLAIMED,
                undo_until=draw(offsets),
            )
    return Case.model_validate(fields)


@given(stored_cases(), offsets)
def test_a_page_offers_exactly_the_actions_the_lifecycle_would_take(
    case: Case, now: datetime
) -> None:
    """Differential: each action offered now is one `decide` takes, and each one it takes is
    offered (with the reason, note or assignee its form asks for)."""
    for action in CaseAction:
        request = CaseRequest.of(
            action,
            ANA,
            at=now,
            reason="refund",
            note="a note",
            assignee="member:cy" if action is CaseAction.REASSIGN else None,
        )
        taken = not isinstance(decide(case, request, POLICY), Refusal)
        assert (action in case_actions(case, request.at, POLICY)) is taken, action
