"""SendGrid answering 500/503 for a while, then recovering: a real worker emails every alert and
every follow-up survey exactly once, each accepted (202) by SendGrid's contract (Prism)."""

from __future__ import annotations

import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from slack_sdk.signature import SignatureVerifier

from devstack.stack import Endpoints
from standins.sendgrid_prism import PrismMock, Recorded, RecordingProxy
from tests.engine import encode_all
from tests.factories import rating
from tests.followup_factories import followup_engine

pytestmark = pytest.mark.integration

SIGNING_SECRET = "outage-signing-secret"
OUTAGE_SECONDS = 4.0
ALERTS = 3


@pytest.fixture
def sendgrid(tmp_path: Path) -> Iterator[RecordingProxy]:
    mock = PrismMock(tmp_path).start()
    proxy = RecordingProxy(mock.url).start()
    yield proxy
    proxy.stop()
    mock.stop()


def wait_until(what: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.1)


def about(mail: Recorded) -> tuple[str, str | None]:
    """(alert id, survey id or None) from the email's custom args."""
    args = mail.body["personalizations"][0]["custom_args"]
    return args["alert_id"], args.get("survey_id")


def resolve_with_followup(url: str, alert_id: str) -> int:
    """Claimed, then resolved with a follow-up and a reason picked, by Slack clicks."""
    claimed = slack_click(url, alert_id, "claim", {})
    reason = {f"actions:{alert_id}": {"reason": {"selected_option": {"value": "refund"}}}}
    return max(claimed, slack_click(url, alert_id, "resolved_followup", {"values": reason}))


def slack_click(url: str, alert_id: str, action: str, state: dict[str, Any]) -> int:
    body = urllib.parse.urlencode(
        {
            "payload": orjson.dumps(
                {
                    "type": "block_actions",
                    "user": {"id": "U0OPS", "name": "ops"},
                    "channel": {"id": "C0OPS"},
                    "message": {"ts": "1700000000.000100", "blocks": []},
                    "actions": [{"action_id": action, "value": alert_id}],
                    "state": state,
                }
            )
        }
    ).encode()
    timestamp = str(int(time.time()))
    signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=timestamp, body=body)
    # slack_sdk answers None only when it is given no timestamp or no body.
    assert signature is not None
    headers = {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature}
    request = urllib.request.Request(url + "/slack/interactions", data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        status: int = response.status
        return status


def test_after_a_sendgrid_outage_every_alert_and_survey_email_is_sent_exactly_once(
    stack: Endpoints, unique: str, tmp_path: Path, sendgrid: RecordingProxy
) -> None:
    engine = followup_engine(stack, unique, tmp_path)
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "destinations:\n"
        "  leads: {type: email, to: [leads@example.com]}\n"
        "route:\n  destinations: [leads]\n"
    )
    engine.env.update(
        {
            "ALERT_ENGINE_ROUTING_FILE": str(routing),
            "ALERT_ENGINE_SENDGRID_API_KEY": "SG.test-key",
            "ALERT_ENGINE_SENDGRID_HOST": sendgrid.url,
            "ALERT_ENGINE_SLACK_SIGNING_SECRET": SIGNING_SECRET,
            # A survey whose email failed is claimed again after this long.
            "ALERT_ENGINE_FOLLOWUP_LEASE_SECONDS": "1",
        }
    )
    worker = engine.worker().start()
    try:
        sendgrid.outage(OUTAGE_SECONDS)
        engine.produce(
            engine.kafka.ratings_topic,
            encode_all(
                [
                    rating(
                        id=f"r-out-{n}",
                        rating=1,
                        customer={"id": f"c-{n}", "email": f"c{n}@example.com"},
                    )
                    for n in range(ALERTS)
                ]
            ),
        )

        def accepted(kind: str) -> list[Recorded]:
            return [
                mail
                for mail in sendgrid.sent()
                if mail.forwarded and (about(mail)[1] is None) == (kind == "alert")
            ]

        wait_until(lambda: len(accepted("alert")) >= ALERTS, timeout=30)
        alert_ids = sorted(about(mail)[0] for mail in accepted("alert"))
        assert len(set(alert_ids)) == ALERTS

        # The outage again, while the surveys fall due.
        sendgrid.outage(OUTAGE_SECONDS)
        for alert_id in alert_ids:
            assert resolve_with_followup(worker.url, alert_id) == 200
        wait_until(lambda: len(accepted("survey")) >= ALERTS, timeout=30)
        time.sleep(1.5)  # anything sent twice would be sent by now (lease 1 s, poll 0.2 s)

        sent = sendgrid.sent()
        refused = [mail for mail in sent if not mail.forwarded]
        print(f"refused during the outages: {len(refused)}; accepted: {len(sent) - len(refused)}")
        # The outage was hit by both kinds of email, with both statuses.
        assert {about(mail)[1] is None for mail in refused} == {True, False}
        assert {mail.status for mail in refused} == {500, 503}
        # After it, each email reached SendGrid once, and SendGrid accepted it.
        forwarded = [mail for mail in sent if mail.forwarded]
        assert all(mail.status == 202 for mail in forwarded), [m.status for m in forwarded]
        alert_emails = Counter(about(m)[0] for m in forwarded if about(m)[1] is None)
        survey_emails = Counter(about(m)[0] for m in forwarded if about(m)[1] is not None)
        assert alert_emails == dict.fromkeys(alert_ids, 1)
        assert survey_emails == dict.fromkeys(alert_ids, 1)
        assert worker.stats()["alerts_failed"] == {}
    finally:
        worker.stop()
