"""The open-cases count behind `alert_engine_cases_open`: a case is open from its alert's first
delivery until someone closes it, over every worker; a count Redis cannot give keeps the last."""

import time

import prometheus_client
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from alert_engine.cases import CASE_TTL_SECONDS, Actor, CaseAction, CaseRequest, CaseStore
from alert_engine.worker.metrics import refresh_before_scrape, serve_open_cases
from tests.factories import make_alert


async def test_a_case_counts_as_open_until_it_is_closed_and_redelivery_does_not_reopen_it(
    redis: Redis, unique: str
) -> None:
    cases = CaseStore(redis, f"test-{unique}")
    alerts = [make_alert(f"r-{n}") for n in range(4)]
    for alert in alerts:
        await cases.remember(alert)
    await cases.remember(alerts[0])  # the same alert delivered to a second destination
    assert await cases.open_count() == 4
    ana = Actor(id="U1", name="ana", source="slack")

    def act(action: CaseAction) -> CaseRequest:
        return CaseRequest.of(action, ana, reason="refund")

    await cases.attempt(alerts[0].id, act(CaseAction.CLAIM))
    assert await cases.open_count() == 4  # claimed is still open work
    await cases.attempt(alerts[0].id, act(CaseAction.RESOLVED_FOLLOWUP))
    await cases.attempt(alerts[1].id, act(CaseAction.NOT_ACTIONABLE))
    await cases.attempt(alerts[2].id, act(CaseAction.CLAIM))
    await cases.attempt(alerts[2].id, act(CaseAction.RESOLVED_NO_FOLLOWUP))
    assert await cases.open_count() == 1
    # Undone or reopened, a case is open work again; closed again, it is not.
    await cases.attempt(alerts[1].id, act(CaseAction.UNDO))
    await cases.attempt(alerts[2].id, act(CaseAction.REOPEN))
    assert await cases.open_count() == 3
    await cases.attempt(alerts[1].id, act(CaseAction.NOT_ACTIONABLE))
    await cases.attempt(alerts[2].id, act(CaseAction.NOT_ACTIONABLE))
    assert await cases.open_count() == 1
    # A closed case's alert delivered again (a redelivery after a restart) stays closed.
    await cases.remember(alerts[1])
    assert await cases.open_count() == 1
    # Another worker's store on the same Redis counts the same cases.
    assert await CaseStore(redis, f"test-{unique}").open_count() == 1


async def test_an_open_case_whose_record_expired_no_longer_counts(
    redis: Redis, unique: str
) -> None:
    cases = CaseStore(redis, f"test-{unique}")
    await cases.remember(make_alert("r-old"))
    assert await cases.open_count() == 1
    assert await cases.open_count(now=time.time() + CASE_TTL_SECONDS + 1) == 0


async def test_the_gauge_serves_the_count_and_keeps_the_last_one_when_counting_fails() -> None:
    registry = CollectorRegistry()
    answers: list[int | Exception] = [3, ConnectionError("redis down"), 5]

    async def count() -> int:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    serve_open_cases(registry, count)

    def served() -> str:
        return prometheus_client.generate_latest(registry).decode()

    assert "\nalert_engine_cases_open " not in served()  # nothing counted yet: no sample
    for expected in (3.0, 3.0, 5.0):
        await refresh_before_scrape(registry)
        assert f"\nalert_engine_cases_open {expected}\n" in served()
