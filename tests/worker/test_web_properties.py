"""Property-based tests over the worker's public web endpoints, against a real worker process.

Whatever arrives at `POST /slack/interactions` or `/survey/{token}` (bodies, headers, timestamps,
signatures, tokens, form fields), the worker never answers 5xx and changes nothing in Redis or
Kafka unless the request is genuine: signed with Slack's v0 scheme within five minutes and about
a real alert, or a valid survey link with an answer of 1 to 5 stars. One worker serves the whole
module; examples are bounded so the file runs in about twenty seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import redis as sync_redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alert_engine.cases import (
    Actor,
    Case,
    CaseAction,
    CasePolicy,
    CaseRequest,
    CaseState,
    Refusal,
    decide,
)
from alert_engine.followup.schedule import ScheduledSurvey, new_survey_id
from alert_engine.followup.tokens import sign
from alert_engine.storage import redis_keys
from devstack.stack import Endpoints
from devstack.webclient import csrf_token
from devstack.workerprocess import WorkerProcess
from tests.engine import Engine, encode_all
from tests.factories import rating
from tests.followup_factories import legacy_survey_token

pytestmark = pytest.mark.integration

SIGNING_SECRET = "property-signing-secret"
TOKEN_SECRET = "property-token-secret"
ALERTS = 4
bounded = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Text a form or header can carry (no lone surrogates, which cannot be encoded at all).
texts = st.text(st.characters(blacklist_categories=["Cs"]), max_size=60)
# What an HTTP header can carry at all: printable ASCII.
header_texts = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)
# Markup with a tag no page uses, so its raw appearance in a page can only be an injection.
markup = st.sampled_from(["<x-evil>alert(1)</x-evil>", '"><x-evil src=x>', "</textarea><x-evil/>"])


@dataclass
class Served:
    engine: Engine
    worker: WorkerProcess
    redis: sync_redis.Redis
    prefix: str
    alert_ids: list[str]


@pytest.fixture(scope="module")
def served(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    unique = uuid.uuid4().hex[:10]
    workdir = tmp_path_factory.mktemp("web-properties")
    engine = Engine(stack, unique, workdir)
    engine.env.update(
        {
            "ALERT_ENGINE_SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "ALERT_ENGINE_FOLLOWUP_TOKEN_SECRET": TOKEN_SECRET,
            "ALERT_ENGINE_FOLLOWUP_OUTBOX_PATH": str(workdir / "surveys.jsonl"),
            "ALERT_ENGINE_FOLLOWUP_COMPANY": "Acme <x-evil>Care</x-evil>",
        }
    )
    worker = engine.worker().start()
    client = sync_redis.Redis.from_url(stack.redis_url)
    try:
        engine.produce(
            engine.kafka.ratings_topic,
            encode_all([rating(id=f"r-web-{n}", rating=1) for n in range(ALERTS)]),
        )
        engine.wait_for(lambda: len(engine.delivered()) == ALERTS)
        yield Served(
            engine,
            worker,
            client,
            f"test-{unique}",
            [alert["id"] for alert in engine.delivered()],
        )
    finally:
        client.close()
        worker.stop()


def request(
    url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


# ---------------------------------------------------------------- Slack interactivity


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's v0 scheme, written out from its documentation (not the library under test)."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def case_fields(served: Served, alert_id: str) -> dict[bytes, bytes]:
    return served.redis.hgetall(redis_keys.case(served.prefix, alert_id))  # type: ignore[return-value]


def state_of(fields: dict[bytes, bytes]) -> CaseState:
    return CaseState(fields.get(b"state", b"open").decode())


def case_state(served: Served, alert_id: str) -> CaseState:
    return state_of(case_fields(served, alert_id))


def payload(alert_id: str, action: str, *, user: Any = None) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": user if user is not None else {"id": "U0PROP", "name": "prop"},
        "channel": {"id": "C0PROP"},
        "message": {"ts": "1700000000.000100", "blocks": []},
        "actions": [{"action_id": action, "value": alert_id}],
    }


@st.composite
def interactions(draw: st.DrawFn, alert_ids: list[str]) -> tuple[bytes, dict[str, str], bool, bool]:
    """(body, headers, authentic, genuine): authentic means signed right within five minutes;
    genuine, authentic and about a real alert with an action this app sends."""
    alert_id = draw(st.sampled_from([*alert_ids, "al-0", "", "not-an-alert"]))
    action = draw(st.sampled_from([a.value for a in CaseAction] + ["delete", ""]))
    shape = draw(st.sampled_from(["valid", "mangled", "bytes", "no-payload"]))
    if shape == "valid":
        body = urllib.parse.urlencode({"payload": orjson.dumps(payload(alert_id, action))}).encode()
    elif shape == "mangled":
        document = payload(alert_id, action)
        field = draw(st.sampled_from(["actions", "user", "channel", "message", "type"]))
        document[field] = draw(st.none() | st.integers(-(2**63), 2**63 - 1) | texts | st.just([]))
        raw = orjson.dumps(document).decode()
        body = urllib.parse.urlencode({"payload": draw(st.sampled_from([raw, raw[:-3]]))}).encode()
    elif shape == "bytes":
        body = draw(st.binary(max_size=200))
    else:
        body = urllib.parse.urlencode({"other": draw(texts)}).encode()

    # Slack refuses requests more than five minutes old; stay clear of the edge.
    age = draw(st.sampled_from([0, 30, -30, 400, -400, 10_000]))
    timestamp = draw(
        st.sampled_from(["fresh", "fresh", "text", "missing"]).flatmap(
            lambda kind: {
                "fresh": st.just(str(int(time.time()) - age)),
                "text": header_texts,
                "missing": st.just(None),
            }[kind]
        )
    )
    signed_with = draw(st.sampled_from(["right", "right", "wrong-secret", "random", "missing"]))
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if timestamp is not None:
        headers["X-Slack-Request-Timestamp"] = timestamp
    signature = {
        "right": slack_signature(SIGNING_SECRET, timestamp or "", body),
        "wrong-secret": slack_signature("another-secret", timestamp or "", body),
        "random": "v0=" + draw(st.binary(min_size=32, max_size=32)).hex(),
        "missing": None,
    }[signed_with]
    if signature is not None:
        headers["X-Slack-Signature"] = signature
    authentic = (
        signed_with == "right" and timestamp is not None and timestamp.isdigit() and abs(age) < 300
    )
    # About a real alert, with an action this app's buttons send.
    genuine = (
        authentic
        and shape == "valid"
        and alert_id in alert_ids
        and action in {a.value for a in CaseAction}
    )
    return body, headers, authentic, genuine


@bounded
@given(st.data())
def test_only_a_genuine_slack_click_changes_a_case_and_nothing_gets_5xx(
    served: Served, data: st.DataObject
) -> None:
    body, headers, authentic, genuine = data.draw(interactions(served.alert_ids), label="request")
    before = {alert_id: case_fields(served, alert_id) for alert_id in served.alert_ids}
    status, _ = request(served.worker.url + "/slack/interactions", data=body, headers=headers)
    after = {alert_id: case_fields(served, alert_id) for alert_id in served.alert_ids}
    assert status < 500
    if not authentic:
        assert status == 401
    if not genuine:
        # An authentic click on an alert this worker does not know is acknowledged (Slack shows
        # an error otherwise) but changes nothing either.
        assert status in (200, 400, 401)
        assert after == before
        return
    assert status == 200
    document = orjson.loads(urllib.parse.parse_qs(body.decode())["payload"][0])
    [action] = document["actions"]
    alert_id, case_action = action["value"], CaseAction(action["action_id"])
    # What the lifecycle's model says this click does to the case as it was (a click carries no
    # reason, note or picked user: resolutions, notes and reassignments change nothing).
    previous = Case.model_validate(
        {"alert_id": alert_id, **{k.decode(): v.decode() for k, v in before[alert_id].items()}}
    )
    clicker = Actor(id=document["user"]["id"], name="prop", source="slack")
    decided = decide(previous, CaseRequest.of(case_action, clicker), CasePolicy())
    expected = previous.state if isinstance(decided, Refusal) else decided[0].state
    assert case_state(served, alert_id) is expected
    for other in served.alert_ids:
        if other != alert_id:
            assert after[other] == before[other]


def test_a_genuine_click_is_taken_and_the_same_click_unsigned_is_not(served: Served) -> None:
    """The property above could pass by refusing everything: a fixed example that must change."""
    # An alert of its own: the property's random genuine clicks may have moved every other case.
    engine = served.engine
    engine.produce(engine.kafka.ratings_topic, encode_all([rating(id="r-web-fresh", rating=1)]))
    engine.wait_for(lambda: any(a["key"] == "r-web-fresh" for a in engine.delivered()))
    fresh = next(a["id"] for a in engine.delivered() if a["key"] == "r-web-fresh")
    assert case_state(served, fresh) is CaseState.OPEN
    body = urllib.parse.urlencode({"payload": orjson.dumps(payload(fresh, "claim"))}).encode()
    timestamp = str(int(time.time()))
    headers = {"X-Slack-Request-Timestamp": timestamp}
    url = served.worker.url + "/slack/interactions"
    assert request(url, data=body, headers=headers)[0] == 401
    assert case_state(served, fresh) is CaseState.OPEN
    headers["X-Slack-Signature"] = slack_signature(SIGNING_SECRET, timestamp, body)
    assert request(url, data=body, headers=headers)[0] == 200
    assert case_state(served, fresh) is CaseState.CLAIMED


# ---------------------------------------------------------------- the survey pages


def new_survey(served: Served, name: str) -> tuple[str, str]:
    """A survey as the sender leaves it in Redis, and its signed link token."""
    survey_id = new_survey_id()
    now = datetime.now(UTC)
    survey = ScheduledSurvey(
        alert_id=served.alert_ids[0],
        survey_id=survey_id,
        due_at=now,
        resolved_at=now,
        rule="negative-rating",
        event=rating(id=f"r-{survey_id}", rating=1, customer={"id": "c-1", "name": name}),
    )
    served.redis.set(redis_keys.survey(served.prefix, survey_id), survey.model_dump_json(), ex=3600)
    return survey_id, sign(TOKEN_SECRET.encode(), survey_id, now + timedelta(hours=1))


def answered(served: Served, survey_id: str) -> bool:
    return bool(served.redis.exists(redis_keys.survey_answered(served.prefix, survey_id)))


def survey_url(served: Served, token: str) -> str:
    return f"{served.worker.url}/survey/{urllib.parse.quote(token, safe='')}"


def is_valid_answer(form: dict[str, str]) -> bool:
    return (
        form.get("rating", "") in {"1", "2", "3", "4", "5"}
        and form.get("nps", "") in {"", *map(str, range(11))}
        and len(form.get("comment", "").strip()) <= 2000
    )


@st.composite
def tokens(draw: st.DrawFn, survey_id: str, valid: str) -> tuple[str, bool]:
    kind = draw(
        st.sampled_from(["valid", "valid", "legacy", "text", "tampered", "expired", "truncated"])
    )
    secret = TOKEN_SECRET.encode()
    expires = datetime.now(UTC) + timedelta(hours=1)
    if kind == "valid":
        return valid, True
    if kind == "legacy":  # a link sent before tokens were signed by itsdangerous
        return legacy_survey_token(secret, survey_id, expires), True
    if kind == "text":
        return draw(texts), False
    if kind == "tampered":
        payload, signature = valid.split(".")
        part = draw(st.sampled_from(["survey", "expiry", "signature", "key", "legacy"]))
        if part == "survey":  # another survey's payload under this signature
            other = sign(secret, new_survey_id(), expires).split(".")[0]
            return f"{other}.{signature}", False
        if part == "expiry":  # a later expiry under this signature
            later = expires + timedelta(seconds=draw(st.integers(1, 10**6)))
            return f"{sign(secret, survey_id, later).split('.')[0]}.{signature}", False
        if part == "key":
            return sign(b"another key", survey_id, expires), False
        if part == "legacy":
            return legacy_survey_token(b"another key", survey_id, expires), False
        return f"{payload}.{signature[::-1]}", False
    if kind == "expired":
        past = datetime.now(UTC) - timedelta(seconds=draw(st.integers(1, 10**6)))
        if draw(st.booleans()):
            return legacy_survey_token(secret, survey_id, past), False
        return sign(secret, survey_id, past), False
    return valid[: draw(st.integers(0, len(valid) - 1))], False


form_values = st.dictionaries(
    st.sampled_from(["rating", "nps", "comment", "extra"]),
    st.sampled_from(["1", "3", "5", "0", "6", "10", "11", "-1", " 4", "4.0", "", "five"])
    | texts
    | markup
    | st.just("x" * 2001),
    max_size=4,
)


@bounded
@given(st.data(), form_values, markup)
def test_only_a_valid_link_with_one_to_five_stars_records_an_answer(
    served: Served, data: st.DataObject, form: dict[str, str], name: str
) -> None:
    survey_id, valid = new_survey(served, name)
    token, token_is_valid = data.draw(tokens(survey_id, valid), label="token")

    status, page = request(survey_url(served, token))
    assert status < 500
    assert status == 200 if token_is_valid else status in (404, 410)
    assert not answered(served, survey_id)

    body = urllib.parse.urlencode(form).encode()
    status, page = request(
        survey_url(served, token),
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status < 500
    # Nothing a customer (or the company name) wrote becomes markup in any page.
    assert "<x-evil" not in page
    recorded = token_is_valid and is_valid_answer(form)
    assert answered(served, survey_id) is recorded
    if recorded:
        assert status == 200 and "Thank you" in page
        # Used up: a second answer is refused and nothing more is recorded.
        assert request(survey_url(served, token), data=b"rating=1")[0] == 410
    elif token_is_valid:
        assert status == 400
    else:
        assert status in (404, 405, 410)
    _expected_answers.append(recorded)


_expected_answers: list[bool] = []


def test_exactly_the_recorded_answers_became_follow_up_ratings(served: Served) -> None:
    """Runs after the property: each recorded answer published one `ratings` event, and no
    refused request published any."""
    expected = sum(_expected_answers)
    assert _expected_answers, "the survey property ran first"
    records = served.engine.consume(served.engine.kafka.ratings_topic, ALERTS + expected + 1, 3.0)
    follow_ups = [r for r in map(orjson.loads, (r.value for r in records)) if r.get("survey")]
    assert len(follow_ups) == expected
    assert all(r["survey"] == "follow_up" for r in follow_ups)


def test_the_requests_the_property_found_answering_500_are_refused_cleanly(served: Served) -> None:
    """Found by the property above: a non-UTF-8 body (the verifier raised decoding it, signed or
    not) and a signed click whose `user` or `message` is not an object."""
    url = served.worker.url + "/slack/interactions"
    timestamp = str(int(time.time()))
    for body in (b"\x80", b"payload=\xff"):
        headers = {
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": slack_signature(SIGNING_SECRET, timestamp, body),
        }
        assert request(url, data=body, headers=headers)[0] == 401
    for field, value in (("user", None), ("message", 3), ("message", {})):
        document = payload(served.alert_ids[-1], "claim")
        document[field] = value
        body = urllib.parse.urlencode({"payload": orjson.dumps(document)}).encode()
        headers = {
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": slack_signature(SIGNING_SECRET, timestamp, body),
        }
        assert request(url, data=body, headers=headers)[0] == 400


# ---------------------------------------------------------------- raw requests: never a 5xx


def raw_request(
    served: Served, path: str, body: bytes, headers: dict[str, bytes]
) -> tuple[int, str]:
    """A POST with header values sent as the very bytes given (urllib would encode them)."""
    connection = http.client.HTTPConnection("127.0.0.1", served.worker.web_port, timeout=10)
    try:
        connection.putrequest("POST", path)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def outbox_token(served: Served) -> str:
    """The CSRF token of the outbox page's forms, for the worker's signed-in member."""
    return csrf_token(served.worker.client.get("/outbox"))


def session_cookie(served: Served) -> bytes:
    """The `Cookie` header of the worker's signed-in member."""
    client = served.worker.client
    client.get("/outbox")
    return "; ".join(f"{cookie.name}={cookie.value}" for cookie in client.cookies).encode()


FORM = {"Content-Type": b"application/x-www-form-urlencoded"}


def test_the_requests_found_answering_500_are_refused_cleanly(served: Served) -> None:
    """Found from outside: a timestamp `int()` reads but the verifier then fails on ("²" is a
    digit to `str.isdigit`; 5,000 digits exceed `int()`'s limit), a signature that is not ASCII
    (`compare_digest` raises), and form bodies that are not UTF-8."""
    url_path = "/slack/interactions"
    body = urllib.parse.urlencode(
        {"payload": orjson.dumps(payload(served.alert_ids[0], "claim"))}
    ).encode()
    now = str(int(time.time()))
    for timestamp in (
        "²".encode(),
        "\u0661\u0667\u0660\u0660".encode(),
        b"9" * 5000,
        "²".encode("latin-1"),
    ):
        headers = {
            **FORM,
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": slack_signature(
                SIGNING_SECRET, timestamp.decode("utf-8", "replace"), body
            ).encode(),
        }
        assert raw_request(served, url_path, body, headers)[0] == 401, timestamp[:10]
    for signature in ("v0=é".encode(), "v0=é".encode("latin-1"), "v0=☃".encode()):
        headers = {
            **FORM,
            "X-Slack-Request-Timestamp": now.encode(),
            "X-Slack-Signature": signature,
        }
        assert raw_request(served, url_path, body, headers)[0] == 401, signature

    alert_id = served.alert_ids[0]
    before = case_fields(served, alert_id)
    token = outbox_token(served)
    for tail in (b"&user=\xff\xfe", b"&user=%ff%fe"):
        form = f"csrf={token}&alert_id={alert_id}&action=claim".encode() + tail
        status, text = raw_request(
            served, "/outbox/act", form, {**FORM, "Cookie": session_cookie(served)}
        )
        assert status == 400 and "UTF-8" in text
    assert case_fields(served, alert_id) == before

    survey_id, valid = new_survey(served, "Non UTF")
    for body in (b"rating=5&comment=\xff\xfe", b"rating=5&comment=%ff%fe"):
        status, page = raw_request(served, "/survey/" + valid, body, FORM)
        assert status == 400 and "How did we do" in page
    assert not answered(served, survey_id)


# Header values HTTP can carry: any byte but CR, LF and NUL.
header_bytes = st.binary(max_size=40).map(
    lambda raw: raw.replace(b"\r", b"").replace(b"\n", b"").replace(b"\x00", b"")
)
header_text = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n\x00"), max_size=40
)
# What `int()` or `str.isdigit` take for a number, and the verifier then cannot.
timestamps = st.one_of(
    header_bytes,
    st.text(st.characters(categories=("Nd", "No")), min_size=1, max_size=12).map(str.encode),
    st.integers(4301, 6000).map(lambda digits: b"9" * digits),
    st.builds(lambda: str(int(time.time())).encode()),
)
signatures = st.one_of(header_bytes, header_text.map(lambda text: ("v0=" + text).encode()))
content_types = (
    st.sampled_from(
        [b"application/x-www-form-urlencoded", b"multipart/form-data; boundary=x", b"text/plain"]
    )
    | header_bytes
)
bodies = st.one_of(
    st.binary(max_size=300),
    st.lists(st.tuples(texts, texts), max_size=5).map(
        lambda pairs: urllib.parse.urlencode(pairs).encode()
    ),
    st.lists(st.binary(max_size=20), max_size=6).map(lambda parts: b"&".join(parts)),
)


@bounded
@given(st.data(), st.sampled_from(["slack", "outbox", "survey"]), bodies)
def test_no_request_gets_a_5xx_and_only_a_real_form_acts(
    served: Served, data: st.DataObject, endpoint: str, body: bytes
) -> None:
    """Whatever bytes the body and the headers hold, on each page that takes a POST: never a
    5xx, and nothing changes without a real form token or signature."""
    alert_id = served.alert_ids[1]
    before = case_fields(served, alert_id)
    headers = {"Content-Type": data.draw(content_types, label="content type")}
    for name in data.draw(st.sets(st.sampled_from(["Origin", "Referer", "Cookie"])), "others"):
        headers[name] = data.draw(header_bytes, label=name)
    if endpoint == "slack":
        path = "/slack/interactions"
        headers["X-Slack-Request-Timestamp"] = data.draw(timestamps, label="timestamp")
        headers["X-Slack-Signature"] = data.draw(signatures, label="signature")
    elif endpoint == "outbox":
        path = "/outbox/act"
        # Signed in (unless a drawn Cookie header replaces the session's).
        headers.setdefault("Cookie", session_cookie(served))
        if data.draw(st.booleans(), label="with the page's token"):
            body = f"csrf={outbox_token(served)}&alert_id={alert_id}&".encode() + body
    else:
        survey_id, token = new_survey(served, "Raw")
        path = "/survey/" + token
    status, _ = raw_request(served, path, body, headers)
    assert status < 500
    if endpoint == "slack":
        # 400: a header byte the HTTP parser refuses (a control character).
        assert status in (400, 401)
    if endpoint == "survey":
        assert answered(served, survey_id) is (status == 200)
    if endpoint != "outbox":
        assert case_fields(served, alert_id) == before


# ---------------------------------------------------------------- replayed Slack clicks


def test_a_replayed_click_changes_nothing_and_says_so(served: Served) -> None:
    """A signed click sent again within its five minutes (by anyone who saw it) is answered but
    not taken, even when the case is back in a state the click's action could leave: as a
    reopened case would be."""
    engine = served.engine
    engine.produce(engine.kafka.ratings_topic, encode_all([rating(id="r-web-replay", rating=1)]))
    engine.wait_for(lambda: any(a["key"] == "r-web-replay" for a in engine.delivered()))
    alert_id = next(a["id"] for a in engine.delivered() if a["key"] == "r-web-replay")
    body = urllib.parse.urlencode({"payload": orjson.dumps(payload(alert_id, "claim"))}).encode()
    timestamp = str(int(time.time()))
    headers = {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": slack_signature(SIGNING_SECRET, timestamp, body),
    }
    url = served.worker.url + "/slack/interactions"
    assert request(url, data=body, headers=headers)[0] == 200
    assert case_state(served, alert_id) is CaseState.CLAIMED

    key = redis_keys.case(served.prefix, alert_id)
    served.redis.hset(key, mapping={"state": CaseState.OPEN.value})
    before = case_fields(served, alert_id)
    status, text = request(url, data=body, headers=headers)
    assert status == 200
    assert "already taken" in text and "nothing changed" in text
    assert case_fields(served, alert_id) == before

    records = engine.consume(engine.kafka.cases_topic, 1000, 3.0)
    about = [r for r in records if r.key == alert_id.encode()]
    assert len(about) == 1
