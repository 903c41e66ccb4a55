"""The open backlog per trend period (`alert_engine.history.backlog`), from `case_facts` and from
the daily roll-ups, against the cases themselves: how many were open at the end of each week or
month of the view (the last period ending with the range, often mid-day) and their median age
then (exact from `case_facts`, to the hour from the roll-ups)."""

from __future__ import annotations

import asyncio
import statistics
from datetime import UTC, datetime

import psycopg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from alert_engine.history import backlog, planner
from alert_engine.history.backlog import Backlog, PeriodEnd, period_ends
from alert_engine.history.queries import OPEN, ReportQuery
from alert_engine.history.rollups import CLOSED
from tests.history.test_rollups import Fact, _seed, fact_lists, queries

# Far more days than any generated range: the view stays on `case_facts`.
NEVER = 10**6


def open_at(case: Fact, at: datetime) -> bool:
    if case.holdout or case.fired_at >= at:
        return False
    if case.state is None or case.state in OPEN:
        return True
    return case.state in CLOSED and case.state_at is not None and case.state_at > at


def ages(cases: list[Fact], query: ReportQuery, end: PeriodEnd) -> list[float]:
    return [
        (end.at - case.fired_at).total_seconds()
        for case in cases
        if query.since <= case.fired_at < query.until
        and all(case.dims[name] == value for name, value in query.filters.items())
        and open_at(case, end.at)
    ]


async def _both(
    url: str, cases: list[Fact], query: ReportQuery, period: str
) -> tuple[dict[str, Backlog], dict[str, Backlog]]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await _seed(conn, cases)
        exact = await backlog.backlog(conn, query, period, min_days=NEVER)
        rolled = await backlog.backlog(conn, query, period, min_days=1)
    return exact, rolled


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(cases=fact_lists(), query=queries(), period=st.sampled_from(["week", "month"]))
def test_the_backlog_at_each_period_end_is_the_cases_open_then(
    database_url: str, cases: list[Fact], query: ReportQuery, period: str
) -> None:
    assume(planner.plan(ReportQuery(query.since, query.until, period, query.filters), 1))
    exact, rolled = asyncio.run(_both(database_url, cases, query, period))
    want = {}
    for end in period_ends(query.since, query.until, period):
        found = ages(cases, query, end)
        if found:
            want[end.key] = (len(found), statistics.median(found), end)
    assert {key: got.open for key, got in exact.items()} == {k: w[0] for k, w in want.items()}
    assert {key: got.open for key, got in rolled.items()} == {k: w[0] for k, w in want.items()}
    for key, (_, median, end) in want.items():
        assert exact[key].median_age_seconds == pytest.approx(median, abs=1e-3)
        # Each middle case's age to within the hour it fired in.
        got = rolled[key].median_age_seconds
        assert got is not None and abs(got - median) <= 3600 + 1e-6, (key, got, median, end)


def test_periods_end_at_the_next_period_or_the_range() -> None:
    since = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)  # a Wednesday
    until = datetime(2026, 3, 18, 7, 30, tzinfo=UTC)
    assert period_ends(since, until, "week") == [
        PeriodEnd("2026-W10", datetime(2026, 3, 9, tzinfo=UTC)),
        PeriodEnd("2026-W11", datetime(2026, 3, 16, tzinfo=UTC)),
        PeriodEnd("2026-W12", until),
    ]
    assert period_ends(since, datetime(2026, 5, 1, tzinfo=UTC), "month") == [
        PeriodEnd("2026-03", datetime(2026, 4, 1, tzinfo=UTC)),
        PeriodEnd("2026-04", datetime(2026, 5, 1, tzinfo=UTC)),
    ]
    # The roll-ups count whole days: a mid-day end is looked at from the next midnight.
    assert period_ends(since, until, "week")[-1].day == datetime(2026, 3, 19).date()
    assert period_ends(since, until, "week")[0].day == datetime(2026, 3, 9).date()
