"""The card's case part without a worker: the controls each state offers, the status line, a
click read back, and a digest's other cases left alone when one changes."""

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from slack_sdk.models.blocks import ActionsBlock, InteractiveElement

from alert_engine.cases import Case, CaseAction, CasePolicy, CaseState, HistoryEntry
from alert_engine.channels.slack_cases import (
    case_blocks,
    controls,
    note_modal,
    read_click,
    read_note_submission,
    status_text,
    updated_blocks,
)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
POLICY = CasePolicy(reasons=("refund", "call_back", "other"))


def interactive(block: ActionsBlock) -> list[InteractiveElement]:
    """The block's elements, every one a control Slack sends back with its action id."""
    elements = [e for e in block.elements if isinstance(e, InteractiveElement)]
    assert len(elements) == len(block.elements)
    return elements


def ids(case: Case, now: datetime = NOW) -> list[str | None]:
    return [element.action_id for element in interactive(controls(case, POLICY, now))]


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (CaseState.OPEN, ["claim", "not_actionable", "reassign", "note"]),
        (CaseState.REOPENED, ["claim", "not_actionable", "reassign", "note"]),
        (
            CaseState.CLAIMED,
            [
                "resolved_followup",
                "resolved_no_followup",
                "reason",
                "not_actionable",
                "unclaim",
                "reassign",
                "note",
            ],
        ),
        (CaseState.RESOLVED_FOLLOWUP, ["reopen", "note"]),
        (CaseState.NOT_ACTIONABLE, ["reopen", "note"]),
    ],
)
def test_the_controls_follow_the_state(state: CaseState, expected: list[str]) -> None:
    assert ids(Case(alert_id="al-1", state=state, assignee="U0ANA")) == expected


def test_undo_is_offered_while_it_can_be_and_final_actions_ask_first() -> None:
    closed = Case(
        alert_id="al-1",
        state=CaseState.RESOLVED_NO_FOLLOWUP,
        undo_action=CaseAction.RESOLVED_NO_FOLLOWUP,
        undo_state=CaseState.CLAIMED,
        undo_until=NOW + timedelta(minutes=5),
    )
    assert ids(closed) == ["reopen", "undo", "note"]
    assert ids(closed, NOW + timedelta(minutes=6)) == ["reopen", "note"]
    claimed = controls(Case(alert_id="al-1", state=CaseState.CLAIMED, assignee="U0ANA"), POLICY)
    by_id = {element.action_id: element.to_dict() for element in interactive(claimed)}
    for final in ("resolved_followup", "resolved_no_followup", "not_actionable"):
        assert by_id[final]["confirm"]["deny"]["text"] == "Cancel"
    assert "confirm" not in by_id["unclaim"]
    assert [o["value"] for o in by_id["reason"]["options"]] == ["refund", "call_back", "other"]
    assert [o["text"]["text"] for o in by_id["reason"]["options"]][1] == "Call back"
    # The picker shows whose case it is.
    assert by_id["reassign"]["initial_user"] == "U0ANA"


def test_the_status_line_says_who_why_and_how_old_with_names_escaped() -> None:
    entry = HistoryEntry(
        action=CaseAction.RESOLVED_FOLLOWUP,
        previous_state=CaseState.CLAIMED,
        state=CaseState.RESOLVED_FOLLOWUP,
        at=NOW,
        user_id="outbox:*Bo*",
        user_name="*Bo* <!here>",
        source="outbox",
        reason="call_back",
    )
    case = Case(
        alert_id="al-1",
        state=CaseState.RESOLVED_FOLLOWUP,
        reason="call_back",
        delivered_at=NOW - timedelta(hours=2),
        history=(entry,),
        rerated="Customer re-rated 2★ (was 1★): “*meh*”",
    )
    epoch = int((NOW - timedelta(hours=2)).timestamp())
    assert status_text(case, NOW) == (
        "*Resolved, follow-up survey to be sent* by \u200b*Bo* &lt;!here&gt; · reason: Call back"
        f" · opened <!date^{epoch}^{{ago}}|2026-12-03 10:00 UTC>"
        "\nCustomer re-rated 2★ (was 1★): “\u200b*meh*”"
    )


def test_a_change_replaces_only_its_own_cases_blocks_in_a_digest() -> None:
    one, two = Case(alert_id="al-1"), Case(alert_id="al-2")
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "2 alerts"}},
        *[block.to_dict() for block in case_blocks(one, POLICY, NOW)],
        *[block.to_dict() for block in case_blocks(two, POLICY, NOW)],
    ]
    claimed = Case(alert_id="al-2", state=CaseState.CLAIMED, assignee="U0BO")
    updated = updated_blocks(blocks, claimed, POLICY, NOW)
    assert updated[:3] == blocks[:3]
    assert updated[3]["elements"][0]["text"].startswith("*Claimed* by <@U0BO>")
    assert updated[4]["elements"][0]["action_id"] == "resolved_followup"
    assert len(updated) == len(blocks)


def click_payload(**action: str) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": {"id": "U0ANA", "username": "ana"},
        "channel": {"id": "C0RECOVERY"},
        "message": {"ts": "1.000001", "blocks": []},
        "trigger_id": "T0",
        "actions": [action],
        "state": {
            "values": {
                "actions:al-1": {"reason": {"selected_option": {"value": "other"}}},
            }
        },
    }


def test_a_click_is_read_with_the_reason_picked_and_other_asks_for_a_note() -> None:
    click = read_click(click_payload(action_id="resolved_followup", value="al-1"))
    assert (click.action, click.reason, click.actor.name) == (
        CaseAction.RESOLVED_FOLLOWUP,
        "other",
        "ana",
    )
    assert click.needs_note
    # The note modal carries what it is for, and its answer reads back as that action.
    view = note_modal(click).to_dict()
    submission = read_note_submission(
        {
            "type": "view_submission",
            "user": {"id": "U0ANA", "name": "ana"},
            "view": {
                **view,
                "state": {"values": {"note": {"note": {"value": "sent flowers"}}}},
            },
        }
    )
    assert (submission.action, submission.reason, submission.note, submission.ts) == (
        CaseAction.RESOLVED_FOLLOWUP,
        "other",
        "sent flowers",
        "1.000001",
    )
    assert orjson.loads(view["private_metadata"])["alert_id"] == "al-1"
    # A picker: the alert comes from the block id; the user picked is the assignee.
    picked = read_click(
        click_payload(action_id="reassign", block_id="actions:al-1", selected_user="U0BO")
    )
    assert (picked.alert_id, picked.assignee, picked.action) == (
        "al-1",
        "U0BO",
        CaseAction.REASSIGN,
    )
    assert read_click(click_payload(action_id="reason", block_id="actions:al-1")).action is None
    with pytest.raises(ValueError):
        read_click(click_payload(action_id="delete", value="al-1"))
