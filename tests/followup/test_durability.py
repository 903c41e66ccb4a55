"""No survey lost and none sent twice across a Redis restart and a worker restart."""

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis

from alert_engine.cases import CaseState
from devstack.redis_server import RedisServer
from devstack.stack import Endpoints
from tests.engine import Engine
from tests.factories import make_alert
from tests.followup.test_schedule import NOW, Clock, read_emails, service
from tests.followup_factories import case, followup_engine

pytestmark = pytest.mark.integration


def test_a_killed_redis_restarted_from_its_append_only_file_loses_and_repeats_nothing(
    tmp_path: Path, unique: str
) -> None:
    server = RedisServer(tmp_path / "redis-under-test")  # append-only, as deployed
    server.start()
    clock = Clock(NOW)
    alerts = [
        make_alert(f"r-{n}", customer={"id": f"c-{n}", "email": f"{n}@x.test"}) for n in range(20)
    ]

    async def schedule_and_send_half() -> None:
        client = Redis.from_url(server.url)
        followup = service(client, unique, tmp_path, clock)
        for n, alert in enumerate(alerts):
            # The first ten are due in an hour, the others in two.
            at = NOW if n < 10 else NOW + timedelta(hours=1)
            await followup.on_case(case(alert, CaseState.RESOLVED_FOLLOWUP, at=at))
        clock.now = NOW + timedelta(hours=1)
        assert await followup.send_due() == 10
        await client.aclose()

    async def send_the_rest() -> int:
        client = Redis.from_url(server.url)
        followup = service(client, unique, tmp_path, clock)
        # The case records are consumed again after the restart: no survey is scheduled twice.
        for alert in alerts:
            await followup.on_case(case(alert, CaseState.RESOLVED_FOLLOWUP, at=NOW))
        clock.now = NOW + timedelta(hours=3)
        sent = await followup.send_due() + await followup.send_due()
        await client.aclose()
        return sent

    try:
        asyncio.run(schedule_and_send_half())
        server.kill()  # SIGKILL: no shutdown, no final save
        server.start()
        assert asyncio.run(send_the_rest()) == 10
    finally:
        server.stop()
    emails = read_emails(tmp_path / "surveys.jsonl")
    assert sorted(email["alert_id"] for email in emails) == sorted(alert.id for alert in alerts)


@pytest.fixture
def engine(stack: Endpoints, unique: str, tmp_path: Path) -> Engine:
    return followup_engine(stack, unique, tmp_path)


def test_a_worker_killed_before_the_survey_is_due_leaves_it_to_the_next_worker(
    engine: Engine,
) -> None:
    engine.env["ALERT_ENGINE_FOLLOWUP_DELAY_SECONDS"] = "4"
    first = engine.worker("first").start()
    alert = make_alert("r-restart", customer={"id": "c-5", "email": "c5@x.test"})
    engine.produce(
        engine.kafka.cases_topic,
        [case(alert, CaseState.RESOLVED_FOLLOWUP, at=datetime.now(UTC)).to_json()],
    )
    # Scheduled once the worker has consumed the case record; then it dies before the send.
    deadline = time.monotonic() + 20
    while "resolved_followup" not in first.stats().get("cases_in", {}):
        assert time.monotonic() < deadline, first.log_tail()
        time.sleep(0.1)
    first.kill()
    assert read_emails(engine.surveys) == []
    second = engine.worker("second").start()
    try:
        engine.wait_for(lambda: len(read_emails(engine.surveys)) >= 1, timeout=30)
        time.sleep(1.5)  # time for a duplicate to show up, were there one
        [email] = read_emails(engine.surveys)
        assert email["alert_id"] == alert.id
    finally:
        second.stop()


def test_a_worker_rides_out_a_redis_restart_and_sends_the_survey_once(
    engine: Engine, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "own-redis")
    server.start()
    engine.env["ALERT_ENGINE_REDIS_URL"] = server.url
    worker = engine.worker().start()
    try:
        server.kill()
        # Consumed while Redis is down: the case waits for Redis, it is not skipped.
        alert = make_alert("r-redis-down", customer={"id": "c-6", "email": "c6@x.test"})
        engine.produce(
            engine.kafka.cases_topic,
            [case(alert, CaseState.RESOLVED_FOLLOWUP, at=datetime.now(UTC)).to_json()],
        )
        time.sleep(2.0)
        assert read_emails(engine.surveys) == []
        server.start()
        engine.wait_for(lambda: len(read_emails(engine.surveys)) >= 1, timeout=30)
        time.sleep(1.5)
        [email] = read_emails(engine.surveys)
        assert email["alert_id"] == alert.id
    finally:
        worker.stop()
        server.stop()
