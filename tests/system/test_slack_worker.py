"""A real `alert-engine worker` posting to the Slack stand-in and taking clicks from "Slack"."""

import asyncio
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, overload

import orjson
import pytest
from slack_sdk.signature import SignatureVerifier

from alert_engine.alerts import alert_id
from alert_engine.delivery.failed import read_failed
from devstack.stack import Endpoints
from devstack.workerprocess import WorkerProcess
from standins.slack import TOKEN, Message, SlackStandIn
from tests.engine import RULES_DIR, Engine, encode_all
from tests.factories import rating

pytestmark = pytest.mark.integration

SIGNING_SECRET = "test-signing-secret"
ROUTING = """\
destinations:
  recovery: {type: slack, channel: C0RECOVERY}
route:
  destinations: [recovery]
"""


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    standin = SlackStandIn().start()
    yield standin
    standin.stop()


@pytest.fixture
def engine(stack: Endpoints, unique: str, tmp_path: Path, slack: SlackStandIn) -> Engine:
    return slack_engine(stack, unique, tmp_path, slack, ROUTING)


def slack_engine(
    stack: Endpoints,
    unique: str,
    tmp_path: Path,
    slack: SlackStandIn,
    routing_text: str,
    rules_dir: Path | None = None,
) -> Engine:
    engine = Engine(stack, unique, tmp_path, rules_dir)
    routing = tmp_path / "routing.yaml"
    routing.write_text(routing_text)
    engine.env.update(
        {
            "ALERT_ENGINE_ROUTING_FILE": str(routing),
            "ALERT_ENGINE_SLACK_BOT_TOKEN": TOKEN,
            "ALERT_ENGINE_SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "ALERT_ENGINE_SLACK_API_URL": slack.base_url,
        }
    )
    return engine


def wait_until(what: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.05)


def click(
    worker: WorkerProcess,
    message: Message,
    action: str,
    *,
    secret: str | None = SIGNING_SECRET,
    age: float = 0,
    user: str = "U0ANA",
    reason: str | None = None,
    selected_user: str | None = None,
    trigger_id: str | None = None,
    alert: str | None = None,
) -> int:
    """A click on the card as Slack sends it: the control, the reason picked on the card (its
    `state`), a user picked, a trigger id for a modal."""
    alert = alert or message.alert_id
    element: dict[str, Any] = {"action_id": action, "block_id": f"actions:{alert}"}
    if selected_user is not None:
        element["selected_user"] = selected_user
    else:
        element["value"] = alert
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user, "name": user.lower()},
        "channel": {"id": message.channel},
        "message": {"ts": message.ts, "blocks": message.blocks},
        "actions": [element],
    }
    if trigger_id is not None:
        payload["trigger_id"] = trigger_id
    if reason is not None:
        payload["state"] = {
            "values": {
                f"actions:{alert}": {
                    "reason": {"type": "static_select", "selected_option": {"value": reason}}
                }
            }
        }
    return interact(worker, payload, secret=secret, age=age)


def submit_note(
    worker: WorkerProcess, view: dict[str, Any], note: str, *, user: str = "U0ANA"
) -> tuple[int, bytes]:
    """The note modal sent back, as Slack sends a `view_submission`: status, answer body."""
    payload = {
        "type": "view_submission",
        "user": {"id": user, "name": user.lower()},
        "view": {
            **view,
            "state": {"values": {"note": {"note": {"type": "plain_text_input", "value": note}}}},
        },
    }
    return interact(worker, payload, answer=True)


@overload
def interact(
    worker: WorkerProcess,
    payload: dict[str, Any],
    *,
    secret: str | None = ...,
    age: float = ...,
    answer: Literal[False] = ...,
) -> int: ...
@overload
def interact(
    worker: WorkerProcess,
    payload: dict[str, Any],
    *,
    secret: str | None = ...,
    age: float = ...,
    answer: Literal[True],
) -> tuple[int, bytes]: ...
def interact(
    worker: WorkerProcess,
    payload: dict[str, Any],
    *,
    secret: str | None = SIGNING_SECRET,
    age: float = 0,
    answer: bool = False,
) -> int | tuple[int, bytes]:
    body = urllib.parse.urlencode({"payload": orjson.dumps(payload).decode()}).encode()
    timestamp = str(int(time.time() - age))
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if secret is not None:
        headers["X-Slack-Request-Timestamp"] = timestamp
        signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
        # slack_sdk answers None only when it is given no timestamp or no body.
        assert signature is not None
        headers["X-Slack-Signature"] = signature
    request = urllib.request.Request(worker.url + "/slack/interactions", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return (response.status, response.read()) if answer else response.status
    except urllib.error.HTTPError as exc:
        return (exc.code, exc.read()) if answer else exc.code


def status_of(message: Message) -> str:
    [status] = [b for b in message.blocks if b.get("block_id", "").startswith("status:")]
    text: str = status["elements"][0]["text"]
    return text


def controls_of(message: Message) -> list[str]:
    [actions] = [b for b in message.blocks if b["type"] == "actions"]
    return [e["action_id"] for e in actions["elements"]]


def test_clicks_claim_and_resolve_an_alert_and_forged_ones_are_rejected(
    engine: Engine, slack: SlackStandIn
) -> None:
    worker = engine.worker().start()
    try:
        engine.produce(engine.kafka.ratings_topic, encode_all([rating(id="r-click")]))
        wait_until(lambda: len(slack.posts()) == 1)
        [message] = slack.posts()

        assert click(worker, message, "claim", secret=None) == 401
        assert click(worker, message, "claim", secret="not-the-secret") == 401
        assert click(worker, message, "claim", age=6 * 60) == 401
        assert message.updates == 0

        assert click(worker, message, "claim") == 200
        assert message.updates == 1
        assert status_of(message).startswith("*Claimed* by <@U0ANA> · opened <!date^")
        assert controls_of(message) == [
            "resolved_followup",
            "resolved_no_followup",
            "reason",
            "not_actionable",
            "unclaim",
            "reassign",
            "note",
        ]
        assert [r.text for r in slack.replies(message.ts)] == ["Claimed by <@U0ANA>"]

        # Clicked again (or Slack retrying the request): nothing changes, and the clicker alone
        # is told why.
        assert click(worker, message, "claim", user="U0BO") == 200
        assert message.updates == 1 and len(slack.replies(message.ts)) == 1
        [told] = slack.ephemerals
        assert (told.user, told.text) == ("U0BO", "Already claimed by u0ana: nothing changed.")

        # Resolving needs a reason picked on the card.
        assert click(worker, message, "resolved_followup", user="U0BO") == 200
        assert slack.ephemerals[-1].text.startswith("Choose a reason before resolving: Refund")
        assert message.updates == 1
        assert click(worker, message, "resolved_followup", user="U0BO", reason="refund") == 200
        assert message.updates == 2
        assert [r.text for r in slack.replies(message.ts)][-1] == (
            "Resolved, follow-up survey to be sent by <@U0BO> · reason: Refund"
        )
        # Closed: Reopen, Undo while it can be, a note.
        assert controls_of(message) == ["reopen", "undo", "note"]
        assert "reason: Refund · opened" in status_of(message)
        assert "can be undone until <!date^" in status_of(message)

        records = [orjson.loads(r.value) for r in engine.consume(engine.kafka.cases_topic, 2)]
        assert [(r["action"], r["state"], r["user_id"]) for r in records] == [
            ("claim", "claimed", "U0ANA"),
            ("resolved_followup", "resolved_followup", "U0BO"),
        ]
        assert records[1]["claimed_by"] == "U0ANA" and records[1]["reason"] == "refund"
        assert [r["actor"] for r in records] == ["u0ana", "u0bo"]
        # Each record carries the alert it is about, as delivered.
        assert {r["alert"]["key"] for r in records} == {"r-click"}
        assert records[1]["alert_id"] == message.alert_id
    finally:
        worker.stop()


def test_a_worker_killed_between_posting_and_recording_does_not_post_twice(
    engine: Engine, slack: SlackStandIn
) -> None:
    worker = engine.worker("first")
    # The worker dies right after Slack stored the message, before it hears back.
    slack.after_post = lambda message: worker.kill()
    worker.start()
    engine.produce(engine.kafka.ratings_topic, encode_all([rating(id="r-crash")]))
    wait_until(lambda: worker.process is not None and worker.process.poll() is not None)
    assert len(slack.posts()) == 1

    slack.after_post = None
    restarted = engine.worker("second").start()
    try:
        # The restarted worker re-reads the alert (its offset was never committed), finds the
        # message in the channel and records it instead of posting again.
        wait_until(lambda: "conversations.history" in slack.calls, timeout=60)
        engine.produce(engine.kafka.ratings_topic, encode_all([rating(id="r-after")]))
        wait_until(lambda: len(slack.posts()) == 2)
        time.sleep(1.0)
        ids = [m.alert_id for m in slack.posts()]
        assert len(ids) == len(set(ids)) == 2
    finally:
        restarted.stop()


def test_slack_rate_limiting_and_failing_for_a_while_still_gets_every_alert_posted_once(
    engine: Engine, slack: SlackStandIn
) -> None:
    worker = engine.worker().start()
    try:
        slack.fail_next(3, 429, retry_after=1)
        slack.fail_next(4, 500)
        ids = [f"r-storm-{n}" for n in range(5)]
        engine.produce(engine.kafka.ratings_topic, encode_all([rating(id=i) for i in ids]))
        wait_until(lambda: len(slack.posts()) == len(ids), timeout=90)
        time.sleep(1.0)
        assert slack.failures == []
        posted = [m.alert_id for m in slack.posts()]
        assert len(posted) == len(set(posted)) == len(ids)
    finally:
        worker.stop()


@pytest.mark.slow
def test_slack_rate_limiting_then_failing_for_30_seconds_every_alert_posted_once_after(
    engine: Engine, slack: SlackStandIn
) -> None:
    # 15 s of 429 with Retry-After, then 15 s of 500, while 1,000 ratings (100 negative) arrive.
    worker = engine.worker().start()
    try:
        slack.outage(rate_limited=15.0, failing=15.0, retry_after=5)
        ratings = [rating(id=f"r-{n}", rating=1 if n % 10 == 0 else 5) for n in range(1000)]
        for start in range(0, len(ratings), 100):
            engine.produce(engine.kafka.ratings_topic, encode_all(ratings[start : start + 100]))
            time.sleep(2.0)
        expected = {alert_id("negative-rating", f"r-{n}") for n in range(0, 1000, 10)}
        wait_until(lambda: len(slack.posts()) >= len(expected), timeout=180)
        time.sleep(2.0)  # anything posted twice would land by now
        posted = [m.alert_id for m in slack.posts()]
        print(
            f"\nFAULT slack-outage-30s: events=1000 expected={len(expected)} "
            f"posted={len(posted)} duplicates={len(posted) - len(set(posted))} "
            f"lost={len(expected - set(posted))} answers={slack.outage_answers}"
        )
        assert sorted(posted) == sorted(expected)
        assert slack.outage_answers.get(429, 0) > 0 and slack.outage_answers.get(500, 0) > 0
    finally:
        worker.stop()


def test_a_burst_of_alerts_is_posted_at_once_over_connections_kept_open(
    engine: Engine, slack: SlackStandIn
) -> None:
    slack.answer_after = 0.5  # a slow Slack: one post after the other would take 5 s a burst
    worker = engine.worker().start()
    try:
        ids = []
        for burst in range(2):
            ids += [f"r-burst-{burst}-{n}" for n in range(10)]
            engine.produce(
                engine.kafka.ratings_topic, encode_all([rating(id=i) for i in ids[-10:]])
            )
            expected = len(ids)
            wait_until(lambda: len(slack.posts()) == expected, timeout=60)  # noqa: B023
        assert slack.most_in_flight > 1
        posted = [m.alert_id for m in slack.posts()]
        assert len(posted) == len(set(posted)) == len(ids)
        # The second burst went over the first one's connections: none opened per call.
        assert len(slack.connections) <= 10
    finally:
        worker.stop()


def test_failed_deliveries_are_listed_and_replayed_once_the_cause_is_fixed(
    engine: Engine, slack: SlackStandIn, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from alert_engine.cli.main import main

    (tmp_path / "routing.yaml").write_text(ROUTING.replace("C0RECOVERY", "C0LATER"))
    worker = engine.worker().start()
    try:
        engine.produce(engine.kafka.ratings_topic, encode_all([rating(id="r-lost")]))
        [record] = engine.consume(engine.kafka.failed_alerts_topic, 1)
        assert slack.posts() == []

        listed = CliRunner().invoke(main, ["failed", "list"], env=engine.env)
        assert listed.exit_code == 0, listed.output
        assert record.key.decode() in listed.output
        assert "recovery  permanent: slack: channel_not_found" in listed.output

        slack.channels.add("C0LATER")  # someone invited the bot to the channel
        for _ in range(2):  # replaying twice still posts once
            replayed = CliRunner().invoke(main, ["failed", "replay"], env=engine.env)
            assert replayed.output.strip() == f"replayed 1 alert(s) to {engine.kafka.alerts_topic}"
        wait_until(lambda: len(slack.posts("C0LATER")) == 1)
        time.sleep(1.0)
        assert len(slack.posts("C0LATER")) == 1
    finally:
        worker.stop()


ESCALATING_ROUTING = """\
destinations:
  recovery: {type: slack, channel: C0RECOVERY}
  leads: {type: slack, channel: C0ESCALATE}
route:
  destinations: [recovery]
  routes:
    - matchers: ["escalated = true"]
      destinations: [leads]
"""


def test_an_unclaimed_alert_escalates_even_across_a_restart_and_a_claimed_one_does_not(
    stack: Endpoints, unique: str, tmp_path: Path, slack: SlackStandIn
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    rule = (RULES_DIR / "negative-rating.yaml").read_text()
    (rules / "negative-rating.yaml").write_text(rule + "escalate_after: 8\n")
    engine = slack_engine(stack, unique, tmp_path, slack, ESCALATING_ROUTING, rules)
    first = engine.worker("first").start()
    engine.produce(
        engine.kafka.ratings_topic, encode_all([rating(id="r-claimed"), rating(id="r-ignored")])
    )
    wait_until(lambda: len(slack.posts("C0RECOVERY")) == 2)
    by_id = {m.alert_id: m for m in slack.posts("C0RECOVERY")}
    claimed = by_id[alert_id("negative-rating", "r-claimed")]
    assert click(first, claimed, "claim") == 200
    first.kill()  # the escalation timer lives in Redis, not in the worker

    second = engine.worker("second").start()
    try:
        wait_until(lambda: len(slack.posts("C0ESCALATE")) == 1, timeout=30)
        time.sleep(2.0)
        [escalation] = slack.posts("C0ESCALATE")
        assert escalation.metadata is not None
        assert escalation.metadata["event_payload"] == {
            "alert_id": alert_id("negative-rating", "r-ignored"),
            "escalated": True,
        }
        assert "Escalated, nobody claimed it" in escalation.text
        assert len(slack.posts("C0RECOVERY")) == 2
    finally:
        second.stop()


SLACK_AND_DESK = """\
destinations:
  recovery: {type: slack, channel: C0RECOVERY}
  desk: {type: outbox}
route:
  destinations: [recovery, desk]
"""


def test_an_alert_that_keeps_failing_holds_up_no_other_and_is_dead_lettered_after_its_attempts(
    stack: Endpoints, unique: str, tmp_path: Path, slack: SlackStandIn
) -> None:
    engine = slack_engine(stack, unique, tmp_path, slack, SLACK_AND_DESK)
    # Retried for about 15 s (1 s doubling to 4 s, 6 attempts) before it is given up on.
    engine.env.update(
        {
            "ALERT_ENGINE_DELIVERY_ATTEMPTS": "6",
            "ALERT_ENGINE_DELIVERY_FIRST_DELAY": "1",
            "ALERT_ENGINE_DELIVERY_MAX_DELAY": "4",
        }
    )
    poisoned = alert_id("negative-rating", "r-poison")
    slack.poisoned.add(poisoned)
    worker = engine.worker().start()
    try:
        engine.produce(engine.kafka.ratings_topic, encode_all([rating(id="r-poison")]))
        wait_until(lambda: slack.refused_posts.get(poisoned, 0) >= 1, timeout=60)
        # The same destination and the other one take every other alert while it is retried.
        others = [f"r-fine-{n}" for n in range(6)]
        produced = time.monotonic()
        engine.produce(engine.kafka.ratings_topic, encode_all([rating(id=i) for i in others]))
        wait_until(lambda: len(slack.posts()) == len(others), timeout=60)
        engine.wait_for(lambda: len(engine.delivered()) == len(others) + 1, timeout=60)
        took = time.monotonic() - produced
        assert took < 8.0, f"the others waited {took:.1f} s behind the failing alert"
        assert slack.refused_posts[poisoned] < 6  # still being retried meanwhile

        engine.consume(engine.kafka.failed_alerts_topic, 1, timeout=60)
        # As `alert-engine failed list` shows it: to be replayed once the cause is fixed.
        [failed] = asyncio.run(read_failed(engine.kafka))
        assert (failed.alert_id, failed.destination) == (poisoned, "recovery")
        assert failed.reason == "after 6 attempts: slack: HTTP 500 internal_error"
        # One post per attempt: no retry layer under the delivery's.
        assert slack.refused_posts[poisoned] == 6
        time.sleep(1.0)
        posted = [m.alert_id for m in slack.posts()]
        assert sorted(posted) == sorted(alert_id("negative-rating", i) for i in others)
        desk = [a["id"] for a in engine.delivered()]
        assert sorted(desk) == sorted([poisoned, *(alert_id("negative-rating", i) for i in others)])
    finally:
        worker.stop()


def test_after_an_outage_every_alert_is_posted_once_oldest_first_soon_after_it_ends(
    engine: Engine, slack: SlackStandIn
) -> None:
    # The outage: 20 s of 429 (Retry-After: 5), then 10 s of 500, while alerts arrive.
    # Each alert used to wait out its own backoff (up to 30 s) after Slack was back.
    worker = engine.worker().start()
    try:
        ids = [f"r-out-{n:02d}" for n in range(15)]
        slack.outage(rate_limited=20.0, failing=10.0, retry_after=5)
        outage_end = time.time() + 30.0
        for rating_id in ids:  # one a second, so their ages are plain
            engine.produce(engine.kafka.ratings_topic, encode_all([rating(id=rating_id)]))
            time.sleep(1.0)
        wait_until(lambda: len(slack.posts()) >= len(ids), timeout=120)
        time.sleep(2.0)  # anything posted twice would land by now
        order = {alert_id("negative-rating", i): n for n, i in enumerate(ids)}
        posts = slack.posts()
        posted = [m.alert_id for m in posts]
        assert sorted(posted) == sorted(order), "lost or posted twice"
        assert slack.outage_answers.get(429, 0) > 0 and slack.outage_answers.get(500, 0) > 0
        late = max(m.received_at for m in posts) - outage_end
        print(f"\nFAULT slack-outage-order: last post {late:.1f} s after the outage ended")
        assert late < 12.0, f"the last alert went out {late:.1f} s after the outage ended"
        # After the probe that found Slack answering, the oldest first. They are let through in
        # age order, but a few sends are in flight at once (the window grows 1, 2, 4, ...), and
        # an alert whose last try got a 500 looks itself up in the channel before posting, so
        # its post lands a round trip later: a few pairs swap. (Before, each alert's own timer
        # decided: 23 of the 91 pairs were out of order, newest first.)
        probe, *rest = posted
        ages = [order[i] for i in rest]
        swapped = sum(1 for n, age in enumerate(ages) for later in ages[n + 1 :] if later < age)
        print(f"FAULT slack-outage-order: probe {order[probe]}, then {ages}, {swapped} swapped")
        assert swapped <= 12, f"not oldest first: {ages}"
    finally:
        worker.stop()
