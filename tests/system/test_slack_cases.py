"""The case lifecycle through a real worker and the Slack stand-in: confirm objects on the final
actions, unclaim and reassign, notes from a modal, "other" with its note, undo in its time and
not after, each change in the thread, on the card and on the `cases` topic."""

import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from devstack.stack import Endpoints
from standins.slack import Message, SlackStandIn
from tests.engine import encode_all
from tests.factories import rating
from tests.system.test_slack_worker import (
    ROUTING,
    SLACK_AND_DESK,
    click,
    controls_of,
    slack_engine,
    status_of,
    submit_note,
    wait_until,
)

pytestmark = pytest.mark.integration

UNDO_SECONDS = 3


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    standin = SlackStandIn().start()
    yield standin
    standin.stop()


def alert_id(message: Message) -> str:
    return message.alert_id


def thread(slack: SlackStandIn, message: Message) -> list[str]:
    return [reply.text for reply in slack.replies(message.ts)]


def test_every_transition_from_slack_with_confirm_notes_and_undo(
    stack: Endpoints, unique: str, tmp_path: Path, slack: SlackStandIn
) -> None:
    engine = slack_engine(stack, unique, tmp_path, slack, ROUTING)
    engine.env["ALERT_ENGINE_CASES_UNDO_SECONDS"] = str(UNDO_SECONDS)
    worker = engine.worker().start()
    try:
        engine.produce(
            engine.kafka.ratings_topic,
            encode_all([rating(id="r-case-a"), rating(id="r-case-b")]),
        )
        wait_until(lambda: len(slack.posts()) == 2)
        first, second = slack.posts()

        # The final actions ask before they are sent.
        [actions] = [b for b in first.blocks if b["type"] == "actions"]
        confirm = {e["action_id"]: e.get("confirm") for e in actions["elements"]}
        assert confirm["not_actionable"]["confirm"]["text"] == "Not actionable"
        assert confirm["not_actionable"]["text"]["text"] == (
            "The case closes without recovery contact. You can undo it for 3 seconds."
        )
        assert confirm["claim"] is None

        # Claim, reassign to a picked user, unclaim.
        assert click(worker, first, "claim") == 200
        assert click(worker, first, "reassign", selected_user="U0BO") == 200
        assert status_of(first).startswith("*Claimed* by <@U0BO>")
        assert click(worker, first, "reassign", selected_user="U0BO") == 200
        assert slack.ephemerals[-1].text == "The case is already U0BO's: nothing changed."
        assert click(worker, first, "unclaim", user="U0BO") == 200
        assert controls_of(first)[:2] == ["claim", "not_actionable"]
        assert click(worker, first, "unclaim") == 200
        assert slack.ephemerals[-1].text == "Nobody has claimed this case: nothing changed."

        # A note: the button opens a modal; what is sent goes into the history and the thread,
        # escaped (it cannot ping the channel or format).
        assert click(worker, first, "note", trigger_id="T0NOTE") == 200
        [(trigger, view)] = slack.views
        assert trigger == "T0NOTE" and view["callback_id"] == "case_note"
        status, body = submit_note(worker, view, "")
        assert status == 200 and orjson.loads(body)["errors"]["note"] == "A note needs some text."
        updates = first.updates
        status, body = submit_note(worker, view, "<!channel> called *twice*, no answer")
        assert (status, body) == (200, b"")
        assert thread(slack, first)[-1] == (
            "Note by <@U0ANA>\n“&lt;!channel&gt; called \u200b*twice*, no answer”"
        )
        # The card was read back from the channel and updated: it counts the note.
        assert first.updates == updates + 1 and "1 note in the thread" in status_of(first)

        # Not actionable, then undone within the period: open again, as before.
        assert click(worker, first, "not_actionable") == 200
        assert controls_of(first) == ["reopen", "undo", "note"]
        assert click(worker, first, "undo", user="U0BO") == 200
        assert thread(slack, first)[-1] == "<@U0BO> undid “Not actionable”: back to Open"
        assert controls_of(first)[0] == "claim"
        assert click(worker, first, "undo") == 200
        assert slack.ephemerals[-1].text == "Nothing to undo: the case is open, not closed."

        # Resolved with the reason "other": the note modal first, then the resolution.
        assert click(worker, second, "claim", user="U0BO") == 200
        assert (
            click(worker, second, "resolved_no_followup", reason="other", trigger_id="T0OTHER")
            == 200
        )
        assert second.updates == 1  # nothing resolved yet
        (_, other_view) = slack.views[-1]
        assert orjson.loads(other_view["private_metadata"])["reason"] == "other"
        assert submit_note(worker, other_view, "sent a voucher by post")[0] == 200
        assert thread(slack, second)[-1] == (
            "Resolved, no follow-up by <@U0ANA> · reason: Other\n“sent a voucher by post”"
        )
        # Past the undo period, Undo says why it cannot, and Reopen works.
        time.sleep(UNDO_SECONDS + 0.5)
        assert click(worker, second, "undo") == 200
        assert slack.ephemerals[-1].text.startswith("Too late to undo: a change can be undone")
        assert click(worker, second, "reopen", user="U0BO") == 200
        assert status_of(second).startswith("*Reopened* by <@U0BO>")
        assert thread(slack, second)[-1] == "Reopened by <@U0BO>"

        # Every change on the `cases` topic, in order for each case; refusals nowhere.
        records = [orjson.loads(r.value) for r in engine.consume(engine.kafka.cases_topic, 9)]
        by_case: dict[str, list[str]] = {}
        for record in records:
            by_case.setdefault(record["alert_id"], []).append(record["action"])
        assert by_case == {
            alert_id(first): ["claim", "reassign", "unclaim", "note", "not_actionable", "undo"],
            alert_id(second): ["claim", "resolved_no_followup", "reopen"],
        }
        [other] = [r for r in records if r["action"] == "resolved_no_followup"]
        assert (other["reason"], other["note"]) == ("other", "sent a voucher by post")
    finally:
        worker.stop()


def test_a_change_on_the_outbox_page_shows_on_the_slack_card_and_thread_too(
    stack: Endpoints, unique: str, tmp_path: Path, slack: SlackStandIn
) -> None:
    engine = slack_engine(stack, unique, tmp_path, slack, SLACK_AND_DESK)
    worker = engine.worker().start()
    try:
        engine.produce(engine.kafka.ratings_topic, encode_all([rating(id="r-both")]))
        wait_until(lambda: len(slack.posts()) == 1)
        engine.wait_for(lambda: len(engine.delivered()) == 1)
        [message] = slack.posts()
        # Signed in as the worker's member, Devstack.
        form = {"alert_id": alert_id(message), "action": "claim"}
        assert worker.client.post_form("/outbox/act", form) == 303
        wait_until(lambda: thread(slack, message) == ["Claimed by Devstack"])
        assert status_of(message).startswith("*Claimed* by Devstack")
        # And the other way round: the Slack click shows on the outbox card.
        assert click(worker, message, "unclaim", user="U0BO") == 200
        assert "Unclaimed by u0bo" in worker.client.get("/outbox")
    finally:
        worker.stop()
