"""The durable follow-up schedule on the session's real Redis."""

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from itsdangerous import URLSafeSerializer
from redis.asyncio import Redis

from alert_engine.cases import CaseState
from alert_engine.channels import PermanentDeliveryError
from alert_engine.followup.mailer import OutboxMailer, SurveyEmail
from alert_engine.followup.schedule import Settled
from alert_engine.followup.service import FollowupService
from alert_engine.settings import FollowupSettings
from tests.factories import make_alert
from tests.followup_factories import case

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def read_emails(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


def service(
    redis: Redis, unique: str, tmp_path: Path, clock: Clock, **policy: Any
) -> FollowupService:
    settings = FollowupSettings(
        delay_seconds=policy.pop("delay_seconds", 3600),
        quiet_start=time(21, 0),
        quiet_end=time(8, 0),
        token_secret="test-secret",
        **policy,
    )
    return FollowupService(
        settings,
        redis,
        f"test-{unique}",
        OutboxMailer(tmp_path / "surveys.jsonl"),
        public_url="http://survey.test",
        clock=clock,
    )


async def test_a_resolved_case_gets_one_survey_after_the_delay(
    redis: Redis, unique: str, tmp_path: Path, clock: Clock
) -> None:
    followup = service(redis, unique, tmp_path, clock)
    alert = make_alert("r-1")
    resolved = case(alert, CaseState.RESOLVED_FOLLOWUP, at=NOW)
    await followup.on_case(resolved)
    await followup.on_case(resolved)  # the same record consumed again after a rebalance
    assert await followup.schedule.due_at(alert.id) == NOW + timedelta(hours=1)

    clock.now = NOW + timedelta(minutes=59)
    assert await followup.send_due() == 0
    clock.now = NOW + timedelta(hours=1)
    assert await followup.send_due() == 1
    assert await followup.send_due() == 0
    [email] = read_emails(tmp_path / "surveys.jsonl")
    assert email["to"] == "jordan@example.com"
    assert email["alert_id"] == alert.id
    assert email["link"].startswith("http://survey.test/survey/")
    assert email["link"] in email["text"] and email["link"] in email["html"]
    # No customer data in the link, not even encoded in its (signed, readable) token.
    for private in ("jordan", "Jordan", "c-1", "r-1", alert.id):
        assert private not in email["link"]
    token = email["link"].removeprefix("http://survey.test/survey/")
    _, payload = URLSafeSerializer(b"any key").loads_unsafe(token)
    assert set(payload) == {"survey", "expires"}

    # Resolved again after being sent (reopened and resolved once more): no second survey.
    await followup.on_case(case(alert, CaseState.RESOLVED_FOLLOWUP, at=clock.now))
    clock.now += timedelta(hours=2)
    assert await followup.send_due() == 0
    assert await followup.schedule.settled(alert.id) is Settled.SENT


async def test_quiet_hours_of_the_customer_move_the_send(
    redis: Redis, unique: str, tmp_path: Path, clock: Clock
) -> None:
    followup = service(redis, unique, tmp_path, clock)
    # Resolved at 12:00 UTC + 1 h = 13:00 UTC = 22:00 in Tokyo: quiet until 08:00 there.
    alert = make_alert(
        "r-tokyo", customer={"id": "c-9", "email": "a@b.jp", "timezone": "Asia/Tokyo"}
    )
    await followup.on_case(case(alert, CaseState.RESOLVED_FOLLOWUP, at=NOW))
    assert await followup.schedule.due_at(alert.id) == datetime(2026, 6, 1, 23, 0, tzinfo=UTC)


@pytest.mark.parametrize("state", [CaseState.REOPENED, CaseState.NOT_ACTIONABLE])
async def test_reopening_or_not_actionable_cancels_the_survey(
    redis: Redis, unique: str, tmp_path: Path, clock: Clock, state: CaseState
) -> None:
    followup = service(redis, unique, tmp_path, clock)
    alert = make_alert("r-2")
    await followup.on_case(case(alert, CaseState.RESOLVED_FOLLOWUP, at=NOW))
    await followup.on_case(case(alert, state, at=NOW + timedelta(minutes=5)))
    clock.now = NOW + timedelta(days=1)
    assert await followup.send_due() == 0
    assert read_emails(tmp_path / "surveys.jsonl") == []
    # Resolved with follow-up again later: scheduled anew from the new resolve time.
    await followup.on_case(case(alert, CaseState.RESOLVED_FOLLOWUP, at=clock.now))
    clock.now += timedelta(hours=1)
    assert await followup.send_due() == 1


async def test_undoing_a_resolution_cancels_its_survey_and_the_figures_forget_it(
    redis: Redis, unique: str, tmp_path: Path, clock: Clock
) -> None:
    from alert_engine.cases import CaseAction

    followup = service(redis, unique, tmp_path, clock)
    alert = make_alert("r-undo")
    resolved = case(alert, CaseState.RESOLVED_FOLLOWUP, at=NOW).model_copy(
        update={"action": CaseAction.RESOLVED_FOLLOWUP}
    )
    await followup.on_case(case(alert, CaseState.CLAIMED, at=NOW, previous=CaseState.OPEN))
    await followup.on_case(resolved)
    assert await followup.schedule.due_at(alert.id) is not None
    # A note on the resolved case is no second resolution.
    note = case(alert, CaseState.RESOLVED_FOLLOWUP, previous=CaseState.RESOLVED_FOLLOWUP)
    undone = case(
        alert,
        CaseState.CLAIMED,
        at=NOW + timedelta(minutes=2),
        previous=CaseState.RESOLVED_FOLLOWUP,
    ).model_copy(update={"action": CaseAction.UNDO, "undone": CaseAction.RESOLVED_FOLLOWUP})
    await followup.on_case(undone)
    await followup.on_case(note.model_copy(update={"action": CaseAction.NOTE}))
    assert await followup.schedule.due_at(alert.id) is None
    clock.now = NOW + timedelta(days=1)
    assert await followup.send_due() == 0


async def test_a_customer_surveyed_recently_gets_no_second_survey(
    redis: Redis, unique: str, tmp_path: Path, clock: Clock
) -> None:
    followup = service(redis, unique, tmp_path, clock, suppression_seconds=7 * 86400)
    first, second = make_alert("r-a"), make_alert("r-b")  # the same customer c-1
    await followup.on_case(case(first, CaseState.RESOLVED_FOLLOWUP, at=NOW))
    await followup.on_case(case(second, CaseState.RESOLVED_FOLLOWUP, at=NOW + timedelta(hours=2)))
    clock.now = NOW + timedelta(hours=4)
    assert await followup.send_due() == 1
    assert [e["alert_id"] for e in read_emails(tmp_path / "surveys.jsonl")] == [first.id]
    assert await followup.schedule.settled(second.id) is Settled.SUPPRESSED


async def test_a_customer_without_email_is_settled_not_retried(
    redis: Redis, unique: str, tmp_path: Path, clock: Clock
) -> None:
    followup = service(redis, unique, tmp_path, clock)
    alert = make_alert("r-noemail", customer={"id": "c-2", "name": "No Mail"})
    await followup.on_case(case(alert, CaseState.RESOLVED_FOLLOWUP, at=NOW))
    clock.now = NOW + timedelta(hours=2)
    assert await followup.send_due() == 0
    assert await followup.schedule.settled(alert.id) is Settled.NO_EMAIL
    assert await followup.schedule.pending() == 0


async def test_two_workers_claiming_at_once_send_each_survey_once(
    redis: Redis, unique: str, tmp_path: Path, clock: Clock
) -> None:
    first = service(redis, unique, tmp_path, clock)
    second = service(redis, unique, tmp_path, clock)
    alerts = [
        make_alert(f"r-{n}", customer={"id": f"c-{n}", "email": f"{n}@x.test"}) for n in range(40)
    ]
    for alert in alerts:
        await first.on_case(case(alert, CaseState.RESOLVED_FOLLOWUP, at=NOW))
    clock.now = NOW + timedelta(hours=1)
    import asyncio

    sent = await asyncio.gather(first.send_due(), second.send_due(), first.send_due())
    assert sum(sent) == 40
    emails = read_emails(tmp_path / "surveys.jsonl")
    assert sorted(e["alert_id"] for e in emails) == sorted(a.id for a in alerts)


class FailingOnce:
    def __init__(self, inner: OutboxMailer) -> None:
        self.inner = inner
        self.failures = 1

    async def send(self, email: SurveyEmail) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("mail service down")
        await self.inner.send(email)


async def test_a_survey_whose_send_failed_is_sent_when_its_claim_expires(
    redis: Redis, unique: str, tmp_path: Path, clock: Clock
) -> None:
    followup = service(redis, unique, tmp_path, clock, lease_seconds=30)
    followup.mailer = FailingOnce(OutboxMailer(tmp_path / "surveys.jsonl"))
    alert = make_alert("r-retry")
    await followup.on_case(case(alert, CaseState.RESOLVED_FOLLOWUP, at=NOW))
    clock.now = NOW + timedelta(hours=1)
    assert await followup.send_due() == 0
    clock.now += timedelta(seconds=10)
    assert await followup.send_due() == 0  # still claimed by the failed attempt
    clock.now += timedelta(seconds=25)
    assert await followup.send_due() == 1
    assert len(read_emails(tmp_path / "surveys.jsonl")) == 1


async def test_a_rules_own_policy_sets_the_delay_or_turns_the_survey_off(
    redis: Redis, unique: str, tmp_path: Path, clock: Clock
) -> None:
    from alert_engine.rules.spec import FollowupPolicy

    followup = service(redis, unique, tmp_path, clock)
    followup.rule_policies = {
        "negative-rating": FollowupPolicy(delay=timedelta(hours=3)),
        "angry-comment": FollowupPolicy(enabled=False),
    }
    slow = make_alert("r-policy")
    await followup.on_case(case(slow, CaseState.RESOLVED_FOLLOWUP, at=NOW))
    assert await followup.schedule.due_at(slow.id) == NOW + timedelta(hours=3)

    off = make_alert("r-off").model_copy(update={"id": "al-off", "rule": "angry-comment"})
    await followup.on_case(case(off, CaseState.RESOLVED_FOLLOWUP, at=NOW))
    assert await followup.schedule.due_at(off.id) is None


class RefusingMailer:
    """An email service that refuses every email for good (as SendGrid does a bad address)."""

    def __init__(self) -> None:
        self.tried = 0

    async def send(self, email: SurveyEmail) -> None:
        self.tried += 1
        raise PermanentDeliveryError("sendgrid: HTTP 400: invalid to address")


async def test_a_survey_the_email_service_refuses_for_good_is_not_retried(
    redis: Redis, unique: str, tmp_path: Path, clock: Clock
) -> None:
    followup = service(redis, unique, tmp_path, clock, lease_seconds=1)
    mailer = RefusingMailer()
    followup.mailer = mailer
    alert = make_alert("r-refused")
    await followup.on_case(case(alert, CaseState.RESOLVED_FOLLOWUP, at=NOW))
    clock.now = NOW + timedelta(hours=1)
    assert await followup.send_due() == 0
    clock.now += timedelta(minutes=5)  # long past the claim's lease
    assert await followup.send_due() == 0
    assert mailer.tried == 1
    assert await followup.schedule.settled(alert.id) is Settled.REJECTED
