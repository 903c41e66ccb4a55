"""The case lifecycle in Redis: every transition, refusals that say why, undo and reopen in
their time, concurrent clicks, and the Lua script held to the pure model (`lifecycle.decide`)."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from alert_engine.cases import (
    Actor,
    Case,
    CaseAction,
    CaseEvent,
    CasePolicy,
    CaseRequest,
    CaseState,
    CaseStore,
    Refusal,
    RefusalReason,
    decide,
)
from alert_engine.settings import CaseSettings
from tests.factories import make_alert

ANA = Actor(id="U0ANA", name="ana", source="slack")
BO = Actor(id="U0BO", name="bo", source="slack")
T0 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


async def store_with_alerts(
    redis: Redis, unique: str, *keys: str, policy: CasePolicy | None = None
) -> tuple[CaseStore, list[str]]:
    """A case store that was given alerts (as delivery does); their ids."""
    cases = CaseStore(redis, f"test-{unique}", policy)
    alerts = [make_alert(key) for key in keys]
    for alert in alerts:
        await cases.remember(alert)
    return cases, [alert.id for alert in alerts]


class ResolutionFields(TypedDict, total=False):
    reason: str
    note: str


def act(
    action: CaseAction, actor: Actor = ANA, at: datetime = T0, **fields: str | None
) -> CaseRequest:
    return CaseRequest.of(action, actor, at=at, **fields)


async def test_a_case_is_claimed_then_resolved_with_a_reason_and_each_change_is_reported(
    redis: Redis, unique: str
) -> None:
    cases, [al1] = await store_with_alerts(redis, unique, "r-1")
    claim = await cases.attempt(al1, act(CaseAction.CLAIM))
    assert isinstance(claim, CaseEvent)
    assert (claim.previous_state, claim.state, claim.claimed_by, claim.assignee) == (
        CaseState.OPEN,
        CaseState.CLAIMED,
        "U0ANA",
        "U0ANA",
    )
    resolved = await cases.attempt(
        al1,
        act(CaseAction.RESOLVED_FOLLOWUP, BO, T0 + timedelta(minutes=3), reason="refund"),
    )
    assert isinstance(resolved, CaseEvent)
    assert resolved.state is CaseState.RESOLVED_FOLLOWUP and resolved.reason == "refund"
    # Who claimed it stays known when someone else resolves it: time to claim needs it.
    assert resolved.claimed_by == "U0ANA" and resolved.claimed_at == claim.at
    assert resolved.undo_until == T0 + timedelta(minutes=8)
    assert resolved.summary() == "Resolved, follow-up survey to be sent by bo · reason: Refund"
    case = await cases.get(al1)
    assert (case.state, case.claimed_by, case.closed_by, case.reason) == (
        CaseState.RESOLVED_FOLLOWUP,
        "U0ANA",
        "U0BO",
        "refund",
    )
    assert [(e.action, e.user_id) for e in case.history] == [
        (CaseAction.CLAIM, "U0ANA"),
        (CaseAction.RESOLVED_FOLLOWUP, "U0BO"),
    ]
    # The record carries the alert, and reads back as the one model the consumers use.
    assert resolved.alert.key == "r-1"
    assert CaseEvent.from_json(resolved.to_json()) == resolved


async def test_a_repeated_or_out_of_order_click_changes_nothing_and_says_why(
    redis: Redis, unique: str
) -> None:
    cases, [al2] = await store_with_alerts(redis, unique, "r-2")
    await cases.attempt(al2, act(CaseAction.CLAIM))
    again = await cases.attempt(al2, act(CaseAction.CLAIM, BO))
    assert isinstance(again, Refusal) and again.reason is RefusalReason.NOT_FROM_STATE
    assert again.message == "Already claimed by ana: nothing changed."
    assert (await cases.get(al2)).claimed_by == "U0ANA"
    await cases.attempt(al2, act(CaseAction.NOT_ACTIONABLE))
    for action in (CaseAction.CLAIM, CaseAction.UNCLAIM, CaseAction.NOT_ACTIONABLE):
        refused = await cases.attempt(al2, act(action, BO))
        assert isinstance(refused, Refusal)
        assert refused.message.startswith("This case is closed (Not actionable)")
    assert (await cases.get(al2)).state is CaseState.NOT_ACTIONABLE
    assert len((await cases.get(al2)).history) == 2


async def test_of_many_simultaneous_claims_exactly_one_wins(redis: Redis, unique: str) -> None:
    cases, [al3] = await store_with_alerts(redis, unique, "r-3")
    results = await asyncio.gather(
        *(
            cases.attempt(al3, act(CaseAction.CLAIM, Actor(id=f"U{n}", source="slack")))
            for n in range(20)
        )
    )
    winners = [result for result in results if isinstance(result, CaseEvent)]
    assert len(winners) == 1
    assert (await cases.get(al3)).claimed_by == winners[0].user_id


async def test_before_a_claim_only_claim_reassign_and_not_actionable_are_taken(
    redis: Redis, unique: str
) -> None:
    cases, [al4] = await store_with_alerts(redis, unique, "r-4")
    refused = await cases.attempt(al4, act(CaseAction.RESOLVED_NO_FOLLOWUP, reason="apology"))
    assert isinstance(refused, Refusal)
    assert refused.message == "Claim the case before resolving it: nothing changed."
    change = await cases.attempt(al4, act(CaseAction.NOT_ACTIONABLE, note="spam"))
    assert isinstance(change, CaseEvent) and change.previous_state is CaseState.OPEN
    assert change.claimed_by is None and change.note == "spam"


async def test_a_click_on_an_alert_never_delivered_changes_nothing(
    redis: Redis, unique: str
) -> None:
    cases, _ = await store_with_alerts(redis, unique, "r-5")
    for action in CaseAction:
        refused = await cases.attempt(
            "al-ffff", act(action, reason="refund", note="n", assignee="U0BO")
        )
        assert isinstance(refused, Refusal) and refused.reason is RefusalReason.UNKNOWN_CASE
    assert (await cases.get("al-ffff")).state is CaseState.OPEN


async def test_unclaim_and_reassign_move_the_case_between_people(redis: Redis, unique: str) -> None:
    cases, [al6] = await store_with_alerts(redis, unique, "r-6")
    await cases.attempt(al6, act(CaseAction.CLAIM))
    moved = await cases.attempt(
        al6, act(CaseAction.REASSIGN, assignee="U0BO", assignee_name="bo", note="VIP, yours")
    )
    assert isinstance(moved, CaseEvent)
    assert (moved.assignee, moved.state) == ("U0BO", CaseState.CLAIMED)
    assert moved.summary() == "Assigned to bo by ana\n“VIP, yours”"
    same = await cases.attempt(al6, act(CaseAction.REASSIGN, assignee="U0BO"))
    assert (
        isinstance(same, Refusal) and same.message == "The case is already bo's: nothing changed."
    )
    unclaimed = await cases.attempt(al6, act(CaseAction.UNCLAIM, BO))
    assert isinstance(unclaimed, CaseEvent) and unclaimed.state is CaseState.OPEN
    case = await cases.get(al6)
    assert case.assignee is None and case.first_claimed_at == T0
    nobody = await cases.attempt(al6, act(CaseAction.UNCLAIM))
    assert isinstance(nobody, Refusal)
    assert nobody.message == "Nobody has claimed this case: nothing changed."


async def test_a_final_action_can_be_undone_for_a_while_and_then_not(
    redis: Redis, unique: str
) -> None:
    policy = CasePolicy(undo_seconds=300)
    cases, [al7, al8] = await store_with_alerts(redis, unique, "r-7", "r-8", policy=policy)
    await cases.attempt(al7, act(CaseAction.CLAIM))
    await cases.attempt(al7, act(CaseAction.RESOLVED_NO_FOLLOWUP, reason="call_back"))
    # A note in between does not spend the undo.
    await cases.attempt(al7, act(CaseAction.NOTE, BO, T0 + timedelta(seconds=10), note="ok"))
    undone = await cases.attempt(al7, act(CaseAction.UNDO, BO, T0 + timedelta(seconds=300)))
    assert isinstance(undone, CaseEvent)
    assert (undone.previous_state, undone.state, undone.undone) == (
        CaseState.RESOLVED_NO_FOLLOWUP,
        CaseState.CLAIMED,
        CaseAction.RESOLVED_NO_FOLLOWUP,
    )
    assert undone.summary() == "bo undid “Resolve \u2013 no follow-up”: back to Claimed"
    case = await cases.get(al7)
    assert (case.assignee, case.closed_by, case.reason) == ("U0ANA", None, None)
    twice = await cases.attempt(al7, act(CaseAction.UNDO, at=T0 + timedelta(seconds=301)))
    assert isinstance(twice, Refusal) and twice.state is CaseState.CLAIMED

    await cases.attempt(al8, act(CaseAction.NOT_ACTIONABLE))
    late = await cases.attempt(al8, act(CaseAction.UNDO, at=T0 + timedelta(seconds=300.001)))
    assert isinstance(late, Refusal) and late.reason is RefusalReason.UNDO_EXPIRED
    assert late.message == (
        "Too late to undo: a change can be undone for 5 minutes. Reopen the case instead."
    )
    assert (await cases.get(al8)).state is CaseState.NOT_ACTIONABLE


async def test_a_closed_case_reopens_within_the_period_and_not_after(
    redis: Redis, unique: str
) -> None:
    policy = CasePolicy(reopen_seconds=14 * 86400)
    cases, [al9, al10] = await store_with_alerts(redis, unique, "r-9", "r-10", policy=policy)
    for alert in (al9, al10):
        await cases.attempt(alert, act(CaseAction.CLAIM))
        await cases.attempt(alert, act(CaseAction.RESOLVED_FOLLOWUP, reason="refund"))
    reopened = await cases.attempt(al9, act(CaseAction.REOPEN, BO, T0 + timedelta(days=14)))
    assert isinstance(reopened, CaseEvent) and reopened.state is CaseState.REOPENED
    case = await cases.get(al9)
    assert (case.assignee, case.closed_at, case.reason) == (None, None, None)
    # Reopened, the case is worked as an open one.
    assert isinstance(await cases.attempt(al9, act(CaseAction.CLAIM, BO)), CaseEvent)
    late = await cases.attempt(al10, act(CaseAction.REOPEN, at=T0 + timedelta(days=15)))
    assert isinstance(late, Refusal) and late.reason is RefusalReason.REOPEN_EXPIRED
    # The follow-up side reopens whenever the answer comes.
    forced = await cases.attempt(
        al10,
        act(CaseAction.REOPEN, Actor(id="followup", source="followup"), T0 + timedelta(days=15)),
        reopen_limit=False,
    )
    assert isinstance(forced, CaseEvent)
    assert forced.summary() == "Reopened: the customer is still unhappy"


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({}, "Choose a reason before resolving: Refund, Replacement, Apology, Call back"),
        ({"reason": "bribe"}, "'bribe' is not one of the reasons"),
        ({"reason": "other"}, "The reason “Other” needs a note saying what was done."),
        ({"reason": "refund", "note": "x" * 2001}, "The note is 2001 characters long"),
    ],
)
async def test_a_resolution_needs_a_known_reason_and_other_needs_a_note(
    redis: Redis, unique: str, request_fields: ResolutionFields, message: str
) -> None:
    cases, [al11] = await store_with_alerts(redis, unique, "r-11")
    await cases.attempt(al11, act(CaseAction.CLAIM))
    refused = await cases.attempt(al11, act(CaseAction.RESOLVED_FOLLOWUP, **request_fields))
    assert isinstance(refused, Refusal) and refused.message.startswith(message)
    assert (await cases.get(al11)).state is CaseState.CLAIMED
    done = await cases.attempt(
        al11, act(CaseAction.RESOLVED_FOLLOWUP, reason="other", note="sent flowers")
    )
    assert isinstance(done, CaseEvent) and done.note == "sent flowers"


def test_the_reasons_and_periods_are_configured_and_checked_at_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALERT_ENGINE_CASES_REASONS", "refund, voucher,other")
    monkeypatch.setenv("ALERT_ENGINE_CASES_REOPEN_DAYS", "7")
    policy = CasePolicy.of(CaseSettings())
    assert policy.reasons == ("refund", "voucher", "other")
    assert policy.reopen_seconds == 7 * 86400
    monkeypatch.setenv("ALERT_ENGINE_CASES_REASONS", "Refund!")
    with pytest.raises(ValueError, match="reason code 'Refund!'"):
        CaseSettings()


# --------------------------------------------------------------- the script against the model

PEOPLE = [ANA, BO]
# Claims and final actions come up more often, so sequences reach undo and reopen.
ACTIONS = st.sampled_from(
    [*CaseAction, CaseAction.CLAIM, CaseAction.RESOLVED_FOLLOWUP, CaseAction.UNDO]
)
# An action, who takes it, seconds after the previous step, reason, note, assignee, and whether
# the click arrives twice.
Step = tuple[CaseAction, Actor, int, str | None, str | None, str | None, bool]
STEPS = st.lists(
    st.tuples(
        ACTIONS,
        st.sampled_from(PEOPLE),
        # Seconds after the previous step: some within the undo period, some past it.
        st.sampled_from([0, 1, 299, 300, 301, 0, 300, 3600, 3 * 3600, 86400]),
        st.sampled_from(["refund", "refund", None, "other", "bribe"]),
        st.sampled_from([None, "", "a note"]),
        st.sampled_from([None, "U0ANA", "U0BO"]),
        # The same click delivered twice.
        st.booleans(),
    ),
    min_size=1,
    max_size=14,
)


def comparable(case: Case) -> dict[str, Any]:
    return case.model_dump(
        include={
            "state",
            "assignee",
            "assignee_name",
            "claimed_by",
            "claimed_at",
            "first_claimed_at",
            "closed_by",
            "closed_at",
            "reason",
            "undo_action",
            "undo_state",
            "undo_assignee",
            "undo_assignee_name",
            "undo_until",
            "history",
        }
    )


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=STEPS)
async def test_the_lua_script_and_the_pure_model_agree_on_every_sequence(
    redis: Redis, unique: str, steps: list[Step]
) -> None:
    policy = CasePolicy(undo_seconds=300, reopen_seconds=3 * 3600)
    alert = make_alert("r-model")
    cases = CaseStore(redis, f"test-{unique}-{id(steps)}-{len(steps)}", policy)
    await redis.delete(*cases._keys(alert.id))
    await cases.remember(alert)
    model = Case(alert_id=alert.id, alert=alert.to_json().decode())
    at = T0
    for action, actor, wait, reason, note, assignee, twice in steps:
        at += timedelta(seconds=wait)
        request = CaseRequest.of(action, actor, at=at, reason=reason, note=note, assignee=assignee)
        for _ in range(2 if twice else 1):
            expected = decide(model, request, policy)
            got = await cases.attempt(alert.id, request)
            if isinstance(expected, Refusal):
                assert isinstance(got, Refusal), (request, got)
                assert (got.reason, got.message, got.state) == (
                    expected.reason,
                    expected.message,
                    expected.state,
                )
            else:
                model, entry = expected
                assert isinstance(got, CaseEvent), (request, got)
                assert (got.action, got.previous_state, got.state) == (
                    entry.action,
                    entry.previous_state,
                    entry.state,
                )
        stored = await cases.get(alert.id)
        assert comparable(stored) == comparable(model)
