"""The outbox page of a real worker: alerts as they would look, with working buttons."""

import re
import urllib.error
import urllib.parse
import urllib.request

import orjson
import pytest

from tests.engine import Engine, encode_all
from tests.factories import rating

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
        assert "1★ rating: negative-rating [high]" in page
        assert "Priya Nair" in page and "★☆☆☆☆" in page
        assert "<script>" not in page
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
        assert post(act, {**claim, "action": "resolved_no_followup", "user": "Bo"}) == 303
        assert "Resolved, no follow-up" in get(worker.url + "/outbox")

        records = [orjson.loads(r.value) for r in engine.consume(engine.kafka.cases_topic, 2)]
        assert [(r["state"], r["user_name"], r["source"]) for r in records] == [
            ("claimed", "Ana", "outbox"),
            ("resolved_no_followup", "Bo", "outbox"),
        ]
        assert [r["alert"]["id"] for r in records] == [alert["id"]] * 2
    finally:
        worker.stop()
