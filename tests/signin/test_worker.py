"""Sign-in on a real worker: every internal page refuses an anonymous request (a browser is sent
to the sign-in page, a script gets 401) while Slack's clicks, survey links and the probes still
work; a trusted proxy's headers sign a request in and the same headers from any other peer do
not; the login, its session cookie, sign-out, CSRF and the rate limit; `/metrics` by token; the
demo's one-time link; and the outbox page signed in and used in Chromium."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import re
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import redis as sync_redis

from alert_engine.followup.schedule import ScheduledSurvey, new_survey_id
from alert_engine.followup.tokens import sign
from alert_engine.storage import redis_keys
from devstack.stack import Endpoints
from devstack.webclient import Credentials, SignedInClient, csrf_token, write_members_file
from devstack.workerprocess import WorkerProcess
from tests.engine import Engine, encode_all
from tests.factories import rating

pytestmark = pytest.mark.integration

SIGNING_SECRET = "signin-test-signing-secret"
TOKEN_SECRET = "signin-test-token-secret"
METRICS_TOKEN = "signin-test-metrics-token-0123456789"
ANA = Credentials("ana", "ana's long password", "Ana Souza")
BO = Credentials("bo", "bo's long password", "Bo Li")
# Linux routes all of 127/8 to the loopback: a request sent from 127.0.0.2 comes from a peer
# that is not the trusted proxy (127.0.0.1).
UNTRUSTED_SOURCE = "127.0.0.2"
INTERNAL_PAGES = ("/outbox", "/dashboard", "/stats", "/dashboard?by=agent", "/console", "/")
HTML = {"Accept": "text/html,application/xhtml+xml"}
PROXY = {"X-Forwarded-User": "carol", "X-Forwarded-Email": "carol@example.com"}


@dataclass
class Served:
    engine: Engine
    worker: WorkerProcess
    redis: sync_redis.Redis
    prefix: str
    alert_ids: list[str]

    def client(self, credentials: Credentials | None = ANA) -> SignedInClient:
        return SignedInClient(self.worker.url, credentials)


@pytest.fixture(scope="module")
def served(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    unique = uuid.uuid4().hex[:10]
    workdir = tmp_path_factory.mktemp("signin")
    engine = Engine(stack, unique, workdir)
    engine.env.update(
        {
            "ALERT_ENGINE_SIGNIN_MEMBERS_FILE": str(
                write_members_file(workdir / "members.json", [ANA, BO])
            ),
            "ALERT_ENGINE_SIGNIN_TRUSTED_PROXIES": "127.0.0.1",
            "ALERT_ENGINE_SIGNIN_SESSION_HOURS": "8",
            "ALERT_ENGINE_METRICS_TOKEN": METRICS_TOKEN,
            "ALERT_ENGINE_SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "ALERT_ENGINE_FOLLOWUP_TOKEN_SECRET": TOKEN_SECRET,
            "ALERT_ENGINE_FOLLOWUP_OUTBOX_PATH": str(workdir / "surveys.jsonl"),
        }
    )
    worker = engine.worker().start()
    client = sync_redis.Redis.from_url(stack.redis_url)
    try:
        engine.produce(
            engine.kafka.ratings_topic,
            encode_all([rating(id=f"r-signin-{n}", rating=1) for n in range(6)]),
        )
        engine.wait_for(lambda: len(engine.delivered()) == 6)
        ids = [alert["id"] for alert in engine.delivered()]
        yield Served(engine, worker, client, f"test-{unique}", ids)
    finally:
        client.close()
        worker.stop()


def fetch(
    served: Served,
    path: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    source: str | None = None,
) -> tuple[int, dict[str, str], str]:
    """(status, headers with lower-case names, body), sent from `source` if given."""
    connection = http.client.HTTPConnection(
        "127.0.0.1",
        served.worker.web_port,
        timeout=10,
        source_address=(source, 0) if source else None,
    )
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
        found: dict[str, str] = {}
        for name, value in response.getheaders():
            found[name.lower()] = (
                found[name.lower()] + "\n" if name.lower() in found else ""
            ) + value
        return response.status, found, text
    finally:
        connection.close()


def form(fields: dict[str, str]) -> bytes:
    return urllib.parse.urlencode(fields).encode()


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def case_field(served: Served, alert_id: str, field: str) -> str | None:
    value = served.redis.hget(redis_keys.case(served.prefix, alert_id), field)
    return value.decode() if isinstance(value, bytes) else None


def slack_click(served: Served, alert_id: str, action: str) -> int:
    body = form(
        {
            "payload": orjson.dumps(
                {
                    "type": "block_actions",
                    "user": {"id": "U0SIGNIN", "name": "slacker"},
                    "channel": {"id": "C0SIGNIN"},
                    "message": {"ts": "1700000000.000200", "blocks": []},
                    "actions": [{"action_id": action, "value": alert_id}],
                }
            ).decode()
        }
    )
    timestamp = str(int(time.time()))
    base = b"v0:" + timestamp.encode() + b":" + body
    signature = "v0=" + hmac.new(SIGNING_SECRET.encode(), base, hashlib.sha256).hexdigest()
    headers = {**FORM, "X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature}
    return fetch(served, "/slack/interactions", method="POST", body=body, headers=headers)[0]


def survey_token(served: Served) -> str:
    survey_id = new_survey_id()
    now = datetime.now(UTC)
    survey = ScheduledSurvey(
        alert_id=served.alert_ids[0],
        survey_id=survey_id,
        due_at=now,
        resolved_at=now,
        rule="negative-rating",
        event=rating(id=f"r-{survey_id}", rating=1, customer={"id": "c-1", "name": "Jo Public"}),
    )
    served.redis.set(redis_keys.survey(served.prefix, survey_id), survey.model_dump_json(), ex=600)
    return sign(TOKEN_SECRET.encode(), survey_id, now + timedelta(hours=1))


# ---------------------------------------------------------------- anonymous requests


@pytest.mark.parametrize("path", INTERNAL_PAGES)
def test_an_anonymous_browser_is_sent_to_sign_in_and_a_script_gets_401(
    served: Served, path: str
) -> None:
    status, headers, body = fetch(served, path, headers=HTML)
    assert status == 303, (path, body)
    assert headers["location"] == "/signin?" + urllib.parse.urlencode({"next": path})
    status, headers, body = fetch(served, path)
    assert status == 401 and orjson.loads(body)["error"] == "sign-in required"
    assert "Priya Nair" not in body
    # Security headers on the refusals too.
    assert (
        headers["cache-control"] == "no-store"
        and "frame-ancestors 'none'" in (headers["content-security-policy"])
    )


def test_an_anonymous_or_forged_post_changes_nothing(served: Served) -> None:
    alert_id = served.alert_ids[0]
    fields = form({"alert_id": alert_id, "action": "claim", "csrf": "x"})
    for cookie in (None, "alert_engine_session=forged.value.here"):
        headers = {**FORM, **({"Cookie": cookie} if cookie else {})}
        assert fetch(served, "/outbox/act", method="POST", body=fields, headers=headers)[0] == 401
        assert (
            fetch(served, "/outbox/act", method="POST", body=fields, headers={**headers, **HTML})[0]
            == 303
        )
    assert case_field(served, alert_id, "claimed_by") is None


def test_slack_clicks_survey_links_and_probes_need_no_sign_in(served: Served) -> None:
    alert_id = served.alert_ids[1]
    assert slack_click(served, alert_id, "claim") == 200
    assert case_field(served, alert_id, "state") == "claimed"
    assert case_field(served, alert_id, "claimed_by") == "U0SIGNIN"
    status, headers, page = fetch(served, "/survey/" + survey_token(served), headers=HTML)
    assert status == 200 and "How did we do, Jo Public?" in page
    assert headers["cache-control"] == "no-store"
    for path in ("/health", "/ready"):
        assert fetch(served, path)[0] == 200, path


def test_metrics_need_the_bearer_token(served: Served) -> None:
    status, headers, _ = fetch(served, "/metrics")
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    assert fetch(served, "/metrics", headers={"Authorization": "Bearer wrong"})[0] == 401
    # A signed-in member's cookie is no scrape token either.
    client = served.client()
    assert client.request("/metrics").status == 401
    status, _, body = fetch(
        served, "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    assert status == 200 and "alert_engine_events_in_total" in body


# ---------------------------------------------------------------- the proxy


def test_a_trusted_proxys_headers_sign_in_and_the_same_from_another_peer_do_not(
    served: Served,
) -> None:
    status, _, page = fetch(served, "/outbox", headers={**HTML, **PROXY})
    assert status == 200 and 'Signed in as <b class="member">carol</b>' in page
    assert 'action="/signout"' not in page  # signing out is the proxy's
    status, _, body = fetch(served, "/stats", headers=PROXY)
    assert status == 200 and "events_in" in body
    for headers in (PROXY, {"X-Auth-Request-User": "ana"}, {"X-Forwarded-Email": "a@b.c"}):
        status, _, body = fetch(
            served, "/outbox", headers={**HTML, **headers}, source=UNTRUSTED_SOURCE
        )
        assert status == 303, (headers, body)
        assert fetch(served, "/stats", headers=headers, source=UNTRUSTED_SOURCE)[0] == 401


def test_a_proxy_member_acts_under_their_name_with_the_sessions_csrf_token(served: Served) -> None:
    alert_id = served.alert_ids[2]
    _, headers, page = fetch(served, "/outbox", headers={**HTML, **PROXY})
    cookie = headers["set-cookie"].split(";", 1)[0]
    token = csrf_token(page)
    fields = {"alert_id": alert_id, "action": "claim"}
    post_headers = {**FORM, **PROXY, "Cookie": cookie}
    # Without the token, or with one of another session: refused, nothing changes.
    for csrf in ("", csrf_token(served.client().get("/outbox"))):
        body = form({**fields, "csrf": csrf})
        assert (
            fetch(served, "/outbox/act", method="POST", body=body, headers=post_headers)[0] == 403
        )
    assert case_field(served, alert_id, "state") is None
    body = form({**fields, "csrf": token})
    assert fetch(served, "/outbox/act", method="POST", body=body, headers=post_headers)[0] == 303
    assert case_field(served, alert_id, "claimed_by") == "member:carol"


# ---------------------------------------------------------------- the login


def test_a_member_signs_in_acts_as_themself_and_signs_out(served: Served) -> None:
    client = served.client(None)
    page = client.request("/signin?next=/dashboard").text
    assert 'autocomplete="current-password"' in page and 'value="/dashboard"' in page
    token = csrf_token(page)
    wrong = client.request("/signin", {"csrf": token, "name": "ana", "password": "guess"})
    assert wrong.status == 401 and "do not match" in wrong.text
    assert client.request("/stats").status == 401

    answer = client.request(
        "/signin", {"csrf": token, "name": "ana", "password": ANA.password, "next": "/dashboard"}
    )
    assert answer.status == 303 and answer.headers["Location"] == "/dashboard"
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=28800" in cookie
    assert "Path=/" in cookie and "Secure" not in cookie
    # A new session at sign-in: the anonymous session's form token is no good any more.
    assert csrf_token(client.get("/outbox")) != token

    alert_id = served.alert_ids[3]
    assert client.post_form("/outbox/act", {"alert_id": alert_id, "action": "claim"}) == 303
    page = client.get("/outbox")
    assert (
        "(claimed by Ana Souza)" in page and 'Signed in as <b class="member">Ana Souza</b>' in page
    )
    [record] = [
        orjson.loads(r.value)
        for r in served.engine.consume(served.engine.kafka.cases_topic, 2)
        if orjson.loads(r.value)["alert"]["id"] == alert_id
    ]
    assert (record["user_id"], record["user_name"], record["source"]) == (
        "member:ana",
        "Ana Souza",
        "outbox",
    )

    # Signing out ends the session for a copy of the cookie too.
    copied = next(c for c in client.cookies if c.name == "alert_engine_session").value
    assert client.post_form("/signout", {}) == 303
    assert client.request("/stats").status == 401
    assert fetch(served, "/stats", headers={"Cookie": f"alert_engine_session={copied}"})[0] == 401


def test_a_script_may_send_the_csrf_token_as_a_header(served: Served) -> None:
    client = served.client(BO)
    token = csrf_token(client.get("/outbox"))
    fields = {"alert_id": served.alert_ids[5], "action": "claim"}
    assert client.request("/outbox/act", fields, {"X-CSRF-Token": "wrong"}).status == 403
    assert case_field(served, served.alert_ids[5], "state") is None
    assert client.request("/outbox/act", fields, {"X-CSRF-Token": token}).status == 303
    assert case_field(served, served.alert_ids[5], "claimed_by") == "member:bo"


def test_a_sign_in_with_a_next_elsewhere_lands_home(served: Served) -> None:
    client = served.client(None)
    token = csrf_token(client.request("/signin").text)
    answer = client.request(
        "/signin",
        {"csrf": token, "name": "bo", "password": BO.password, "next": "//evil.example/x"},
    )
    assert answer.status == 303 and answer.headers["Location"] == "/outbox"


def test_a_login_form_without_its_token_or_from_another_site_is_refused(served: Served) -> None:
    client = served.client(None)
    token = csrf_token(client.request("/signin").text)
    answer = client.request("/signin", {"name": "ana", "password": ANA.password})
    assert answer.status == 403
    fields = {"csrf": token, "name": "ana", "password": ANA.password}
    answer = client.request("/signin", fields, {"Origin": "http://evil.example"})
    assert answer.status == 403 and "cross-site" in answer.text
    assert client.request("/stats").status == 401
    # Nor can another site sign a member out.
    member = served.client()
    token = csrf_token(member.get("/outbox"))
    signout = member.request("/signout", {"csrf": token}, {"Origin": "http://evil.example"})
    assert signout.status == 403
    assert member.request("/stats").status == 200


def test_failed_sign_ins_are_limited_per_address_and_per_member(served: Served) -> None:
    # Per address: from 127.0.0.2, five wrong passwords for names that are no member; then even
    # Bo's right password is refused for the window.
    status, headers, page = fetch(served, "/signin", source=UNTRUSTED_SOURCE)
    cookie = headers["set-cookie"].split(";", 1)[0]
    token = csrf_token(page)

    def attempt(
        name: str, password: str, source: str | None = UNTRUSTED_SOURCE, **extra: str
    ) -> tuple[int, dict[str, str], str]:
        body = form({"csrf": token, "name": name, "password": password})
        return fetch(
            served,
            "/signin",
            method="POST",
            body=body,
            headers={**FORM, "Cookie": cookie, **extra},
            source=source,
        )

    for n in range(5):
        assert attempt(f"nobody-{n}", "wrong")[0] == 401
    status, headers, page = attempt("bo", BO.password)
    assert status == 429 and "Too many failed sign-ins" in page
    assert 800 < int(headers["retry-after"]) <= 900
    assert "Set-Cookie" not in headers and "set-cookie" not in headers

    # Per member: wrong passwords for Ana from five addresses (behind the trusted proxy, which
    # says whom it forwards for), then her right one from a sixth is refused too.
    status, headers, page = fetch(served, "/signin")
    cookie = headers["set-cookie"].split(";", 1)[0]
    token = csrf_token(page)
    for n in range(5):
        assert attempt("ana", "wrong", None, **{"X-Forwarded-For": f"203.0.113.{n}"})[0] == 401
    status, _, _ = attempt("ana", ANA.password, None, **{"X-Forwarded-For": "203.0.113.99"})
    assert status == 429
    # Another member from another address is not held up.
    assert attempt("bo", BO.password, None, **{"X-Forwarded-For": "203.0.113.100"})[0] == 303
    served.redis.delete(redis_keys.signin_failures(served.prefix, "member", "ana"))


# ---------------------------------------------------------------- the demo's one-time link


def test_without_sign_in_configured_the_demo_member_signs_in_once_with_the_logged_link(
    stack: Endpoints, unique: str, tmp_path: Path
) -> None:
    engine = Engine(stack, unique, tmp_path)
    worker = WorkerProcess(engine.env, tmp_path / "demo.log", sign_in=False).start()
    try:
        assert fetch_url(worker, "/stats")[0] == 401
        link = logged_link(worker)
        assert link.startswith(f"http://127.0.0.1:{worker.web_port}/signin/link?token=")
        client = SignedInClient(worker.url, None)
        path = link.removeprefix(worker.url)
        answer = client.request(path)
        assert answer.status == 303 and answer.headers["Location"] == "/outbox"
        assert 'Signed in as <b class="member">Demo member</b>' in client.get("/outbox")
        assert "events_in" in client.get("/stats")
        # Used up: the same link again signs no one in.
        again = SignedInClient(worker.url, None).request(path)
        assert again.status == 403 and "used up" in again.text
        assert SignedInClient(worker.url, None).request("/signin/link?token=forged").status == 403
        # The sign-in page says where the link is, and writes a new one there (once a minute).
        page = SignedInClient(worker.url, None).request("/signin").text
        assert "one-time link in the" in page and "<form" not in page
        deadline = time.monotonic() + 10
        while logged_link(worker) == link and time.monotonic() < deadline:
            time.sleep(0.1)
        fresh = logged_link(worker)
        assert fresh != link
        SignedInClient(worker.url, None).request("/signin")
        time.sleep(1)
        assert logged_links(worker) == 2
        answer = client.request(fresh.removeprefix(worker.url))
        assert answer.status == 303
    finally:
        worker.stop()


def fetch_url(worker: WorkerProcess, path: str) -> tuple[int, str]:
    answer = SignedInClient(worker.url, None).request(path)
    return answer.status, answer.text


def logged_links(worker: WorkerProcess) -> int:
    return len(re.findall(r"/signin/link\?token=", worker.log_path.read_text()))


def logged_link(worker: WorkerProcess) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.findall(r"(http://\S+/signin/link\?token=\S+)", worker.log_path.read_text())
        if found:
            return str(found[-1])
        time.sleep(0.2)
    raise AssertionError(f"no sign-in link in the log:\n{worker.log_tail()}")


# ---------------------------------------------------------------- in a browser


def test_a_member_signs_in_and_claims_on_the_outbox_page_in_chromium(served: Served) -> None:
    from playwright.sync_api import sync_playwright

    from tests.system.test_followup_browser import CHROMIUM_ARGS, PHONE, chromium

    alert_id = served.alert_ids[4]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=PHONE)
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            page.goto(served.worker.url + "/outbox")
            assert page.url.startswith(served.worker.url + "/signin?next=")
            # Keyboard only: the name field has the focus.
            page.keyboard.type("bo")
            page.keyboard.press("Tab")
            page.keyboard.type(BO.password)
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert page.url == served.worker.url + "/outbox"
            assert page.locator(".member").inner_text() == "Bo Li"
            card = page.locator("form", has=page.locator(f'input[value="{alert_id}"]'))
            with page.expect_navigation():
                card.get_by_role("button", name="Claim").click()
            assert "(claimed by Bo Li)" in page.content()
            with page.expect_navigation():
                page.get_by_role("button", name="Sign out").click()
            assert page.url.startswith(served.worker.url + "/signin")
            page.goto(served.worker.url + "/outbox")
            assert "/signin" in page.url
        finally:
            browser.close()
    assert case_field(served, alert_id, "claimed_by") == "member:bo"
    assert not [text for text in console if "Content Security Policy" in text], console
