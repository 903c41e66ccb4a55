"""The outbox page of a real worker: alerts as they would look, with working buttons."""

import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime

import orjson
import pytest

from alert_engine.alerts import alert_id
from tests.engine import Engine, encode_all
from tests.factories import make_alert, rating

pytestmark = pytest.mark.integration


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def post(url: str, form: dict[str, str], headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(
        url, data=urllib.parse.urlencode(form).encode(), headers=headers or {}
    )
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def post_page(url: str, form: dict[str, str]) -> str:
    request = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode())
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


def test_the_outbox_page_shows_alerts_and_its_buttons_claim_and_resolve(stack, unique, tmp_path):
    engine = Engine(stack, unique, tmp_path)
    worker = engine.worker().start()
    try:
        hostile = '<script>alert("x")</script> <!channel>'
        engine.produce(
            engine.kafka.ratings_topic, encode_all([rating(id="r-page", comment=hostile)])
        )
        engine.wait_for(lambda: len(engine.delivered()) == 1)
        [alert] = engine.delivered()
        page = get(worker.url + "/outbox")
        assert "<h2>Jordan Lee rated Priya Nair 1★</h2>" in page
        assert "<dt>Email</dt><dd>jordan@example.com</dd>" in page
        assert "Priya Nair" in page and "★☆☆☆☆" in page
        # The page's own script is its one <script>; the customer's is text.
        assert page.count("<script>") == 1 and 'alert("x")</script>' not in page
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &lt;!channel&gt;" in page
        token = re.search(r'name="token" value="([^"]+)"', page).group(1)

        act = worker.url + "/outbox/act"
        claim = {"token": token, "alert_id": alert["id"], "action": "claim", "user": "Ana"}
        assert post(act, {**claim, "token": "guessed"}) == 403
        assert post(act, claim, {"Origin": "http://evil.example"}) == 403
        assert "(claimed by" not in get(worker.url + "/outbox")

        assert post(act, claim) == 303
        page = get(worker.url + "/outbox")
        assert "Claimed" in page and "(claimed by Ana)" in page
        assert 'value="claim"' not in page
        # A final action asks first: the confirm step changes nothing yet.
        resolve = {**claim, "action": "resolved_no_followup", "user": "Bo", "reason": "apology"}
        confirm_page = post_page(act, resolve)
        assert "<h1>Resolve \u2013 no follow-up?</h1>" in confirm_page
        assert "Reason: Apology." in confirm_page and "undo it for 5 minutes" in confirm_page
        assert 'name="confirm" value="yes"' in confirm_page
        assert "Resolved" not in get(worker.url + "/outbox")
        # Confirmed without a reason: nothing changes, and the page says why.
        assert post(act, {**resolve, "reason": "", "confirm": "yes"}) == 409
        assert post(act, {**resolve, "confirm": "yes"}) == 303
        page = get(worker.url + "/outbox")
        assert "Resolved, no follow-up" in page and "reason: apology" in page
        assert 'value="undo"' in page and 'value="reopen"' in page
        # Undo within the period puts the case back as it was.
        assert post(act, {**claim, "action": "undo", "user": "Bo"}) == 303
        assert post(act, {**claim, "action": "note", "note": "called, voicemail"}) == 303
        page = get(worker.url + "/outbox")
        assert "(claimed by Ana)" in page and 'value="undo"' not in page
        history = re.findall(r"<li>[^<]* UTC · ([^<]*)</li>", page)
        assert history == [
            "Claimed by Ana",
            "Resolved, no follow-up by Bo · reason: Apology",
            "Bo undid “Resolve \u2013 no follow-up”: back to Claimed",
            "Note by Ana\n“called, voicemail”",
        ]

        records = [orjson.loads(r.value) for r in engine.consume(engine.kafka.cases_topic, 4)]
        assert [(r["state"], r["user_name"], r["source"]) for r in records] == [
            ("claimed", "Ana", "outbox"),
            ("resolved_no_followup", "Bo", "outbox"),
            ("claimed", "Bo", "outbox"),
            ("claimed", "Ana", "outbox"),
        ]
        assert [r["alert"]["id"] for r in records] == [alert["id"]] * 4
    finally:
        worker.stop()


def test_outbox_pages_do_not_hold_up_the_loop_that_delivers(stack, unique, tmp_path):
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
        assert "Jordan Lee rated Priya Nair 1★" in get(worker.url + "/outbox")
        idle = ticks(3)

        stop = threading.Event()
        pages = []

        def keep_asking() -> None:
            while not stop.is_set():
                pages.append(get(worker.url + "/outbox"))

        askers = [threading.Thread(target=keep_asking) for _ in range(3)]
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
