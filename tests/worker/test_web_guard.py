"""What every page of a real worker answers with: only the engine's own pages (none of Faust's
default views, which show table entries with customers' details), security headers on each, and
the Host of browser pages checked against the configured names (DNS rebinding). Requests here
are signed in as the worker's member unless they say otherwise (sign-in itself:
tests/signin/test_worker.py)."""

from __future__ import annotations

import http.client
import re
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from devstack.stack import Endpoints
from devstack.webclient import csrf_token
from devstack.workerprocess import WorkerProcess
from tests.engine import Engine, encode_all, only_rules
from tests.factories import rating

pytestmark = pytest.mark.integration

LEAKED_EMAIL = "leak-me@example.com"


@dataclass
class Served:
    engine: Engine
    worker: WorkerProcess


@pytest.fixture(scope="module")
def served(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("web-guard")
    rules = only_rules(workdir / "rules", "negative-rating", "low-rating-after-hard-call")
    engine = Engine(stack, uuid.uuid4().hex[:10], workdir, rules_dir=rules)
    engine.env["ALERT_ENGINE_WEB_ALLOWED_HOSTS"] = "alerts.internal.example"
    worker = engine.worker().start()
    try:
        # A rating the join rule keeps in the window-state table until its interaction arrives.
        engine.produce(
            engine.kafka.ratings_topic,
            encode_all(
                [
                    rating(
                        id="r-leak",
                        interaction_id="i-leak-1",
                        customer={"id": "c-leak", "name": "Leak Me", "email": LEAKED_EMAIL},
                    )
                ]
            ),
        )
        engine.wait_for(lambda: len(engine.delivered()) == 1)
        yield Served(engine, worker)
    finally:
        worker.stop()


def fetch(
    served: Served,
    path: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    signed_in: bool = True,
) -> tuple[int, dict[str, str], str]:
    """(status, headers with lower-case names, body); `Host` may be set to anything."""
    headers = dict(headers or {})
    if signed_in:
        headers["Cookie"] = session_cookie(served)
    connection = http.client.HTTPConnection("127.0.0.1", served.worker.web_port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host="Host" in headers)
        for name, value in headers.items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
        return response.status, {k.lower(): v for k, v in response.getheaders()}, text
    finally:
        connection.close()


def session_cookie(served: Served) -> str:
    """The `Cookie` header of the worker's signed-in member."""
    client = served.worker.client
    client.get("/outbox")
    return "; ".join(f"{cookie.name}={cookie.value}" for cookie in client.cookies)


def outbox_token(served: Served) -> str:
    return csrf_token(fetch(served, "/outbox")[2])


# ---------------------------------------------------------------- Faust's own views


def test_faust_views_are_not_served_and_show_no_table_entry(served: Served) -> None:
    key = urllib.parse.quote("join:interaction\x00i-leak-1", safe="")
    for path in ("/table/", "/table/window-state/", f"/table/window-state/{key}/", "/router/"):
        status, _, body = fetch(served, path)
        assert status == 404, (path, body)
        assert LEAKED_EMAIL not in body
    for path in ("/", "/assignment/", "/graph/", "/performance/", "/table/window-state/x/"):
        assert fetch(served, path)[0] == 404, path


def test_the_engine_pages_still_answer(served: Served) -> None:
    for path in ("/health", "/ready", "/stats", "/metrics", "/outbox", "/dashboard"):
        assert fetch(served, path)[0] == 200, path
    assert "Leak Me rated Priya Nair 1★" in fetch(served, "/outbox")[2]


# ---------------------------------------------------------------- security headers

PAGES = ("/outbox", "/dashboard", "/survey/not-a-token", "/health", "/stats", "/no-such-page")


@pytest.mark.parametrize("path", PAGES)
def test_every_page_sends_the_security_headers(served: Served, path: str) -> None:
    _, headers, _ = fetch(served, path)
    policy = {
        directive.split()[0]: directive.split()[1:]
        for directive in headers["content-security-policy"].split(";")
        if directive.strip()
    }
    assert policy["default-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]
    assert "'unsafe-inline'" not in policy.get("script-src", [])
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"
    assert headers["referrer-policy"] == "same-origin"


def test_the_outbox_page_runs_no_script_and_the_policy_allows_only_the_consoles(
    served: Served,
) -> None:
    """Who acts is the signed-in member: the outbox page needs no script (it had one to copy an
    "acting as" name into its forms); the policy allows the console's, by their hashes."""
    import base64
    import hashlib

    from alert_engine.console.views import CONSOLE_SCRIPT, CONSOLE_SCRIPTS

    _, headers, page = fetch(served, "/outbox")
    assert "<script" not in page
    assert " on" + "submit=" not in page and "onclick=" not in page
    digests = [
        base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        for script in CONSOLE_SCRIPTS
    ]
    [sources] = [
        directive.split()[1:]
        for directive in headers["content-security-policy"].split(";")
        if directive.split()[0] == "script-src"
    ]
    # The console's scripts (the queue's and the case page's), nothing else.
    assert sources == [f"'sha256-{digest}'" for digest in digests]
    console = fetch(served, "/console")[2]
    assert re.findall(r"<script>(.*?)</script>", console, flags=re.S) == [CONSOLE_SCRIPT]


# ---------------------------------------------------------------- Host (DNS rebinding)


def test_a_rebound_host_cannot_read_or_act_on_the_outbox(served: Served) -> None:
    port = served.worker.web_port
    evil = f"evil.example:{port}"
    [alert] = served.engine.delivered()
    form = urllib.parse.urlencode(
        {"csrf": outbox_token(served), "alert_id": alert["id"], "action": "claim"}
    ).encode()
    form_headers = {"Content-Type": "application/x-www-form-urlencoded"}

    status, _, body = fetch(
        served,
        "/outbox/act",
        method="POST",
        body=form,
        headers={**form_headers, "Host": evil, "Origin": f"http://{evil}"},
    )
    assert status == 421, body
    for path in ("/outbox", "/dashboard", "/stats"):
        status, _, body = fetch(served, path, headers={"Host": evil})
        assert status == 421, path
        assert LEAKED_EMAIL not in body and "csrf" not in body
    assert "(claimed by" not in fetch(served, "/outbox")[2]

    # Probes and scrapers address a pod by its IP; Slack's and the survey's requests carry their
    # own proof (a signature, a signed token).
    for path in ("/health", "/ready", "/metrics"):
        assert fetch(served, path, headers={"Host": f"10.1.2.3:{port}"})[0] == 200, path
    assert fetch(served, "/survey/x", headers={"Host": "feedback.example.com"})[0] == 404
    status, _, _ = fetch(
        served, "/slack/interactions", method="POST", body=b"", headers={"Host": evil}
    )
    assert status == 401

    # The configured name, localhost and the worker's own address are served, any port.
    for host in ("alerts.internal.example", "ALERTS.internal.example:8443", f"localhost:{port}"):
        assert fetch(served, "/outbox", headers={"Host": host})[0] == 200, host
    status, _, _ = fetch(
        served,
        "/outbox/act",
        method="POST",
        body=form,
        headers={**form_headers, "Host": f"127.0.0.1:{port}", "Origin": f"http://127.0.0.1:{port}"},
    )
    assert status == 303
    assert "(claimed by Devstack)" in fetch(served, "/outbox")[2]


def test_the_outbox_buttons_work_in_a_browser_under_the_policy(served: Served) -> None:
    """In Chromium, with the policy in force: signed in, the click claims the case as the
    member, and the browser reports no violation."""
    from playwright.sync_api import sync_playwright

    from tests.system.test_followup_browser import CHROMIUM_ARGS, chromium

    engine = served.engine
    engine.produce(engine.kafka.ratings_topic, encode_all([rating(id="r-browser-outbox")]))
    engine.wait_for(lambda: any(a["key"] == "r-browser-outbox" for a in engine.delivered()))
    alert_id = next(a["id"] for a in engine.delivered() if a["key"] == "r-browser-outbox")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            page.goto(served.worker.url + "/outbox")
            credentials = served.worker.credentials
            assert credentials is not None
            page.get_by_label("Name").fill(credentials.name)
            page.get_by_label("Password").fill(credentials.password)
            with page.expect_navigation():
                page.get_by_role("button", name="Sign in").click()
            card = page.locator("form", has=page.locator(f'input[value="{alert_id}"]'))
            with page.expect_navigation():
                card.get_by_role("button", name="Claim").click()
            assert "(claimed by Devstack)" in page.content()
        finally:
            browser.close()
    assert not [text for text in console if "Content Security Policy" in text], console
