"""The follow-up agents, driven through Faust's test context, with the session's real Redis."""

import asyncio
from pathlib import Path
from typing import Any

import faust
import faust.topics
import pytest
from redis.asyncio import Redis

from alert_engine.cases import CaseEvent, CaseState
from alert_engine.channels.outbox import read_outbox
from alert_engine.deadletters import DeadLetter
from alert_engine.followup.schedule import FollowupSchedule
from alert_engine.settings import (
    EngineSettings,
    FollowupSettings,
    KafkaSettings,
    RedisSettings,
    Settings,
)
from alert_engine.worker.build import build_worker
from devstack.stack import Endpoints
from tests.factories import make_alert
from tests.followup_factories import case


def settings_for(tmp_path: Path, unique: str, redis_url: str, **followup: Any) -> Settings:
    return Settings(
        kafka=KafkaSettings(bootstrap="127.0.0.1:9"),
        engine=EngineSettings(
            app_id=f"test-{unique}",
            rules_dir=Path(__file__).parents[2] / "rules",
            outbox_path=tmp_path / "outbox.jsonl",
        ),
        redis=RedisSettings(url=redis_url, key_prefix=f"test-{unique}"),
        followup=FollowupSettings(outbox_path=tmp_path / "surveys.jsonl", **followup),
    )


async def test_a_resolved_case_record_schedules_and_a_bad_one_is_dead_lettered(
    tmp_path: Path, unique: str, stack: Endpoints, redis: Redis
) -> None:
    settings = settings_for(tmp_path, unique, stack.redis_url)
    app = build_worker(settings)
    alert = make_alert("r-app")
    async with app.agents["followup-cases"].test_context(sink=[]) as agent:
        await agent.put(case(alert, CaseState.RESOLVED_FOLLOWUP).to_json(), key=alert.id.encode())
        await agent.put(b'{"alert_id": "al-1", "state": "exploded"}', key=b"al-1")
        good, bad = agent.results.values()
    assert good == []
    [dead] = bad
    assert isinstance(dead, DeadLetter)
    assert dead.headers["alert-engine.deadletter.reason"] == b"invalid"
    assert b"state" in dead.headers["alert-engine.deadletter.detail"]
    assert await FollowupSchedule(redis, f"test-{unique}").due_at(alert.id) is not None


@pytest.mark.parametrize(("share", "delivered"), [(0.0, True), (1.0, False)])
async def test_a_held_out_alert_is_recorded_and_surveyed_but_not_delivered(
    tmp_path: Path,
    unique: str,
    stack: Endpoints,
    redis: Redis,
    share: float,
    delivered: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_for(tmp_path, unique, stack.redis_url, holdout_share=share)
    app = build_worker(settings)
    # The delivery agent publishes what it records itself (no broker here): kept for the test.
    published: list[bytes] = []

    async def send(
        self: faust.topics.Topic, *args: object, **kwargs: object
    ) -> asyncio.Future[None]:
        published.append(kwargs["value"])  # type: ignore[arg-type]
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    monkeypatch.setattr(faust.topics.Topic, "send", send)
    alert = make_alert("r-holdout")
    schedule = FollowupSchedule(redis, f"test-{unique}")

    def delivered_ids() -> list[str]:
        return [entry["alert"]["id"] for entry in read_outbox(tmp_path / "outbox.jsonl")]

    async with app.agents["deliver-alerts"].test_context(sink=[]) as agent:
        await agent.put(alert.to_json())
        # Each alert is delivered on a task of its own: wait for what it does.
        for _ in range(200):
            if delivered_ids() or published:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
    scheduled = await schedule.due_at(alert.id)
    if delivered:
        assert (delivered_ids(), published, scheduled) == ([alert.id], [], None)
    else:
        assert delivered_ids() == []
        [record] = [CaseEvent.from_json(raw) for raw in published]
        assert record.state is CaseState.HOLDOUT and record.alert_id == alert.id
        assert scheduled is not None


def test_the_follow_up_policy_is_checked_when_it_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("ALERT_ENGINE_FOLLOWUP_DEFAULT_TIMEZONE", "Mars/Olympus_Mons")
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus_Mons'"):
        FollowupSettings()
    monkeypatch.setenv("ALERT_ENGINE_FOLLOWUP_DEFAULT_TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("ALERT_ENGINE_FOLLOWUP_HOLDOUT_SHARE", "1.5")
    with pytest.raises(ValidationError, match="holdout_share"):
        FollowupSettings()
    monkeypatch.setenv("ALERT_ENGINE_FOLLOWUP_HOLDOUT_SHARE", "0.1")
    monkeypatch.setenv("ALERT_ENGINE_FOLLOWUP_QUIET_START", "22:30")
    policy = FollowupSettings()
    assert (policy.holdout_share, policy.quiet_start.hour, policy.quiet_start.minute) == (
        0.1,
        22,
        30,
    )
