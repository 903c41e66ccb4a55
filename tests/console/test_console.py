"""The console's queue on a real worker: behind sign-in, filtered as asked (mine, unclaimed,
team, severity, age), the page and its JSON view agreeing, and in Chromium at phone width an
update arriving by polling while the member types into the filter form, which keeps the text
and the focus."""

from __future__ import annotations

import re
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.stack import Endpoints
from devstack.webclient import Credentials, SignedInClient, write_members_file
from devstack.workerprocess import WorkerProcess
from tests.engine import Engine, encode_all
from tests.factories import rating

pytestmark = pytest.mark.integration

ANA = Credentials("ana", "ana's long password", "Ana Souza")
BO = Credentials("bo", "bo's long password", "Bo Li")


@dataclass
class Served:
    engine: Engine
    worker: WorkerProcess
    ids: dict[str, str]

    def client(self, who: Credentials = ANA) -> SignedInClient:
        return SignedInClient(self.worker.url, who)


@pytest.fixture(scope="module")
def served(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("console")
    engine = Engine(stack, uuid.uuid4().hex[:10], workdir)
    engine.env["ALERT_ENGINE_SIGNIN_MEMBERS_FILE"] = str(
        write_members_file(workdir / "members.json", [ANA, BO])
    )
    worker = engine.worker().start()
    try:
        events = [
            rating(id="r-q-orders-1", team="orders", customer={"id": "c-1", "name": "Jo One"}),
            rating(id="r-q-orders-2", team="orders", customer={"id": "c-2", "name": "Jo Two"}),
            rating(id="r-q-billing", team="billing", customer={"id": "c-3", "name": "Jo Bill"}),
            rating(id="r-q-browser", team="returns", customer={"id": "c-4", "name": "Jo Late"}),
        ]
        engine.produce(engine.kafka.ratings_topic, encode_all(events))
        engine.wait_for(lambda: len(engine.delivered()) == 4)
        ids = {alert["key"]: alert["id"] for alert in engine.delivered()}
        ana = SignedInClient(worker.url, ANA)
        assert (
            ana.post_form("/outbox/act", {"alert_id": ids["r-q-orders-1"], "action": "claim"})
            == 303
        )
        yield Served(engine, worker, ids)
    finally:
        worker.stop()


def cases(client: SignedInClient, query: str = "") -> dict[str, Any]:
    answer = client.request("/console/cases.json" + query)
    assert answer.status == 200, answer.text
    listing: dict[str, Any] = orjson.loads(answer.text)
    return listing


def keys(served: Served, listing: dict[str, Any]) -> set[str]:
    by_id = {alert_id: key for key, alert_id in served.ids.items()}
    return {by_id[row["alert_id"]] for row in listing["rows"]}


def test_the_console_needs_a_signed_in_member(served: Served) -> None:
    anonymous = SignedInClient(served.worker.url, None)
    assert anonymous.request("/console/cases.json").status == 401
    answer = anonymous.request("/console", headers={"Accept": "text/html"})
    assert answer.status == 303 and answer.headers["Location"].startswith("/signin?next=")


def test_the_queue_filters_as_asked_and_the_page_agrees_with_its_json(served: Served) -> None:
    ana, bo = served.client(ANA), served.client(BO)
    everything = cases(ana)
    assert keys(served, everything) == set(served.ids)
    assert everything["total"] == 4 and everything["pages"] == 1
    # Oldest first by default; each row says who claimed it.
    [claimed] = [row for row in everything["rows"] if row["claimed_by"]]
    assert claimed["claimed_by"] == "ana" and claimed["state"] == "claimed"
    assert keys(served, cases(ana, "?show=mine")) == {"r-q-orders-1"}
    assert keys(served, cases(bo, "?show=mine")) == set()
    assert keys(served, cases(ana, "?show=unclaimed")) == set(served.ids) - {"r-q-orders-1"}
    assert keys(served, cases(ana, "?team=Orders")) == {"r-q-orders-1", "r-q-orders-2"}
    assert keys(served, cases(ana, "?team=orders&show=unclaimed")) == {"r-q-orders-2"}
    assert keys(served, cases(ana, "?severity=high")) == set(served.ids)
    assert keys(served, cases(ana, "?severity=low")) == set()
    assert keys(served, cases(ana, "?min_age_minutes=60")) == set()
    # A filter that is not one: 400 with the field, on both.
    answer = ana.request("/console/cases.json?severity=urgent")
    assert answer.status == 400 and "severity" in orjson.loads(answer.text)["error"]
    assert ana.request("/console?show=all").status == 400

    page = ana.get("/console?team=orders")
    for key in ("r-q-orders-1", "r-q-orders-2"):
        assert f'data-alert-id="{served.ids[key]}"' in page
    assert served.ids["r-q-billing"] not in page
    assert 'data-json="/console/cases.json?team=orders"' in page
    assert "2 cases · page 1 of 1" in page and "Jo One" in page
    # The page's script is the one its policy allows, by hash.
    policy = ana.request("/console").headers["Content-Security-Policy"]
    assert "script-src 'sha256-" in policy and "connect-src 'self'" in policy


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "show": st.sampled_from(["open", "unclaimed", "mine"]),
            "team": st.sampled_from(["orders", "BILLING", "returns", "nobody"]),
            "severity": st.sampled_from(["high", "low"]),
            "min_age_minutes": st.sampled_from(["0", "60"]),
            "sort": st.sampled_from(["oldest", "newest", "severity"]),
        },
    )
)
def test_the_page_and_its_json_view_show_the_same_cases_in_the_same_order(
    served: Served, query: dict[str, str]
) -> None:
    client = served.client(ANA)
    suffix = "?" + urllib.parse.urlencode(query) if query else ""
    listing = cases(client, suffix)
    page = client.get("/console" + suffix)
    assert re.findall(r'<tr data-alert-id="([^"]+)"', page) == [
        row["alert_id"] for row in listing["rows"]
    ]
    assert f"{listing['total']} case" in page


def test_in_chromium_at_phone_width_the_queue_updates_while_the_member_types(
    served: Served,
) -> None:
    from playwright.sync_api import sync_playwright

    from tests.system.test_followup_browser import CHROMIUM_ARGS, PHONE, chromium

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=PHONE)
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            page.goto(served.worker.url + "/console?poll=2")
            page.get_by_label("Name").fill("ana")
            page.get_by_label("Password").fill(ANA.password)
            with page.expect_navigation():
                page.get_by_label("Password").press("Enter")
            assert page.url == served.worker.url + "/console?poll=2"
            row = page.locator(f'tr[data-alert-id="{served.ids["r-q-browser"]}"]')
            assert "Jo Late" in row.inner_text()
            # Readable at 390 px: nothing wider than the screen.
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], width

            team = page.get_by_label("Team")
            team.click()
            page.keyboard.type("ret")
            # Meanwhile Bo claims the case elsewhere; the next poll shows it.
            bo = served.client(BO)
            claim = {"alert_id": served.ids["r-q-browser"], "action": "claim"}
            assert bo.post_form("/outbox/act", claim) == 303
            page.wait_for_function(
                'id => document.querySelector(`tr[data-alert-id="${id}"]`)'
                ".innerText.includes('Claimed')",
                arg=served.ids["r-q-browser"],
                timeout=15_000,
            )
            # What the member typed is still there, and still being typed.
            assert team.input_value() == "ret"
            assert page.evaluate("document.activeElement.name") == "team"
            page.keyboard.type("urns")
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert "team=returns" in page.url
            rows = page.locator("#queue tbody tr")
            assert rows.count() == 1 and "Claimed" in rows.first.inner_text()
        finally:
            browser.close()
    assert not [text for text in console if "Content Security Policy" in text], console
