"""The closed loop across both halves on real workers: a click (in Slack or on the outbox page)
resolves a case with follow-up, the survey goes out, the customer's answer comes back to the
alert's Slack thread, the outbox page and the outcome report."""

import re
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis as redis_client
from click.testing import CliRunner
from playwright.sync_api import sync_playwright

from alert_engine.cli.main import main
from devstack.stack import Endpoints
from standins.sendgrid_prism import PrismMock, RecordingProxy
from standins.slack import TOKEN, SlackStandIn
from tests.engine import Engine, encode_all
from tests.factories import rating
from tests.followup.test_schedule import read_emails
from tests.followup_factories import followup_engine
from tests.system.test_followup_browser import CHROMIUM_ARGS, PHONE, chromium
from tests.system.test_slack_worker import (
    ROUTING,
    SIGNING_SECRET,
    click,
    controls_of,
    status_of,
    wait_until,
)
from tests.worker.test_outbox_page import post

pytestmark = pytest.mark.integration


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    standin = SlackStandIn().start()
    yield standin
    standin.stop()


def with_slack(engine: Engine, slack: SlackStandIn, tmp_path: Path) -> Engine:
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING)
    engine.env.update(
        {
            "ALERT_ENGINE_ROUTING_FILE": str(routing),
            "ALERT_ENGINE_SLACK_BOT_TOKEN": TOKEN,
            "ALERT_ENGINE_SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "ALERT_ENGINE_SLACK_API_URL": slack.base_url,
        }
    )
    return engine


def test_resolved_send_follow_up_in_slack_schedules_the_survey(
    stack: Endpoints, unique: str, tmp_path: Path, slack: SlackStandIn
) -> None:
    engine = with_slack(followup_engine(stack, unique, tmp_path), slack, tmp_path)
    worker = engine.worker().start()
    try:
        engine.produce(engine.kafka.ratings_topic, encode_all([rating(id="r-slack-fu")]))
        wait_until(lambda: len(slack.posts()) == 1)
        [message] = slack.posts()
        assert click(worker, message, "claim") == 200
        assert click(worker, message, "resolved_followup", reason="apology") == 200
        engine.wait_for(lambda: len(read_emails(engine.surveys)) == 1)
        [email] = read_emails(engine.surveys)
        assert email["alert_id"] == message.alert_id
        assert email["to"] == "jordan@example.com"
    finally:
        worker.stop()


def test_resolved_send_follow_up_on_the_outbox_page_schedules_the_survey_and_shows_the_answer(
    stack: Endpoints, unique: str, tmp_path: Path
) -> None:
    engine = followup_engine(stack, unique, tmp_path)
    worker = engine.worker().start()
    try:
        engine.produce(engine.kafka.ratings_topic, encode_all([rating(id="r-outbox-fu")]))
        engine.wait_for(lambda: len(engine.delivered()) == 1)
        [alert] = engine.delivered()
        # Signed in as the worker's member (`WorkerProcess.client`), as the team is.
        form = {"alert_id": alert["id"]}
        assert worker.client.post_form("/outbox/act", {**form, "action": "claim"}) == 303
        resolve = {**form, "action": "resolved_followup", "reason": "refund", "confirm": "yes"}
        assert worker.client.post_form("/outbox/act", resolve) == 303
        engine.wait_for(lambda: len(read_emails(engine.surveys)) == 1)
        [email] = read_emails(engine.surveys)
        assert email["alert_id"] == alert["id"]
        assert email["link"].startswith(worker.url + "/survey/")

        # The customer's answer shows on the alert's card.
        assert post(email["link"], {"rating": "4"}) == 200
        engine.wait_for(lambda: "Customer re-rated 4★ (was 1★)" in worker.client.get("/outbox"))
    finally:
        worker.stop()


@pytest.fixture
def sendgrid(tmp_path: Path) -> Iterator[RecordingProxy]:
    mock = PrismMock(tmp_path).start()
    proxy = RecordingProxy(mock.url).start()
    yield proxy
    proxy.stop()
    mock.stop()


def test_a_one_star_rating_is_recovered_to_five_stars_end_to_end(
    stack: Endpoints,
    unique: str,
    tmp_path: Path,
    slack: SlackStandIn,
    sendgrid: RecordingProxy,
    database_url: str,
) -> None:
    engine = with_slack(followup_engine(stack, unique, tmp_path), slack, tmp_path)
    engine.env.update(
        {
            # The outcome history the report reads, projected by the worker.
            "ALERT_ENGINE_DATABASE_URL": database_url,
            "ALERT_ENGINE_SENDGRID_API_KEY": "SG.test-key",
            "ALERT_ENGINE_SENDGRID_HOST": sendgrid.url,
        }
    )
    worker = engine.worker().start()
    try:
        # 1. A 1-star rating: the alert is posted to the recovery channel.
        engine.produce(engine.kafka.ratings_topic, encode_all([rating(id="r-loop", rating=1)]))
        wait_until(lambda: len(slack.posts()) == 1)
        [message] = slack.posts()

        # 2. Claimed, then resolved with follow-up, by signed clicks.
        assert click(worker, message, "claim", user="U0ANA") == 200
        assert click(worker, message, "resolved_followup", user="U0ANA", reason="refund") == 200

        # 3. The survey email, as SendGrid's contract accepted it.
        wait_until(lambda: len(sendgrid.sent()) == 1)
        [mail] = sendgrid.sent()
        assert (mail.path, mail.status) == ("/v3/mail/send", 202)
        assert mail.body["personalizations"][0]["to"] == [{"email": "jordan@example.com"}]
        contents = {part["type"]: part["value"] for part in mail.body["content"]}
        [link] = re.findall(re.escape(worker.url) + r"/survey/[\w.\-~]+", contents["text/plain"])
        assert f'href="{link}"' in contents["text/html"]
        assert read_emails(engine.surveys) == []  # not to the local outbox

        # 4. The customer opens it in a browser and answers 5 stars.
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport=PHONE, java_script_enabled=False)
                response = page.goto(link)
                assert response is not None and response.status == 200
                page.get_by_label("5 stars").check()
                with page.expect_navigation():
                    page.get_by_role("button", name="Send my answer").click()
                assert page.get_by_role("heading").inner_text() == "Thank you!"
            finally:
                browser.close()

        # 5. The answer in the alert's Slack thread, after the click replies.
        wait_until(lambda: "Customer re-rated 5★ (was 1★)" in replies(slack, message.ts))
        assert replies(slack, message.ts) == [
            "Claimed by <@U0ANA>",
            "Resolved, follow-up survey to be sent by <@U0ANA> · reason: Refund",
            "Customer re-rated 5★ (was 1★)",
        ]
        # A happy answer leaves the case closed; the card shows the answer.
        assert "Customer re-rated 5★ (was 1★)" in status_of(message)
        assert status_of(message).startswith("*Resolved, follow-up survey to be sent*")

        # 6. The outcome report, from the history the worker projects, shows the case and its
        # uplift.
        def report() -> str:
            result = CliRunner().invoke(main, ["report", "--by", "team"], env=engine.env)
            assert result.exit_code == 0, result.output
            return result.output

        engine.wait_for(lambda: "1.0→5.0" in report(), timeout=20)
        # A line in each part of the table: cases, then outcome.
        cases, outcome = [
            line.split() for line in report().splitlines() if line.startswith("orders")
        ]
        assert cases[1:3] == ["1", "1"]  # one alert, claimed
        assert outcome[1:3] == ["1.0→5.0", "5.00x"]
        time.sleep(0.5)
        assert len(slack.replies(message.ts)) == 3  # replied once
        # The outcome is the history's: the whole loop left no outcome key in Redis.
        with redis_client.from_url(stack.redis_url) as redis:
            keys = [key.decode() for key in redis.scan_iter(f"test-{unique}:*")]
        assert keys and not [key for key in keys if ":outcome" in key], keys
    finally:
        worker.stop()


def test_a_follow_up_answer_still_unhappy_reopens_the_case_with_the_comment_in_the_thread(
    stack: Endpoints, unique: str, tmp_path: Path, slack: SlackStandIn
) -> None:
    engine = with_slack(followup_engine(stack, unique, tmp_path), slack, tmp_path)
    worker = engine.worker().start()
    try:
        engine.produce(engine.kafka.ratings_topic, encode_all([rating(id="r-unhappy")]))
        wait_until(lambda: len(slack.posts()) == 1)
        [message] = slack.posts()
        assert click(worker, message, "claim") == 200
        assert click(worker, message, "resolved_followup", reason="call_back") == 200
        engine.wait_for(lambda: len(read_emails(engine.surveys)) == 1)
        [email] = read_emails(engine.surveys)

        # 2 stars is at most ALERT_ENGINE_CASES_UNHAPPY_AT_MOST (2): still unhappy.
        answer = {"rating": "2", "comment": "Still *no* refund. <!channel>"}
        assert post(email["link"], answer) == 200
        wait_until(lambda: len(replies(slack, message.ts)) == 4, timeout=30)
        assert replies(slack, message.ts)[2:] == [
            # The customer's comment, not only the rating, escaped as all customer text.
            "Customer re-rated 2★ (was 1★): “Still \u200b*no* refund. &lt;!channel&gt;”",
            "Reopened: the customer is still unhappy",
        ]
        wait_until(lambda: status_of(message).startswith("*Reopened*"))
        assert "Customer re-rated 2★ (was 1★)" in status_of(message)
        assert controls_of(message)[0] == "claim"

        records = [orjson.loads(r.value) for r in engine.consume(engine.kafka.cases_topic, 4)]
        assert [(r["state"], r.get("source")) for r in records] == [
            ("claimed", "slack"),
            ("resolved_followup", "slack"),
            ("rerated", None),
            ("reopened", "followup"),
        ]
        # On the outbox's card too, and the case can be worked again.
        assert click(worker, message, "claim", user="U0BO") == 200
        assert status_of(message).startswith("*Claimed* by <@U0BO>")
    finally:
        worker.stop()


def replies(slack: SlackStandIn, ts: str) -> list[str]:
    return [reply.text for reply in slack.replies(ts)]
