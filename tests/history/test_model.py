"""The plain-Python model of the outcome figures (`tests/history_model.py`), checked by hand: it is
the oracle the SQL report is tested against, so its own figures must be right."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.history_model import CaseFacts, Figures, figures, nps, total

MONDAY = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)  # ISO week 2026-W23


def facts(
    team: str = "orders",
    agent: str = "Priya",
    rule: str = "negative-rating",
    at: datetime = MONDAY,
    claim_after: float | None = None,
    resolution: str = "",
    followup: str = "",
    initial: int | None = None,
    after: int | None = None,
    nps_before: int | None = None,
    nps_after: int | None = None,
    holdout: bool = False,
) -> CaseFacts:
    return CaseFacts(
        team=team,
        agent=agent,
        rule=rule,
        alert_at=at,
        holdout=holdout,
        initial_rating=initial,
        initial_nps=nps_before,
        claimed_at=None if claim_after is None else at + timedelta(seconds=claim_after),
        resolution=resolution,
        followup=followup,
        followup_rating=after,
        followup_nps=nps_after,
    )


def fold(cases: list[CaseFacts], by: str) -> list[Figures]:
    return figures(cases, by)


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([], None),
        ([10, 9, 8, 7], 50.0),
        ([0, 6, 10], -100 / 3),
        ([9, 9, 9], 100.0),
        ([None, 3], -100.0),
    ],
)
def test_nps(scores: list[int | None], expected: float | None) -> None:
    if expected is None:
        assert nps(scores) is None
    else:
        assert nps(scores) == pytest.approx(expected)


def test_the_figures_of_a_team() -> None:
    rows = [
        # Claimed after 60 s, resolved, surveyed, answered 4 after 1.
        facts(
            claim_after=60,
            resolution="resolved_followup",
            followup="sent",
            initial=1,
            after=4,
            nps_before=2,
            nps_after=9,
        ),
        # Claimed after 180 s, resolved, surveyed, answered 5 after 1.
        facts(
            claim_after=180,
            resolution="resolved_followup",
            followup="sent",
            initial=1,
            after=5,
            nps_before=3,
            nps_after=10,
        ),
        # Claimed after 120 s, resolved without follow-up.
        facts(claim_after=120, resolution="resolved_no_followup", initial=2),
        # Surveyed, no answer.
        facts(claim_after=600, resolution="resolved_followup", followup="sent", initial=2),
        # Never claimed; not actionable.
        facts(resolution="not_actionable", initial=2),
    ]
    [orders] = fold(rows, "team")
    assert orders.key == "orders"
    assert (orders.alerts, orders.claimed, orders.resolved) == (5, 4, 4)
    assert orders.median_claim_seconds == 150.0
    cohort = orders.recovered
    assert (cohort.sent, cohort.answered) == (3, 2)
    assert cohort.response_rate == pytest.approx(2 / 3)
    # Only answered cases are compared: initial 1 and 1, follow-up 4 and 5.
    assert (cohort.avg_initial, cohort.avg_followup) == (1.0, 4.5)
    assert cohort.uplift == 4.5
    assert (cohort.nps_before, cohort.nps_after) == (-100.0, 100.0)
    assert orders.holdout.sent == 0 and orders.holdout.uplift is None
    assert orders.recovery_lift is None


def test_the_holdout_separates_the_lift_caused_by_recovery() -> None:
    rows = [
        facts(followup="sent", initial=1, after=4),
        facts(followup="sent", initial=2, after=4),
        facts(followup="sent", initial=1, after=2, holdout=True),
        facts(followup="sent", initial=1, after=1, holdout=True),
        facts(followup="sent", initial=2, holdout=True),
    ]
    [row] = fold(rows, "rule")
    assert row.recovered.uplift == pytest.approx(4 / 1.5)
    assert row.holdout.uplift == pytest.approx(1.5 / 1.0)
    assert (row.holdout.sent, row.holdout.answered) == (3, 2)
    assert row.recovery_lift == pytest.approx((4 / 1.5) / 1.5)


@pytest.mark.parametrize(
    ("by", "keys"),
    [
        ("team", ["billing", "orders"]),
        ("agent", ["Priya", "Sam"]),
        ("rule", ["angry-comment", "negative-rating"]),
        ("week", ["2026-W23", "2026-W24"]),
    ],
)
def test_figures_are_grouped_by_team_agent_rule_or_week(by: str, keys: list[str]) -> None:
    rows = [
        facts(team="orders", agent="Priya", rule="negative-rating", at=MONDAY),
        facts(team="orders", agent="Sam", rule="angry-comment", at=MONDAY + timedelta(days=6)),
        facts(team="billing", agent="Sam", rule="negative-rating", at=MONDAY + timedelta(days=7)),
    ]
    grouped = fold(rows, by)
    assert [row.key for row in grouped] == keys
    assert sum(row.alerts for row in grouped) == 3


def test_no_cases_count_nothing() -> None:
    empty = total([])
    assert (empty.alerts, empty.median_claim_seconds, empty.recovered.response_rate) == (
        0,
        None,
        None,
    )


def test_an_unknown_grouping_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot group by 'queue'"):
        figures([], "queue")
