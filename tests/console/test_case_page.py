"""The console's case page on a real worker: the alert with the customer's contact and the SLA,
every action as the signed-in member through the same store as Slack (published on the `cases`
topic), final actions through a confirm step, refusals that say why, undo and reopen, closed
cases reached by id, the queue's SLA filter; and in Chromium at phone width the whole flow by
keyboard and mouse, with a live update that leaves the note being typed alone."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from devstack.stack import Endpoints
from devstack.webclient import Credentials, SignedInClient, write_members_file
from devstack.workerprocess import WorkerProcess
from tests.engine import Engine, encode_all
from tests.factories import rating

pytestmark = pytest.mark.integration

ANA = Credentials("ana", "ana's long password", "Ana Souza")
BO = Credentials("bo", "bo's long password", "Bo Li")

ROUTING = """\
destinations:
  outbox: {type: outbox}
route:
  destinations: [outbox]
  sla: {claim: 30m, resolve: 4h}
  routes:
    - name: billing
      matchers: ["team = billing"]
      sla: {claim: 1s, resolve: 2s}
"""


@dataclass
class Served:
    engine: Engine
    worker: WorkerProcess
    ids: dict[str, str]

    def client(self, who: Credentials = ANA) -> SignedInClient:
        return SignedInClient(self.worker.url, who)


@pytest.fixture(scope="module")
def served(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("console-cases")
    engine = Engine(stack, uuid.uuid4().hex[:10], workdir)
    routing = workdir / "routing.yaml"
    routing.write_text(ROUTING)
    engine.env["ALERT_ENGINE_ROUTING_FILE"] = str(routing)
    engine.env["ALERT_ENGINE_SIGNIN_MEMBERS_FILE"] = str(
        write_members_file(workdir / "members.json", [ANA, BO])
    )
    worker = engine.worker().start()
    try:
        events = [
            rating(
                id="r-c-flow",
                customer={
                    "id": "c-1",
                    "name": "Jordan Lee",
                    "email": "jordan@example.com",
                    "phone": "+44 20 7946 0958",
                },
            ),
            rating(id="r-c-late", team="billing", customer={"id": "c-2", "name": "Jo Late"}),
            rating(id="r-c-browser", team="returns", customer={"id": "c-3", "name": "Sam Web"}),
        ]
        engine.produce(engine.kafka.ratings_topic, encode_all(events))
        engine.wait_for(lambda: len(engine.delivered()) == 3)
        ids = {alert["key"]: alert["id"] for alert in engine.delivered()}
        yield Served(engine, worker, ids)
    finally:
        worker.stop()


def case_path(served: Served, key: str) -> str:
    return f"/console/cases/{served.ids[key]}"


def act(client: SignedInClient, served: Served, key: str, **form: str) -> tuple[int, str]:
    """A case page's form sent as a browser would: its status and where it led (or its text)."""
    page = client.get(case_path(served, key))
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token is not None
    answer = client.request(case_path(served, key) + "/act", {"csrf": token.group(1), **form})
    return answer.status, answer.headers.get("Location") or answer.text


def live(client: SignedInClient, served: Served, key: str) -> dict[str, Any]:
    found: dict[str, Any] = client.get_json(case_path(served, key) + "/live.json")
    return found


def test_a_case_page_needs_a_signed_in_member_and_is_not_cached(served: Served) -> None:
    anonymous = SignedInClient(served.worker.url, None)
    path = case_path(served, "r-c-flow")
    assert anonymous.request(path + "/live.json").status == 401
    answer = anonymous.request(path, headers={"Accept": "text/html"})
    assert answer.status == 303 and answer.headers["Location"].startswith("/signin?next=")
    assert anonymous.request(path + "/act", {"action": "claim"}).status == 401
    signed_in = served.client().request(path)
    assert signed_in.status == 200
    assert signed_in.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in signed_in.headers["Content-Security-Policy"]
    assert served.client().request("/console/cases/al-0123456789abcdef").status == 404
    assert served.client().request("/console/cases/not-an-id").status == 404


def test_the_case_page_shows_the_alert_the_contact_and_the_sla(served: Served) -> None:
    page = served.client().get(case_path(served, "r-c-flow"))
    assert "Jordan Lee rated Priya Nair 1★" in page
    assert "Nobody called me back." in page
    assert "jordan@example.com" in page and "+44 20 7946 0958" in page
    assert re.search(r"Claim by\s+\d{4}-\d\d-\d\d \d\d:\d\d UTC · (29|30) min left", page)
    assert re.search(r"Resolve by\s+\d{4}-\d\d-\d\d \d\d:\d\d UTC · 3 h 5\d min left", page)
    assert "Nobody's case yet." in page
    assert re.search(r"Opened \d{4}-\d\d-\d\d \d\d:\d\d\nUTC · [0-9] min ago", page)
    # Only the actions an open case allows: no Undo, no Reopen, no resolving before a claim.
    buttons = re.findall(r'<button name="action" value="([a-z_]+)"', page)
    assert "claim" in buttons and "not_actionable" in buttons
    assert not {"undo", "reopen", "unclaim"} & set(buttons)
    assert re.search(r'data-needs="resolved_followup"\s+hidden', page)


def test_every_action_from_the_case_page_as_the_signed_in_member(served: Served) -> None:
    ana, bo = served.client(ANA), served.client(BO)
    key = "r-c-flow"
    assert act(ana, served, key, action="claim") == (303, case_path(served, key) + "?done=claim")
    assert live(ana, served, key)["state"] == "claimed"
    page = ana.get(case_path(served, key) + "?done=claim")
    assert "Done: Claim." in page and "Owner: <b" in page and "Ana Souza" in page
    # A second claim, by Bo: nothing changes and the page says why.
    status, text = act(bo, served, key, action="claim")
    assert status == 409 and "Already claimed by Ana Souza: nothing changed." in text
    assert act(ana, served, key, action="note", note="Called, left a voicemail")[0] == 303
    assert "Called, left a voicemail" in bo.get(case_path(served, key))

    # Resolving needs a reason, and "other" a note, before the confirm step.
    status, text = act(ana, served, key, action="resolved_no_followup")
    assert status == 400 and "Choose a reason before resolving" in text
    status, text = act(ana, served, key, action="resolved_no_followup", reason="other")
    assert status == 400 and "needs a note" in text
    # The confirm step: nothing changed yet, and it says what it will do.
    status, text = act(ana, served, key, action="resolved_no_followup", reason="refund")
    assert status == 200 and "Reason: Refund." in text
    assert "You can undo it for 5 minutes afterwards." in text
    assert 'name="confirm" value="yes"' in text
    assert live(ana, served, key)["state"] == "claimed"
    confirmed = act(ana, served, key, action="resolved_no_followup", reason="refund", confirm="yes")
    assert confirmed[0] == 303
    state = live(ana, served, key)
    assert state["state"] == "resolved_no_followup"
    assert {"undo", "reopen", "note"} <= set(state["allowed"])
    assert "claim" not in state["allowed"]
    # Closed: out of the queue, reached by its id.
    assert served.ids[key] not in ana.get("/console")
    go = ana.request(f"/console/go?alert_id={served.ids[key]}")
    assert go.status == 303 and go.headers["Location"] == case_path(served, key)
    assert ana.request("/console/go?alert_id=nonsense").status == 400

    assert act(bo, served, key, action="undo")[0] == 303
    assert live(ana, served, key)["state"] == "claimed"
    assert "Ana Souza" in ana.get(case_path(served, key))  # the owner before the resolution
    # Reassigned to a member of the file; to anyone else, refused.
    status, text = act(ana, served, key, action="reassign", assignee="nobody")
    assert status == 400 and "member of the team" in text
    assert act(ana, served, key, action="reassign", assignee="bo")[0] == 303
    mine = bo.get_json("/console/cases.json?show=mine")
    assert [row["alert_id"] for row in mine["rows"]] == [served.ids[key]]
    assert act(bo, served, key, action="not_actionable", confirm="yes")[0] == 303
    status, text = act(bo, served, key, action="claim")
    assert status == 409 and "This case is closed (Not actionable)" in text
    assert act(bo, served, key, action="reopen")[0] == 303
    assert live(ana, served, key)["state"] == "reopened"
    assert served.ids[key] in ana.get("/console")

    records = [
        orjson.loads(record.value)
        for record in served.engine.consume(served.engine.kafka.cases_topic, 100, timeout=5)
    ]
    mine_records = [r for r in records if r["alert_id"] == served.ids[key]]
    assert [r["action"] for r in mine_records] == [
        "claim",
        "note",
        "resolved_no_followup",
        "undo",
        "reassign",
        "not_actionable",
        "reopen",
    ]
    assert {r["source"] for r in mine_records} == {"console"}
    assert [r["user_id"] for r in mine_records] == [
        "member:ana",
        "member:ana",
        "member:ana",
        "member:bo",
        "member:ana",
        "member:bo",
        "member:bo",
    ]
    assert mine_records[2]["reason"] == "refund"
    assert (
        mine_records[4]["assignee"] == "member:bo" and mine_records[4]["assignee_name"] == "Bo Li"
    )


def test_the_queue_shows_the_sla_and_filters_the_breached(served: Served) -> None:
    ana = served.client()
    deadline = time.monotonic() + 15
    while True:
        breached = ana.get_json("/console/cases.json?sla_breached=true")
        if breached["total"] >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert [row["alert_id"] for row in breached["rows"]] == [served.ids["r-c-late"]]
    [late] = breached["rows"]
    assert late["sla_breached"] and late["sla"].startswith("Claim: overdue by")
    everything = ana.get_json("/console/cases.json")
    on_time = {row["alert_id"]: row for row in everything["rows"]}[served.ids["r-c-browser"]]
    assert not on_time["sla_breached"] and on_time["sla"].endswith("min left")
    page = ana.get("/console?sla_breached=true")
    assert f'href="/console/cases/{served.ids["r-c-late"]}"' in page
    assert 'class="breached"' in page and 'name="sla_breached"\nvalue="true" checked' in page


def contrast(first: str, second: str) -> float:
    """WCAG's contrast ratio of two `rgb(...)` colours."""

    def luminance(colour: str) -> float:
        channels = [int(part) / 255 for part in re.findall(r"\d+", colour)[:3]]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


# Each visible button's border colour and the background it sits on (the nearest ancestor's
# that is not transparent).
BUTTON_COLOURS = """() => [...document.querySelectorAll("button")].filter(b => b.offsetParent)
  .map(b => {
    let node = b.parentElement, back = "rgb(255, 255, 255)";
    while (node) {
      const colour = getComputedStyle(node).backgroundColor;
      if (colour !== "rgba(0, 0, 0, 0)" && colour !== "transparent") { back = colour; break; }
      node = node.parentElement;
    }
    return [b.textContent.trim(), getComputedStyle(b).borderTopColor, back];
  })"""


def test_in_chromium_the_whole_flow_by_a_member_at_phone_width(served: Served) -> None:
    from playwright.sync_api import Page, sync_playwright

    from tests.system.test_followup_browser import CHROMIUM_ARGS, PHONE, chromium

    alert_id = served.ids["r-c-browser"]

    def no_horizontal_scroll(page: Page) -> None:
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (page.url, width)

    def borders_contrast(page: Page) -> None:
        colours = page.evaluate(BUTTON_COLOURS)
        assert colours
        for label, border, back in colours:
            assert contrast(border, back) >= 3.0, (page.url, label, border, back)

    def tab_reaches(page: Page, wanted: set[str]) -> None:
        """Every control named is reached by Tab alone."""
        page.evaluate("document.activeElement && document.activeElement.blur()")
        reached: set[str] = set()
        for _ in range(60):
            page.keyboard.press("Tab")
            reached.add(
                page.evaluate(
                    "(e => (e.textContent || '').trim() || e.name || '')(document.activeElement)"
                )
            )
        assert wanted <= reached, wanted - reached

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=PHONE)
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            page.goto(served.worker.url + "/console")
            page.get_by_label("Name").fill("ana")
            page.get_by_label("Password").fill(ANA.password)
            with page.expect_navigation():
                page.get_by_label("Password").press("Enter")
            # Filter the queue by keyboard: the team, then Enter.
            page.get_by_label("Team").fill("returns")
            with page.expect_navigation():
                page.get_by_label("Team").press("Enter")
            rows = page.locator("#queue tbody tr")
            assert rows.count() == 1 and "Sam Web" in rows.first.inner_text()
            no_horizontal_scroll(page)
            borders_contrast(page)
            # Open the case from its row.
            with page.expect_navigation():
                rows.first.get_by_role("link", name="Sam Web").click()
            assert page.url == f"{served.worker.url}/console/cases/{alert_id}"
            no_horizontal_scroll(page)
            tab_reaches(page, {"Claim", "Not actionable", "Add the note", "Queue"})

            # Claim, by keyboard.
            page.get_by_role("button", name="Claim", exact=True).focus()
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert "Done: Claim." in page.locator(".notice").inner_text()
            assert page.locator(".state").inner_text() == "Claimed"
            assert page.locator('form[data-needs="resolved_followup"]').is_visible()
            borders_contrast(page)

            # A note typed while Bo adds his elsewhere: the history updates, the text stays.
            page.goto(f"{served.worker.url}/console/cases/{alert_id}?poll=2")
            note = page.get_by_label("Note", exact=True)
            note.click()
            page.keyboard.type("Spoke to Sam")
            assert (
                act(served.client(BO), served, "r-c-browser", action="note", note="Bo here")[0]
                == 303
            )
            page.wait_for_function(
                "() => document.querySelector('ol.history').innerText.includes('Bo here')",
                timeout=15_000,
            )
            assert note.input_value() == "Spoke to Sam"
            assert page.evaluate("document.activeElement.id") == "note"
            page.keyboard.type(", refund agreed")
            with page.expect_navigation():
                page.get_by_role("button", name="Add the note").click()
            assert "Spoke to Sam, refund agreed" in page.locator("ol.history").inner_text()

            # Resolve with a reason: the confirm step, then done, with Undo offered.
            page.get_by_label("Reason").select_option("refund")
            with page.expect_navigation():
                page.get_by_role("button", name="Resolve \u2013 no follow-up").click()
            assert "Resolve \u2013 no follow-up?" in page.locator("h1").inner_text()
            assert "Reason: Refund." in page.inner_text("body")
            no_horizontal_scroll(page)
            borders_contrast(page)
            with page.expect_navigation():
                page.keyboard.press("Enter")  # the confirm button has the focus
            assert "You can undo it for 5 minutes." in page.locator(".notice").inner_text()
            assert page.locator(".state").inner_text() == "Resolved, no follow-up"
            assert not page.locator('form[data-needs="resolved_followup"]').is_visible()
            with page.expect_navigation():
                page.get_by_role("button", name="Undo").click()
            assert page.locator(".state").inner_text() == "Claimed"

            # Closed again (not actionable, confirmed), then reopened.
            with page.expect_navigation():
                page.get_by_role("button", name="Not actionable").click()
            with page.expect_navigation():
                page.get_by_role("button", name="Not actionable").click()
            assert page.locator(".state").inner_text() == "Not actionable"
            with page.expect_navigation():
                page.get_by_role("button", name="Reopen").click()
            assert page.locator(".state").inner_text() == "Reopened"
            history = page.locator("ol.history").inner_text()
            for line in ("Claimed by Ana Souza", "reason: Refund", "Ana Souza undid", "Reopened"):
                assert line in history, history
            no_horizontal_scroll(page)
        finally:
            browser.close()
    assert not [text for text in console if "Content Security Policy" in text], console

    records = [
        orjson.loads(record.value)
        for record in served.engine.consume(served.engine.kafka.cases_topic, 100, timeout=5)
    ]
    actions = [(r["action"], r["user_id"]) for r in records if r["alert_id"] == alert_id]
    assert actions == [
        ("claim", "member:ana"),
        ("note", "member:bo"),
        ("note", "member:ana"),
        ("resolved_no_followup", "member:ana"),
        ("undo", "member:ana"),
        ("not_actionable", "member:ana"),
        ("reopen", "member:ana"),
    ]


def test_a_team_that_must_not_see_contacts_does_not_on_the_case_page(
    stack: Endpoints, tmp_path: Path
) -> None:
    engine = Engine(stack, uuid.uuid4().hex[:10], tmp_path)
    engine.env["ALERT_ENGINE_CASES_SHOW_CONTACT"] = "false"
    engine.env["ALERT_ENGINE_SIGNIN_MEMBERS_FILE"] = str(
        write_members_file(tmp_path / "members.json", [ANA])
    )
    worker = engine.worker().start()
    try:
        customer = {"id": "c-9", "name": "Kim Hidden", "email": "kim@example.com"}
        engine.produce(
            engine.kafka.ratings_topic,
            encode_all([rating(id="r-hidden", customer={**customer, "phone": "+14155550134"})]),
        )
        engine.wait_for(lambda: len(engine.delivered()) == 1)
        [alert] = engine.delivered()
        page = SignedInClient(worker.url, ANA).get(f"/console/cases/{alert['id']}")
        assert "Kim Hidden" in page
        assert "kim@example.com" not in page and "4155550134" not in page
    finally:
        worker.stop()
