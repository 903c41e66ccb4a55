"""The daily roll-ups against `case_facts`: over generated cases and random views, the report from
the roll-ups (whole days) and `case_facts` (the partial days) equals the report from `case_facts`
alone: every count exactly, means, variances and NPS to float rounding, medians within their
bucket (claim, resolve) or hour (the open cases' age); the dashboard's SLA shares and filter values
from the roll-ups are those of the cases. And the writer keeps the roll-ups equal to a rebuild
whatever order the records arrive in, replayed or not."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from alert_engine.history import planner, rollups
from alert_engine.history.migrate import migrate
from alert_engine.history.queries import (
    DIMENSIONS,
    FILTERS,
    OPEN,
    RESOLVED,
    ReportQuery,
    ReportRow,
    exact_report,
)
from alert_engine.history.records import Rows, Source, TopicNames, read
from alert_engine.history.trends import SlaShare
from alert_engine.history.writer import write
from tests.history_factories import histories

BASE = datetime(2026, 3, 1, tzinfo=UTC)
SPAN = 12 * 86400  # the cases fire over twelve days
TOPICS = TopicNames("alerts", "cases", "followups")
STATES = (None, *OPEN, *RESOLVED, "not_actionable")
ORDER = ("rule", "severity", "route", "team", "agent", "channel", "member")
VALUES = {name: (f"{name}-a", f"{name}-b", "-") for name in FILTERS}


@dataclass(frozen=True)
class Fact:
    """One row of `case_facts` (and its alert's claim-by time)."""

    alert_id: str
    dims: dict[str, str]
    fired_at: datetime
    holdout: bool
    claimed_at: datetime | None
    state: str | None
    state_at: datetime | None
    sent: bool
    initial_rating: int | None
    initial_nps: int | None
    followup_rating: int | None
    followup_nps: int | None
    claim_by: datetime | None

    def key(self, by: str) -> str:
        if by == "week":
            return f"{self.fired_at:%G-W%V}"
        if by == "month":
            return f"{self.fired_at:%Y-%m}"
        return self.dims[by]


@st.composite
def facts(draw: st.DrawFn, number: int) -> Fact:
    fired_at = BASE + timedelta(seconds=draw(st.floats(0, SPAN)))
    dims = {name: draw(st.sampled_from(VALUES[name])) for name in FILTERS}
    holdout = draw(st.booleans())
    state = None if holdout else draw(st.sampled_from(STATES))
    claim = draw(st.none() | st.floats(0, 200_000)) if not holdout else None
    later = draw(st.floats(0, 400_000))
    answered = draw(st.booleans())
    return Fact(
        alert_id=f"al-{number}",
        dims=dims | {"reason": dims["reason"] if state else "-"},
        fired_at=fired_at,
        holdout=holdout,
        claimed_at=None if claim is None else fired_at + timedelta(seconds=claim),
        state=state,
        state_at=None if state is None else fired_at + timedelta(seconds=later),
        sent=draw(st.booleans()),
        initial_rating=draw(st.none() | st.integers(1, 5)),
        initial_nps=draw(st.none() | st.integers(0, 10)),
        followup_rating=draw(st.integers(1, 5)) if answered else None,
        followup_nps=draw(st.none() | st.integers(0, 10)) if answered else None,
        claim_by=draw(st.none() | st.just(fired_at + timedelta(minutes=30))),
    )


@st.composite
def fact_lists(draw: st.DrawFn) -> list[Fact]:
    return [draw(facts(number)) for number in range(draw(st.integers(0, 60)))]


@st.composite
def queries(draw: st.DrawFn) -> ReportQuery:
    since = BASE + timedelta(seconds=draw(st.sampled_from([0, 3600 * 7.5, 86400 * 2])))
    since += timedelta(minutes=draw(st.integers(0, 3 * 1440)))
    until = since + timedelta(minutes=draw(st.integers(1440, 12 * 1440)))
    by = draw(st.sampled_from(DIMENSIONS))
    if by in FILTERS:
        filtered = draw(st.sampled_from([None, by]))
    else:
        filtered = draw(st.none() | st.sampled_from(FILTERS))
    filters = {} if filtered is None else {filtered: draw(st.sampled_from(VALUES[filtered]))}
    return ReportQuery(since, until, by, filters)


async def _seed(conn: psycopg.AsyncConnection[Any], cases: list[Fact]) -> None:
    await migrate(conn)
    await conn.execute("TRUNCATE alerts, case_facts")
    async with conn.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO alerts (alert_id, rule, severity, route, team, agent, channel, fired_at,"
            " event_time, record, source_topic, source_partition, source_offset)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'alerts', 0, %s)",
            [
                (
                    case.alert_id,
                    *(case.dims[name] for name in ("rule", "severity", "route", "team")),
                    case.dims["agent"],
                    case.dims["channel"],
                    case.fired_at,
                    case.fired_at,
                    orjson.dumps(
                        {"sla": {"claim_by": case.claim_by.isoformat()}} if case.claim_by else {}
                    ).decode(),
                    index,
                )
                for index, case in enumerate(cases)
            ],
        )
        await cursor.executemany(
            f"INSERT INTO case_facts (alert_id, {', '.join(ORDER)}, fired_at, initial_rating,"
            " initial_nps, holdout, claimed_at, state, state_at,"
            " reason, sent, followup_rating, followup_nps)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    case.alert_id,
                    *(case.dims[name] for name in ORDER),
                    case.fired_at,
                    case.initial_rating,
                    case.initial_nps,
                    case.holdout,
                    case.claimed_at,
                    case.state,
                    case.state_at,
                    None if case.dims["reason"] == "-" else case.dims["reason"],
                    case.sent,
                    case.followup_rating,
                    case.followup_nps,
                )
                for case in cases
            ],
        )
    async with conn.transaction():
        await rollups.rebuild(conn)


def _middles(values: list[float]) -> tuple[float, float] | None:
    ordered = sorted(values)
    return (ordered[(len(ordered) - 1) // 2], ordered[len(ordered) // 2]) if ordered else None


def _assert_median(
    got: float | None, exact: float | None, values: list[float], slack: float
) -> None:
    middles = _middles(values)
    if middles is None:
        assert got is None and exact is None
        return
    assert got is not None and exact is not None
    # Each middle value is told to within its bucket: 5% of it, or a second below one second.
    width = max(slack, max(middles) * (rollups.RATIO - 1), 1.0)
    assert abs(got - exact) <= width + 1e-6, (got, exact, middles)


def _assert_row(got: ReportRow, exact: ReportRow, cases: list[Fact], until: datetime) -> None:
    counts = ("key", "alerts", "claimed", "resolved", "not_actionable", "still_open")
    assert [getattr(got, name) for name in counts] == [getattr(exact, name) for name in counts]
    for mine, theirs in ((got.recovered, exact.recovered), (got.holdout, exact.holdout)):
        assert (mine.sent, mine.answered, mine.paired) == (
            theirs.sent,
            theirs.answered,
            theirs.paired,
        )
        for name in ("avg_initial", "avg_followup", "change_variance", "nps_before", "nps_after"):
            want = getattr(theirs, name)
            assert getattr(mine, name) == (
                None if want is None else pytest.approx(want, rel=1e-9, abs=1e-9)
            ), name
    claims = [(c.claimed_at - c.fired_at).total_seconds() for c in cases if c.claimed_at]
    resolves = [
        (c.state_at - c.fired_at).total_seconds()
        for c in cases
        if c.state in RESOLVED and c.state_at
    ]
    ages = [
        (until - c.fired_at).total_seconds()
        for c in cases
        if not c.holdout and (c.state is None or c.state in OPEN)
    ]
    _assert_median(got.median_claim_seconds, exact.median_claim_seconds, claims, 0)
    _assert_median(got.median_resolve_seconds, exact.median_resolve_seconds, resolves, 0)
    _assert_median(got.median_open_age_seconds, exact.median_open_age_seconds, ages, 3600)


async def _both(url: str, cases: list[Fact], query: ReportQuery) -> None:
    chosen = planner.plan(query, min_days=1)
    assume(chosen is not None)
    assert chosen is not None
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await _seed(conn, cases)
        got = await planner.report(conn, query, chosen)
        exact = await exact_report(conn, query)
        rolled = await planner.sla_shares(conn, query, "week", min_days=1)
        options = await planner.filter_options(conn, query.since, query.until, most=len(cases) + 1)
    in_range = [
        c
        for c in cases
        if query.since <= c.fired_at < query.until
        and all(c.dims[name] == value for name, value in query.filters.items())
    ]
    assert [row.key for row in got.rows] == [row.key for row in exact.rows]
    for mine, theirs in zip(got.rows, exact.rows, strict=True):
        _assert_row(mine, theirs, [c for c in in_range if c.key(query.by) == mine.key], query.until)
    _assert_row(got.total, exact.total, in_range, query.until)
    # The share claimed within the SLA per week, as the cases say.
    timed: dict[str, SlaShare] = {}
    for case in in_range:
        if case.claim_by is not None:
            week = timed.get(case.key("week"), SlaShare(0, 0))
            in_time = case.claimed_at is not None and case.claimed_at <= case.claim_by
            timed[case.key("week")] = SlaShare(week.with_sla + 1, week.claimed_in_time + in_time)
    assert rolled == timed
    # The filters' values: those of the cases of the UTC days the range touches.
    last_day = (query.until - timedelta(microseconds=1)).date()
    touched = [c for c in cases if query.since.date() <= c.fired_at.date() <= last_day]
    assert {name: sorted(values) for name, values in options.items()} == {
        name: sorted({c.dims[name] for c in touched}) for name in FILTERS
    }


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(cases=fact_lists(), query=queries())
def test_the_rollups_give_the_figures_of_the_cases(
    database_url: str, cases: list[Fact], query: ReportQuery
) -> None:
    asyncio.run(_both(database_url, cases, query))


def test_short_or_two_dimension_views_stay_on_the_cases() -> None:
    until = BASE + timedelta(days=200)
    assert planner.plan(ReportQuery(BASE, BASE + timedelta(days=30), "team")) is None
    # The dashboard's 12 weeks (a partial first day, 83 whole ones) read the roll-ups.
    now = BASE + timedelta(days=100, hours=9)
    assert planner.plan(ReportQuery(now - timedelta(weeks=12), now, "team")) is not None
    assert planner.plan(ReportQuery(now - timedelta(weeks=4), now, "team")) is None
    assert planner.plan(ReportQuery(BASE, until, "member", {"team": "x"})) is None
    assert planner.plan(ReportQuery(BASE, until, "team", {"team": "x"})) is not None
    assert planner.plan(ReportQuery(BASE, until, "week", {"agent": "x"})) is not None
    assert planner.plan(ReportQuery(BASE, until, "month")) is not None


async def _rollup_rows(conn: psycopg.AsyncConnection[Any]) -> list[tuple[Any, ...]]:
    cursor = await conn.execute("SELECT * FROM daily_rollups ORDER BY dimension, value, day")
    return await cursor.fetchall()


async def _written_in_any_order(url: str, stories: list[Any], shuffle: random.Random) -> None:
    records = [
        (index, topic, value)
        for index, (topic, _, value) in enumerate(
            record for story in stories for record in story.records(TOPICS)
        )
    ]
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await migrate(conn)
        await conn.execute("TRUNCATE alerts, case_transitions, holdout_assignments, case_facts")
        await conn.execute("TRUNCATE followup_sends, followup_answers")
        # Twice: the second pass is a replay, and must change nothing.
        for _ in range(2):
            shuffle.shuffle(records)
            pending = list(records)
            while pending:
                size = shuffle.randint(1, 15)
                batch, pending = pending[:size], pending[size:]
                rows = Rows()
                for index, topic, value in batch:
                    read(TOPICS, Source(topic, 0, index), value, rows)
                await write(conn, rows)
        kept = await _rollup_rows(conn)
        async with conn.transaction():
            await rollups.rebuild(conn)
        assert kept == await _rollup_rows(conn)
        alerts = await (await conn.execute("SELECT count(*) FROM alerts")).fetchone()
        total = await (
            await conn.execute(
                "SELECT COALESCE(sum(alerts), 0) FROM daily_rollups WHERE value = 'all'"
            )
        ).fetchone()
        assert alerts is not None and total is not None and alerts[0] == total[0] == len(stories)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(stories=histories(max_size=25), shuffle=st.randoms(use_true_random=False))
def test_the_writer_keeps_the_rollups_of_a_rebuild(
    database_url: str, stories: list[Any], shuffle: random.Random
) -> None:
    asyncio.run(_written_in_any_order(database_url, stories, shuffle))
