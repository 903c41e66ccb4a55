"""`CaseStore.get_many`, the console queue's read: the same cases as `get` (without their
history), in the order asked, an id without a record as a case without an alert; and the
queue's rows from it, SLA included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from alert_engine.alerts import Sla
from alert_engine.cases import Actor, CaseAction, CaseRequest, CaseStore
from alert_engine.console.queue import open_rows
from tests.factories import make_alert

ANA = Actor(id="member:ana", name="Ana Souza", source="console")


async def test_get_many_reads_what_get_reads_in_the_order_asked(redis: Redis, unique: str) -> None:
    cases = CaseStore(redis, f"test-{unique}")
    now = datetime.now(UTC)
    alerts = [make_alert(f"r-{n}") for n in range(5)]
    alerts[1] = alerts[1].model_copy(update={"sla": Sla(claim_by=now - timedelta(minutes=1))})
    for alert in alerts:
        await cases.remember(alert)
    await cases.attempt(alerts[1].id, CaseRequest.of(CaseAction.CLAIM, ANA))
    await cases.attempt(alerts[2].id, CaseRequest.of(CaseAction.NOT_ACTIONABLE, ANA))
    asked = [alerts[3].id, "al-0000", alerts[1].id, alerts[2].id, alerts[0].id]
    many = await cases.get_many(asked)
    assert [case.alert_id for case in many] == asked
    assert many[1].alert is None
    for case in many:
        single = await cases.get(case.alert_id)
        assert case == single.model_copy(update={"history": ()})
    assert await cases.get_many([]) == []

    rows = {row.alert_id: row for row in await open_rows(cases)}
    # Closed (not actionable): not in the queue; claimed after its claim deadline: breached.
    assert set(rows) == {alerts[0].id, alerts[1].id, alerts[3].id, alerts[4].id}
    assert rows[alerts[1].id].sla_breached
    assert rows[alerts[1].id].sla.startswith("Claim: late by")
    assert not rows[alerts[0].id].sla_breached and rows[alerts[0].id].sla == ""
