import asyncio

from alert_engine.cases import CaseAction, CaseState, CaseStore


async def test_a_case_is_claimed_then_resolved_and_each_change_is_reported(redis, unique):
    cases = CaseStore(redis, f"test-{unique}")
    claim = await cases.apply(
        "al-1", CaseAction.CLAIM, user_id="U1", user_name="ana", source="slack"
    )
    assert claim is not None
    assert (claim.previous_state, claim.state, claim.claimed_by) == (
        CaseState.OPEN,
        CaseState.CLAIMED,
        "U1",
    )
    resolved = await cases.apply(
        "al-1", CaseAction.RESOLVED_FOLLOWUP, user_id="U2", user_name="bo", source="slack"
    )
    assert resolved is not None
    assert resolved.state is CaseState.RESOLVED_FOLLOWUP
    # Who claimed it stays known when someone else resolves it: time to claim needs it.
    assert resolved.claimed_by == "U1" and resolved.claimed_at == claim.at
    case = await cases.get("al-1")
    assert (case.state, case.claimed_by, case.closed_by) == (
        CaseState.RESOLVED_FOLLOWUP,
        "U1",
        "U2",
    )


async def test_a_repeated_or_late_click_changes_nothing(redis, unique):
    cases = CaseStore(redis, f"test-{unique}")
    await cases.apply("al-2", CaseAction.CLAIM, user_id="U1", user_name="ana", source="slack")
    assert (
        await cases.apply("al-2", CaseAction.CLAIM, user_id="U2", user_name="bo", source="slack")
        is None
    )
    assert (await cases.get("al-2")).claimed_by == "U1"
    await cases.apply(
        "al-2", CaseAction.NOT_ACTIONABLE, user_id="U1", user_name="ana", source="slack"
    )
    for action in CaseAction:
        assert (
            await cases.apply("al-2", action, user_id="U3", user_name="cy", source="slack") is None
        )
    assert (await cases.get("al-2")).state is CaseState.NOT_ACTIONABLE


async def test_of_many_simultaneous_claims_exactly_one_wins(redis, unique):
    cases = CaseStore(redis, f"test-{unique}")
    results = await asyncio.gather(
        *(
            cases.apply("al-3", CaseAction.CLAIM, user_id=f"U{n}", user_name="x", source="slack")
            for n in range(20)
        )
    )
    winners = [result for result in results if result is not None]
    assert len(winners) == 1
    assert (await cases.get("al-3")).claimed_by == winners[0].user_id


async def test_an_alert_can_be_resolved_without_being_claimed_first(redis, unique):
    cases = CaseStore(redis, f"test-{unique}")
    change = await cases.apply(
        "al-4", CaseAction.RESOLVED_NO_FOLLOWUP, user_id="U1", user_name="ana", source="outbox"
    )
    assert change is not None and change.previous_state is CaseState.OPEN
    assert change.claimed_by is None
