"""The closed cases' reason codes per trend period (`alert_engine.history.reasons`), from
`case_facts` and from the daily roll-ups' `reason` rows, against the cases themselves."""

from __future__ import annotations

import asyncio
from collections import Counter

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alert_engine.history import reasons
from alert_engine.history.queries import ReportQuery
from alert_engine.history.rollups import CLOSED
from tests.history.test_rollups import Fact, _seed, fact_lists, queries

NEVER = 10**6


async def _both(
    url: str, cases: list[Fact], query: ReportQuery, period: str
) -> tuple[dict[str, Counter[str]], dict[str, Counter[str]]]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await _seed(conn, cases)
        exact = await reasons.closed_reasons(conn, query, period, min_days=NEVER)
        rolled = await reasons.closed_reasons(conn, query, period, min_days=1)
    return exact, rolled


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(cases=fact_lists(), query=queries(), period=st.sampled_from(["week", "month"]))
def test_the_closed_cases_reason_codes_per_period(
    database_url: str, cases: list[Fact], query: ReportQuery, period: str
) -> None:
    exact, rolled = asyncio.run(_both(database_url, cases, query, period))
    want: dict[str, Counter[str]] = {}
    for case in cases:
        if (
            query.since <= case.fired_at < query.until
            and all(case.dims[name] == value for name, value in query.filters.items())
            and case.state in CLOSED
        ):
            want.setdefault(case.key(period), Counter())[case.dims["reason"]] += 1
    assert exact == want
    assert rolled == want


def test_the_top_codes_are_the_most_frequent_over_the_range() -> None:
    per_period = {
        "2026-W10": Counter({"refund": 2, "-": 1}),
        "2026-W11": Counter({"apology": 4, "refund": 1, "call_back": 1}),
    }
    assert reasons.top_codes(per_period, 3) == ["apology", "refund", "-"]
    assert reasons.top_codes({}, 3) == []
