import asyncio

from alert_engine.cases import CaseAction, CaseEvent, CaseState, CaseStore
from tests.factories import make_alert


async def store_with_alerts(redis, unique: str, *keys: str) -> tuple[CaseStore, list[str]]:
    """A case store that was given alerts (as delivery does); their ids."""
    cases = CaseStore(redis, f"test-{unique}")
    alerts = [make_alert(key) for key in keys]
    for alert in alerts:
        await cases.remember(alert)
    return cases, [alert.id for alert in alerts]


async def test_a_case_is_claimed_then_resolved_and_each_change_is_reported(redis, unique):
    cases, [al1] = await store_with_alerts(redis, unique, "r-1")
    claim = await cases.apply(al1, CaseAction.CLAIM, user_id="U1", user_name="ana", source="slack")
    assert claim is not None
    assert (claim.previous_state, claim.state, claim.claimed_by) == (
        CaseState.OPEN,
        CaseState.CLAIMED,
        "U1",
    )
    resolved = await cases.apply(
        al1, CaseAction.RESOLVED_FOLLOWUP, user_id="U2", user_name="bo", source="slack"
    )
    assert resolved is not None
    assert resolved.state is CaseState.RESOLVED_FOLLOWUP
    # Who claimed it stays known when someone else resolves it: time to claim needs it.
    assert resolved.claimed_by == "U1" and resolved.claimed_at == claim.at
    case = await cases.get(al1)
    assert (case.state, case.claimed_by, case.closed_by) == (
        CaseState.RESOLVED_FOLLOWUP,
        "U1",
        "U2",
    )
    # The record carries the alert, and reads back as the one model the consumers use.
    assert resolved.alert.key == "r-1"
    assert CaseEvent.from_json(resolved.to_json()) == resolved


async def test_a_repeated_or_late_click_changes_nothing(redis, unique):
    cases, [al2] = await store_with_alerts(redis, unique, "r-2")
    await cases.apply(al2, CaseAction.CLAIM, user_id="U1", user_name="ana", source="slack")
    assert (
        await cases.apply(al2, CaseAction.CLAIM, user_id="U2", user_name="bo", source="slack")
        is None
    )
    assert (await cases.get(al2)).claimed_by == "U1"
    await cases.apply(al2, CaseAction.NOT_ACTIONABLE, user_id="U1", user_name="ana", source="slack")
    for action in CaseAction:
        assert await cases.apply(al2, action, user_id="U3", user_name="cy", source="slack") is None
    assert (await cases.get(al2)).state is CaseState.NOT_ACTIONABLE


async def test_of_many_simultaneous_claims_exactly_one_wins(redis, unique):
    cases, [al3] = await store_with_alerts(redis, unique, "r-3")
    results = await asyncio.gather(
        *(
            cases.apply(al3, CaseAction.CLAIM, user_id=f"U{n}", user_name="x", source="slack")
            for n in range(20)
        )
    )
    winners = [result for result in results if result is not None]
    assert len(winners) == 1
    assert (await cases.get(al3)).claimed_by == winners[0].user_id


async def test_an_alert_can_be_resolved_without_being_claimed_first(redis, unique):
    cases, [al4] = await store_with_alerts(redis, unique, "r-4")
    change = await cases.apply(
        al4, CaseAction.RESOLVED_NO_FOLLOWUP, user_id="U1", user_name="ana", source="outbox"
    )
    assert change is not None and change.previous_state is CaseState.OPEN
    assert change.claimed_by is None


async def test_a_click_on_an_alert_never_delivered_changes_nothing(redis, unique):
    cases, _ = await store_with_alerts(redis, unique, "r-5")
    for action in CaseAction:
        assert (
            await cases.apply("al-ffff", action, user_id="U1", user_name="ana", source="outbox")
            is None
        )
    assert (await cases.get("al-ffff")).state is CaseState.OPEN
