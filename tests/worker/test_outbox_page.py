"""The outbox page of a real worker: alerts as they would look, with working buttons."""

import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from alert_engine.alerts import alert_id
from devstack.stack import Endpoints
from devstack.webclient import Credentials, SignedInClient, csrf_token, write_members_file
from tests.engine import Engine, encode_all
from tests.factories import make_alert, rating

pytestmark = pytest.mark.integration


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        text: str = response.read().decode()
        return text


def post(url: str, form: dict[str, str], headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(
        url, data=urllib.parse.urlencode(form).encode(), headers=headers or {}
    )
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=10) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_outbox_page_shows_alerts_and_its_buttons_claim_and_resolve(
    stack: Endpoints, unique: str, tmp_path: Path
) -> None:
    engine = Engine(stack, unique, tmp_path)
    ana, bo = Credentials("ana", "ana's long password", "Ana"), Credentials("bo", "bo's pw", "Bo")
    members = write_members_file(tmp_path / "members.json", [ana, bo])
    engine.env["ALERT_ENGINE_SIGNIN_MEMBERS_FILE"] = str(members)
    worker = engine.worker().start()
    as_ana, as_bo = SignedInClient(worker.url, ana), SignedInClient(worker.url, bo)
    try:
        hostile = '<script>alert("x")</script> <!channel>'
        engine.produce(
            engine.kafka.ratings_topic, encode_all([rating(id="r-page", comment=hostile)])
        )
        engine.wait_for(lambda: len(engine.delivered()) == 1)
        [alert] = engine.delivered()
        page = as_ana.get("/outbox")
        assert "<h2>Jordan Lee rated Priya Nair 1★</h2>" in page
        assert "<dt>Email</dt><dd>jordan@example.com</dd>" in page
        assert "Priya Nair" in page and "★☆☆☆☆" in page
        # The page runs no script; the customer's is text.
        assert "<script>" not in page and 'alert("x")</script>' not in page
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &lt;!channel&gt;" in page
        # Who acts is the signed-in member: the page has no "acting as" field to type into.
        assert 'name="user"' not in page and "Acting as" not in page
        token = csrf_token(page)

        claim = {"csrf": token, "alert_id": alert["id"], "action": "claim", "user": "Mallory"}
        assert as_ana.request("/outbox/act", {**claim, "csrf": "guessed"}).status == 403
        # Bo's session with Ana's token: refused.
        assert as_bo.request("/outbox/act", claim).status == 403
        assert as_ana.request("/outbox/act", claim, {"Origin": "http://evil.example"}).status == 403
        assert "(claimed by" not in as_ana.get("/outbox")

        assert as_ana.request("/outbox/act", claim).status == 303
        page = as_bo.get("/outbox")
        assert "Claimed" in page and "(claimed by Ana)" in page and "Mallory" not in page
        assert 'value="claim"' not in page
        # A final action asks first: the confirm step changes nothing yet.
        bo_token = csrf_token(page)
        resolve = {
            "csrf": bo_token,
            "alert_id": alert["id"],
            "action": "resolved_no_followup",
            "reason": "apology",
        }
        confirm_page = as_bo.request("/outbox/act", resolve).text
        assert "<h1>Resolve \u2013 no follow-up?</h1>" in confirm_page
        assert "Reason: Apology." in confirm_page and "undo it for 5 minutes" in confirm_page
        assert 'name="confirm" value="yes"' in confirm_page
        assert "Resolved" not in as_ana.get("/outbox")
        # Confirmed without a reason: nothing changes, and the page says why.
        assert (
            as_bo.request("/outbox/act", {**resolve, "reason": "", "confirm": "yes"}).status == 409
        )
        assert as_bo.request("/outbox/act", {**resolve, "confirm": "yes"}).status == 303
        page = as_ana.get("/outbox")
        assert "Resolved, no follow-up" in page and "reason: apology" in page
        assert 'value="undo"' in page and 'value="reopen"' in page
        # Undo within the period puts the case back as it was.
        undo = {"alert_id": alert["id"], "action": "undo"}
        assert as_bo.post_form("/outbox/act", undo) == 303
        note = {"alert_id": alert["id"], "action": "note", "note": "called, voicemail"}
        assert as_ana.post_form("/outbox/act", note) == 303
        page = as_ana.get("/outbox")
        assert "(claimed by Ana)" in page and 'value="undo"' not in page
        history = re.findall(r"<li>[^<]* UTC · ([^<]*)</li>", page)
        assert history == [
            "Claimed by Ana",
            "Resolved, no follow-up by Bo · reason: Apology",
            "Bo undid “Resolve \u2013 no follow-up”: back to Claimed",
            "Note by Ana\n“called, voicemail”",
        ]

        records = [orjson.loads(r.value) for r in engine.consume(engine.kafka.cases_topic, 4)]
        assert [(r["state"], r["user_id"], r["user_name"], r["source"]) for r in records] == [
            ("claimed", "member:ana", "Ana", "outbox"),
            ("resolved_no_followup", "member:bo", "Bo", "outbox"),
            ("claimed", "member:bo", "Bo", "outbox"),
            ("claimed", "member:ana", "Ana", "outbox"),
        ]
        assert [r["alert"]["id"] for r in records] == [alert["id"]] * 4
    finally:
        worker.stop()


def test_outbox_pages_do_not_hold_up_the_loop_that_delivers(
    stack: Endpoints, unique: str, tmp_path: Path
) -> None:
    """With 50,000 entries in the outbox, pages asked for again and again leave the worker's
    event loop free: a ticker on that loop (`/health`, asked every 20 ms) keeps about its pace,
    and alerts raised meanwhile are delivered. Relative to the same ticker without the pages,
    so a slow or busy machine does not change the verdict. (Parsing the whole file on the loop
    for each page, the ticker slowed about tenfold.)"""
    engine = Engine(stack, unique, tmp_path)
    template = make_alert("r-old").model_dump(mode="json")
    delivered_at = datetime.now(UTC).isoformat()
    lines = [
        orjson.dumps(
            {
                "destination": "outbox",
                "delivered_at": delivered_at,
                "alert": {**template, "id": alert_id("negative-rating", f"r-old-{n}")},
            }
        )
        for n in range(50_000)
    ]
    engine.outbox.write_bytes(b"\n".join(lines) + b"\n")

    def ticks(seconds: float) -> float:
        """Answers of `/health` per second, asked one after the other with 20 ms between."""
        count, deadline = 0, time.monotonic() + seconds
        started = time.monotonic()
        while time.monotonic() < deadline:
            get(worker.url + "/health")
            count += 1
            time.sleep(0.02)
        return count / (time.monotonic() - started)

    worker = engine.worker().start()
    try:
        # The outbox destination reads the file once, at its first delivery: before measuring.
        engine.produce(engine.kafka.ratings_topic, encode_all([rating(id="r-first")]))
        engine.wait_for(lambda: len(engine.delivered()) == 50_001, timeout=60)
        assert "Jordan Lee rated Priya Nair 1★" in worker.client.get("/outbox")
        idle = ticks(3)

        stop = threading.Event()
        pages = []

        def keep_asking() -> None:
            while not stop.is_set():
                pages.append(client.get("/outbox"))

        askers = [threading.Thread(target=keep_asking) for _ in range(3)]
        client = worker.client  # signed in once, before the threads share it
        for asker in askers:
            asker.start()
        try:
            engine.produce(
                engine.kafka.ratings_topic,
                encode_all([rating(id=f"r-during-{n}") for n in range(5)]),
            )
            busy = ticks(6)
            engine.wait_for(lambda: len(engine.delivered()) == 50_006, timeout=60)
        finally:
            stop.set()
            for asker in askers:
                asker.join()
        assert len(pages) >= 3 and all("Jordan Lee rated Priya Nair 1★" in page for page in pages)
        assert busy > idle / 2, (busy, idle, len(pages))
    finally:
        worker.stop()
