"""The whole loop in a real browser: a resolved case, the emailed link opened in Debian's
Chromium, an answer given with the keyboard, and the answer arriving on the ratings topic."""

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from playwright.sync_api import ViewportSize, sync_playwright

from alert_engine.cases import CaseState
from alert_engine.deadletters import read_headers
from devstack.stack import Endpoints
from devstack.webclient import SignedInClient
from tests.engine import Engine
from tests.factories import make_alert
from tests.followup.test_schedule import read_emails
from tests.followup_factories import case, followup_engine

pytestmark = pytest.mark.integration

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A phone: where most customers open the email.
PHONE: ViewportSize = {"width": 390, "height": 844}


def chromium() -> str:
    path = shutil.which("chromium")
    assert path, "Debian's chromium is missing: run `make setup`"
    return path


@pytest.fixture
def engine(stack: Endpoints, unique: str, tmp_path: Path) -> Engine:
    return followup_engine(stack, unique, tmp_path)


def test_a_customer_answers_the_emailed_survey_in_a_browser(engine: Engine) -> None:
    alert = make_alert(
        "r-browser",
        rating=1,
        customer={"id": "c-77", "name": "Jordan Lee", "email": "jordan@example.com"},
    )
    worker = engine.worker().start()
    try:
        resolved = case(alert, CaseState.RESOLVED_FOLLOWUP, at=datetime.now(UTC))
        # A record the worker cannot read is dead-lettered and does not hold up the next one.
        engine.produce(engine.kafka.cases_topic, [b'{"alert_id": "al-x", "state": "lost"}'])
        engine.produce(engine.kafka.cases_topic, [resolved.to_json()])
        engine.wait_for(lambda: len(read_emails(engine.surveys)) == 1, timeout=30)
        [email] = read_emails(engine.surveys)
        assert email["to"] == "jordan@example.com"
        link = email["link"]
        assert link.startswith(worker.url + "/survey/")

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport=PHONE, java_script_enabled=False)
                response = page.goto(link)
                assert response is not None and response.status == 200
                assert page.get_by_role("heading").inner_text() == "How did we do, Jordan Lee?"
                if os.environ.get("ALERT_ENGINE_SCREENSHOTS"):
                    shot = Path(os.environ["ALERT_ENGINE_SCREENSHOTS"]) / "survey-phone.png"
                    page.screenshot(path=str(shot), full_page=True)
                # Keyboard only: into the star group, arrow to 5 stars, on to the button.
                page.get_by_label("1 star").focus()
                for _ in range(4):
                    page.keyboard.press("ArrowRight")
                assert page.get_by_label("5 stars").is_checked()
                page.get_by_label("Anything else you want to tell us?").fill("Much better now.")
                page.get_by_role("button", name="Send my answer").focus()
                with page.expect_navigation():
                    page.keyboard.press("Enter")
                assert page.get_by_role("heading").inner_text() == "Thank you!"
                assert "5 stars" in page.content()

                # The link again: refused, and nothing recorded.
                response = page.goto(link)
                assert response is not None and response.status == 410
                assert page.get_by_role("heading").inner_text() == "You have already answered"
            finally:
                browser.close()

        [record] = engine.consume(engine.kafka.ratings_topic, count=1)
        answer = orjson.loads(record.value)
        assert answer["survey"] == "follow_up"
        assert answer["alert_id"] == alert.id
        assert answer["rating"] == 5
        assert answer["comment"] == "Much better now."
        assert answer["customer"]["id"] == "c-77"
        assert (answer["agent"]["id"], answer["team"], answer["channel"]) == (
            "a-7",
            "orders",
            "chat",
        )
        cases = [orjson.loads(r.value) for r in engine.consume(engine.kafka.cases_topic, count=2)]
        [rerated] = [c for c in cases if c["state"] == "rerated"]
        assert rerated["rerating"]["rating"] == 5 and rerated["rerating"]["previous_rating"] == 1

        [dead] = engine.consume(engine.kafka.deadletter_topic, count=1)
        assert read_headers(dead.headers)["reason"] == "invalid"

        # No history database on this worker: the dashboard says what its figures need (the
        # figures themselves: tests/dashboard/test_browser.py), to signed-in members only.
        dashboard = worker.client.get("/dashboard?by=agent")
        assert "Recovery outcomes need the history database" in dashboard
        assert "ALERT_ENGINE_DATABASE_URL" in dashboard
        assert "alert-engine history rebuild" in dashboard
        assert "Priya Nair" not in dashboard
        anonymous = SignedInClient(worker.url, None).request("/dashboard")
        assert anonymous.status == 401 and "history database" not in anonymous.text
    finally:
        worker.stop()
