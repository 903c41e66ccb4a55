"""What became of each due survey is told to the worker (for the `followups` topic) once Redis
has it: sent, suppressed, no email; so the history knows every send from Kafka alone."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis

from alert_engine.cases import CaseState
from alert_engine.followup.schedule import Settled
from alert_engine.followup.sends import FollowupSettled
from tests.factories import make_alert
from tests.followup.test_schedule import NOW, Clock, service
from tests.followup_factories import case

pytestmark = pytest.mark.integration


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


async def test_every_settled_survey_is_told_once_with_its_outcome(
    redis: Redis, unique: str, tmp_path: Path, clock: Clock
) -> None:
    told: list[FollowupSettled] = []
    followup = service(redis, unique, tmp_path, clock, suppression_seconds=7 * 86400)

    async def on_settled(settled: FollowupSettled) -> None:
        told.append(settled)

    followup.on_settled = on_settled
    sent, suppressed = make_alert("r-a"), make_alert("r-b")  # the same customer c-1
    no_email = make_alert("r-c", customer={"id": "c-9", "name": "No Mail"})
    await followup.on_case(case(sent, CaseState.RESOLVED_FOLLOWUP, at=NOW))
    await followup.on_case(
        case(suppressed, CaseState.RESOLVED_FOLLOWUP, at=NOW + timedelta(hours=2))
    )
    await followup.on_case(case(no_email, CaseState.RESOLVED_FOLLOWUP, at=NOW))
    clock.now = NOW + timedelta(hours=4)
    assert await followup.send_due() == 1
    assert await followup.send_due() == 0  # nothing settled twice
    assert sorted((t.alert_id, t.outcome) for t in told) == sorted(
        [
            (sent.id, Settled.SENT),
            (suppressed.id, Settled.SUPPRESSED),
            (no_email.id, Settled.NO_EMAIL),
        ]
    )
    [record] = [t for t in told if t.outcome is Settled.SENT]
    assert record.at == clock.now and record.holdout is False and record.rule == sent.rule
    assert FollowupSettled.from_json(record.to_json()) == record
    assert record.survey_id.startswith("sv-")
