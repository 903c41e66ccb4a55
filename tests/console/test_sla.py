"""Where a case stands against its SLA, for the console: table-driven over the states a case
goes through (unclaimed, claimed in time or late, closed in time or late, not actionable without
a claim), and the queue's column text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alert_engine.alerts import Sla
from alert_engine.cases import Case, CaseState
from alert_engine.console.sla import Standing, sla_status, span_text
from tests.factories import make_alert

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
CLAIM_BY = T0 + timedelta(minutes=30)
RESOLVE_BY = T0 + timedelta(hours=4)


def case(state: CaseState = CaseState.OPEN, **fields: object) -> Case:
    return Case.model_validate({"alert_id": "al-1", "state": state, **fields})


@pytest.mark.parametrize(
    ("the_case", "now", "claim", "resolve", "breached", "summary"),
    [
        (case(), T0 + timedelta(minutes=18), Standing.PENDING, Standing.PENDING, False,
         "Claim: 12 min left"),
        (case(), T0 + timedelta(minutes=95), Standing.BREACHED, Standing.PENDING, True,
         "Claim: overdue by 1 h 05 min"),
        (case(CaseState.CLAIMED, first_claimed_at=T0 + timedelta(minutes=10)),
         T0 + timedelta(hours=1), Standing.MET, Standing.PENDING, False,
         "Resolve: 3 h 00 min left"),
        (case(CaseState.CLAIMED, first_claimed_at=T0 + timedelta(minutes=40)),
         T0 + timedelta(hours=1), Standing.LATE, Standing.PENDING, True,
         "Resolve: 3 h 00 min left"),
        (case(CaseState.CLAIMED, first_claimed_at=T0 + timedelta(minutes=10)),
         T0 + timedelta(hours=5), Standing.MET, Standing.BREACHED, True,
         "Resolve: overdue by 1 h 00 min"),
        (case(CaseState.RESOLVED_NO_FOLLOWUP, first_claimed_at=T0 + timedelta(minutes=10),
              closed_at=T0 + timedelta(hours=2)),
         T0 + timedelta(days=3), Standing.MET, Standing.MET, False, "Resolve: met"),
        (case(CaseState.RESOLVED_FOLLOWUP, first_claimed_at=T0 + timedelta(minutes=10),
              closed_at=T0 + timedelta(hours=5)),
         T0 + timedelta(days=3), Standing.MET, Standing.LATE, True,
         "Resolve: late by 1 h 00 min"),
        # Not actionable needs no claim: closing it in time meets both deadlines.
        (case(CaseState.NOT_ACTIONABLE, closed_at=T0 + timedelta(minutes=5)),
         T0 + timedelta(days=1), Standing.MET, Standing.MET, False, "Resolve: met"),
        # Reopened: the resolution is pending again; the first claim still counts.
        (case(CaseState.REOPENED, first_claimed_at=T0 + timedelta(minutes=10),
              closed_at=T0 + timedelta(hours=1)),
         T0 + timedelta(hours=2), Standing.MET, Standing.PENDING, False,
         "Resolve: 2 h 00 min left"),
    ],
)  # fmt: skip
def test_a_case_stands_against_its_sla_as_a_team_lead_would_count_it(
    the_case: Case, now: datetime, claim: Standing, resolve: Standing, breached: bool, summary: str
) -> None:
    alert = make_alert("r-1", T0).model_copy(
        update={"sla": Sla(claim_by=CLAIM_BY, resolve_by=RESOLVE_BY)}
    )
    status = sla_status(the_case, alert, now)
    assert status.claim is not None and status.resolve is not None
    assert (status.claim.standing, status.resolve.standing) == (claim, resolve)
    assert status.breached is breached
    assert status.summary() == summary


def test_a_route_without_an_sla_shows_none_and_is_never_breached() -> None:
    status = sla_status(case(), make_alert("r-1", T0), T0 + timedelta(days=30))
    assert status.deadlines == () and not status.breached and status.summary() == ""


def test_only_a_claim_deadline() -> None:
    alert = make_alert("r-1", T0).model_copy(update={"sla": Sla(claim_by=CLAIM_BY)})
    status = sla_status(case(), alert, T0)
    assert status.resolve is None and status.summary() == "Claim: 30 min left"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(-5, "0 min"), (59, "0 min"), (3600, "1 h 00 min"), (200_000, "2 d 7 h")],
)
def test_a_span_reads_in_minutes_hours_or_days(seconds: int, text: str) -> None:
    assert span_text(seconds) == text
