"""The report's figures computed in SQL from the history, against the same figures computed from
the seeded stories alone, and against the plain-Python model of the figures of the same cases
(`tests/history_model.py`; a differential test: the two paths must agree on every figure they
share)."""

from __future__ import annotations

import asyncio
import csv
import io
import math
import random
from collections import defaultdict
from datetime import datetime, timedelta

import orjson
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alert_engine.history.migrate import migrate
from alert_engine.history.presentation import WIDTH, as_csv, as_json, table
from alert_engine.history.queries import (
    DIMENSIONS,
    Cohort,
    Report,
    ReportQuery,
    ReportRow,
    holdout_lift,
    report,
)
from alert_engine.history.records import Rows, Source, TopicNames, read
from alert_engine.history.welch import t_cdf, t_quantile
from alert_engine.history.writer import write
from tests import history_model
from tests.history_factories import MEMBERS, START, TEAMS, Story, expected, histories, rows_of
from tests.history_factories import story as a_story

TOPICS = TopicNames("alerts", "cases", "followups")


async def _report(
    url: str, stories: list[Story], query: ReportQuery, shuffle: random.Random | None = None
) -> Report:
    """The report of the stories' records, written in one batch, or with `shuffle` in any order
    and in batches of any size (as workers on different partitions write them)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await migrate(conn)
        await conn.execute(
            "TRUNCATE alerts, case_transitions, holdout_assignments, followup_sends, "
            "followup_answers, case_facts"
        )
        if shuffle is None:
            await write(conn, rows_of(stories, TOPICS))
        else:
            records = [
                (index, topic, value)
                for index, (topic, _, value) in enumerate(
                    record for story in stories for record in story.records(TOPICS)
                )
            ]
            shuffle.shuffle(records)
            while records:
                size = shuffle.randint(1, 20)
                batch, records = records[:size], records[size:]
                rows = Rows()
                for index, topic, value in batch:
                    read(TOPICS, Source(topic, 0, index), value, rows)
                await write(conn, rows)
        return await report(conn, query)


def approx(value: float | None) -> object:
    return None if value is None else pytest.approx(value, rel=1e-9, abs=1e-9)


def assert_matches(row: ReportRow, stories: list[Story], until: datetime) -> None:
    want = expected(stories, until)
    assert row.median_open_age_seconds == approx(want.median_open_age)
    assert (row.alerts, row.claimed, row.resolved, row.not_actionable, row.still_open) == (
        want.alerts,
        want.claimed,
        want.resolved,
        want.not_actionable,
        want.still_open,
    )
    assert row.median_claim_seconds == approx(want.median_claim)
    assert row.median_resolve_seconds == approx(want.median_resolve)
    assert (row.sent, row.answered) == (want.sent, want.answered)
    assert (row.recovered.paired, row.holdout.paired) == (
        want.recovered_paired,
        want.holdout_paired,
    )
    assert row.recovered.mean_change == approx(want.recovered_mean_change)
    assert row.holdout.mean_change == approx(want.holdout_mean_change)


def assert_cohorts_agree(mine: Cohort, theirs: history_model.Cohort) -> None:
    assert (mine.sent, mine.answered) == (theirs.sent, theirs.answered)
    for name in ("avg_initial", "avg_followup", "nps_before", "nps_after", "uplift"):
        assert getattr(mine, name) == approx(getattr(theirs, name)), name


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    stories=histories(max_size=40),
    by=st.sampled_from(DIMENSIONS),
    start_day=st.integers(0, 40),
    days=st.integers(1, 80),
    team=st.none() | st.sampled_from(TEAMS),
    shuffle=st.none() | st.randoms(use_true_random=False),
)
def test_the_report_in_sql_has_the_figures_of_the_stories(
    database_url: str,
    stories: list[Story],
    by: str,
    start_day: int,
    days: int,
    team: str | None,
    shuffle: random.Random | None,
) -> None:
    since = START + timedelta(days=start_day)
    until = since + timedelta(days=days)
    query = ReportQuery(since, until, by, {"team": team} if team else {})
    result = asyncio.run(_report(database_url, stories, query, shuffle))

    in_scope = [
        s for s in stories if since <= s.fired_at < until and (team is None or s.team == team)
    ]
    groups: dict[str, list[Story]] = defaultdict(list)
    for story in in_scope:
        groups[story.key(by)].append(story)
    assert [row.key for row in result.rows] == sorted(groups)
    for row in result.rows:
        assert_matches(row, groups[row.key], until)
    assert_matches(result.total, in_scope, until)

    # The plain-Python model's figures of the same cases agree on everything they both have.
    if by in history_model.DIMENSIONS:
        facts = [story.facts() for story in in_scope]
        theirs = [*history_model.figures(facts, by), history_model.total(facts)]
        for mine, other in zip([*result.rows, result.total], theirs, strict=True):
            assert (mine.key, mine.alerts, mine.claimed, mine.resolved) == (
                other.key,
                other.alerts,
                other.claimed,
                other.resolved,
            )
            assert mine.median_claim_seconds == approx(other.median_claim_seconds)
            assert_cohorts_agree(mine.recovered, other.recovered)
            assert_cohorts_agree(mine.holdout, other.holdout)
            assert mine.recovery_lift == approx(other.recovery_lift)

    # Every view fits a terminal of 100 columns, and CSV and JSON carry the same figures.
    assert all(len(line) <= WIDTH for line in table(result).splitlines())
    parsed = list(csv.DictReader(io.StringIO(as_csv(result))))
    assert [int(line["alerts"]) for line in parsed] == [
        row.alerts for row in [*result.rows, result.total]
    ]
    document = orjson.loads(as_json(result))
    assert document["total"]["alerts"] == len(in_scope)
    assert [line["key"] for line in document["rows"]] == sorted(groups)


def test_students_t_quantiles_match_the_tables() -> None:
    # Two-sided 95% and 99% critical values.
    table_975 = [(1, 12.706), (2, 4.303), (3, 3.182), (5, 2.571), (10, 2.228), (30, 2.042)]
    for freedom, value in [*table_975, (1000, 1.962), (1e9, 1.960)]:
        assert t_quantile(0.975, freedom) == pytest.approx(value, abs=6e-4)
    for freedom, value in [(1, 63.657), (4, 4.604), (20, 2.845)]:
        assert t_quantile(0.995, freedom) == pytest.approx(value, abs=6e-4)
    assert t_quantile(0.025, 7) == -t_quantile(0.975, 7)


@settings(max_examples=25, deadline=None)
@given(freedom=st.floats(0.5, 60), t=st.floats(-8, 8))
def test_the_t_distribution_for_fractional_degrees_of_freedom(freedom: float, t: float) -> None:
    """Welch's degrees of freedom are fractional: the CDF against the density integrated."""

    def density(x: float) -> float:
        scale = math.exp(math.lgamma((freedom + 1) / 2) - math.lgamma(freedom / 2))
        value: float = (
            scale / math.sqrt(freedom * math.pi) * (1 + x * x / freedom) ** (-(freedom + 1) / 2)
        )
        return value

    steps = 4000
    width = t / steps
    area = width * (
        (density(0) + density(t)) / 2 + sum(density(i * width) for i in range(1, steps))
    )
    assert t_cdf(t, freedom) == pytest.approx(0.5 + area, abs=1e-6)
    if 0.55 < t_cdf(t, freedom) < 0.999:
        assert t_quantile(t_cdf(t, freedom), freedom) == pytest.approx(t, abs=1e-6)


def test_the_holdout_lift_interval_is_welchs() -> None:
    recovered = Cohort(10, 10, 10, 1.5, 3.5, 1.0, None, None)
    held = Cohort(8, 8, 8, 1.5, 2.0, 2.0, None, None)
    lift = holdout_lift(recovered, held)
    assert lift is not None
    assert lift.stars == pytest.approx(1.5)
    a, b = 1.0 / 10, 2.0 / 8
    freedom = (a + b) ** 2 / (a**2 / 9 + b**2 / 7)
    margin = t_quantile(0.975, freedom) * (a + b) ** 0.5
    assert lift.low == pytest.approx(1.5 - margin) and lift.high == pytest.approx(1.5 + margin)
    assert (lift.recovered_n, lift.holdout_n) == (10, 8)
    # A cohort of one answer has no variance: no interval, and the sentence says what to do.
    assert holdout_lift(recovered, Cohort(1, 1, 1, 1.0, 2.0, None, None, None)) is None


def test_the_table_explains_the_lift_and_an_empty_range(database_url: str) -> None:
    # Recovered customers rose 1 -> 4 or 5, held-out ones 1 -> 2 or 3.
    stories = [a_story(n, answer_rating=4 + n % 2, claimed_by=MEMBERS[n % 3]) for n in range(6)]
    stories += [
        a_story(
            10 + n,
            holdout=True,
            claimed_by=None,
            claim_after=None,
            resolution=None,
            resolve_after=None,
            answer_rating=2 + n % 2,
        )
        for n in range(4)
    ]
    query = ReportQuery(START, START + timedelta(days=90), "member")
    result = asyncio.run(_report(database_url, stories, query))
    text = table(result)
    lines = text.splitlines()
    assert lines[2] == "Cases"
    assert [line.split()[0] for line in lines[5:9]] == ["-", "kim", "lee", "noor"]
    lift = result.total.holdout_lift
    assert lift is not None and lift.stars == pytest.approx(3.5 - 1.5)
    assert (lift.recovered_n, lift.holdout_n) == (6, 4)
    assert "Recovery raised ratings: recovered customers' ratings rose +2.00 stars" in " ".join(
        text.split()
    )
    assert "regression to the mean" in text
    assert all(len(line) <= WIDTH for line in lines)
    empty = asyncio.run(
        _report(database_url, stories, ReportQuery(START - timedelta(days=9), START, "team"))
    )
    assert empty.total.alerts == 0
    assert "No alerts in this range" in table(empty)


def test_csv_cells_a_spreadsheet_would_run_are_quoted() -> None:
    no_answers = Cohort(0, 0, 0, None, None, None, None, None)
    row = ReportRow("=HYPERLINK(1)", 1, 0, None, 0, None, 0, 1, 60.0, no_answers, no_answers)
    text = as_csv(Report(ReportQuery(START, START + timedelta(days=1)), [row], row))
    assert "'=HYPERLINK(1)" in text
