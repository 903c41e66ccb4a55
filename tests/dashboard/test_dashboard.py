"""The dashboard on the PostgreSQL history: the figures it shows, per group and per week, against
the same figures computed from the seeded stories alone (a differential test over random
histories), its CSV against the view, the form's errors, the empty state and an honest legend."""

from __future__ import annotations

import asyncio
import csv
import io
import random
import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from alert_engine.dashboard.form import DashboardForm, parse
from alert_engine.dashboard.page import answer, load, render
from alert_engine.dashboard.view import DashboardView
from alert_engine.dashboard.view import reasons_text as reasons_cell
from alert_engine.history import rollups
from alert_engine.history.migrate import migrate
from alert_engine.history.presentation import as_csv, duration
from alert_engine.history.queries import DIMENSIONS
from alert_engine.history.records import TopicNames
from alert_engine.history.welch import t_quantile
from alert_engine.history.writer import write
from alert_engine.rules.spec import Severity
from alert_engine.settings import DatabaseSettings
from tests.history_factories import (
    AGENTS,
    CHANNELS,
    MEMBERS,
    START,
    TEAMS,
    Story,
    expected,
    histories,
    rows_of,
)

TOPICS = TopicNames("alerts", "cases", "followups")
# The reason codes the stories close with (`Story.reason`), and "-" for none.
REASONS = ("refund", "apology", "call_back", "-")
# Alerts whose route has an SLA: to be claimed within half an hour.
SLA_SECONDS = 1800.0


def has_sla(story: Story) -> bool:
    return story.number % 3 == 0


def seeded(count: int = 150, seed: int = 16) -> list[Story]:
    """A fixed history over ten weeks from START: every team, agent, channel and member, holdout
    cases, open, reopened, resolved and not actionable ones."""
    rng = random.Random(seed)
    stories = []
    for number in range(count):
        holdout = rng.random() < 0.3
        claimed_by = None if holdout or rng.random() < 0.15 else rng.choice(MEMBERS)
        claim_after = float(rng.randint(30, 7200)) if claimed_by else None
        resolution = (
            None
            if holdout
            else rng.choice(
                ("resolved_followup", "resolved_followup", "resolved_no_followup", "not_actionable")
                + ((None,) if claimed_by else ())
            )
        )
        resolve_after = (claim_after or 0) + rng.randint(60, 86400) if resolution else None
        reopened = resolution is not None and rng.random() < 0.1
        sent = (holdout or (resolution == "resolved_followup" and not reopened)) and (
            rng.random() < 0.9
        )
        answered = sent and rng.random() < 0.7
        stories.append(
            Story(
                number=number,
                fired_at=START + timedelta(minutes=rng.randint(0, 60 * 24 * 70)),
                team=rng.choice(TEAMS),
                agent=rng.choice(AGENTS),
                channel=rng.choice(CHANNELS),
                severity=rng.choice([Severity.HIGH, Severity.CRITICAL]),
                initial_rating=rng.choice([None, 1, 1, 2, 2, 3]),
                initial_nps=rng.choice([None, *range(11)]),
                holdout=holdout,
                claimed_by=claimed_by,
                claim_after=claim_after,
                resolution=resolution,
                resolve_after=resolve_after,
                reopened=reopened,
                sent=sent,
                # Recovered customers rate somewhat higher the second time than held-out ones.
                answer_rating=(
                    min(5, rng.randint(1, 4) + (0 if holdout else 1)) if answered else None
                ),
                answer_nps=rng.choice([None, *range(11)]) if answered else None,
            )
        )
    return stories


async def seed(url: str, stories: Sequence[Story]) -> None:
    """The stories' records written as the projection writes them, and an SLA on some."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await migrate(conn)
        await conn.execute(
            "TRUNCATE alerts, case_transitions, holdout_assignments, followup_sends, "
            "followup_answers, case_facts"
        )
        await write(conn, rows_of(stories, TOPICS))
        timed = [story.alert.id for story in stories if has_sla(story)]
        await conn.execute(
            "UPDATE alerts SET record = jsonb_set(record, '{sla}', jsonb_build_object("
            "'claim_by', to_jsonb(fired_at + make_interval(secs => %s)))) "
            "WHERE alert_id = ANY(%s)",
            (SLA_SECONDS, timed),
        )
        # The roll-ups are derived from the alerts as written: refreshed for the SLAs added.
        async with conn.transaction():
            await rollups.refresh(conn, timed)


async def view_of(url: str, form: DashboardForm) -> tuple[DashboardView, str]:
    view, options = await view_and_options(url, form)
    return view, render(form, view, options, company="Acme")


async def view_and_options(
    url: str, form: DashboardForm
) -> tuple[DashboardView, Mapping[str, list[str]]]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        return await load(conn, form)


# --------------------------------------------------------------- figures from the stories alone


@dataclass(frozen=True)
class Shown:
    """A group's figures as the page must show them, computed from its stories."""

    alerts: str
    claimed: str
    to_claim: str
    to_resolve: str
    not_actionable: str
    response: str
    lift: str
    samples: str


def share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def welch(recovered: list[int], held: list[int]) -> tuple[float, float, float] | None:
    if len(recovered) < 2 or len(held) < 2:
        return None
    stars = statistics.fmean(recovered) - statistics.fmean(held)
    a = statistics.variance(recovered) / len(recovered)
    b = statistics.variance(held) / len(held)
    if a + b == 0:
        return stars, stars, stars
    freedom = (a + b) ** 2 / (a**2 / (len(recovered) - 1) + b**2 / (len(held) - 1))
    margin = t_quantile(0.975, freedom) * (a + b) ** 0.5
    return stars, stars - margin, stars + margin


def changes(stories: Sequence[Story], holdout: bool) -> list[int]:
    return [
        s.answer_rating - s.initial_rating
        for s in stories
        if s.holdout is holdout and s.answer_rating is not None and s.initial_rating is not None
    ]


def shown(stories: Sequence[Story]) -> Shown:
    want = expected(stories)
    lift = welch(changes(stories, False), changes(stories, True))
    return Shown(
        alerts=str(want.alerts),
        claimed=str(want.claimed),
        to_claim=duration(want.median_claim),
        to_resolve=duration(want.median_resolve),
        not_actionable=share(want.not_actionable, want.alerts),
        response=share(want.answered, want.sent),
        lift="-" if lift is None else f"{lift[0]:+.2f}",
        samples=f"{want.recovered_paired} / {want.holdout_paired}",
    )


def lift_interval(stories: Sequence[Story]) -> str:
    lift = welch(changes(stories, False), changes(stories, True))
    return "-" if lift is None else f"{lift[1]:+.2f} to {lift[2]:+.2f}"


def sla_text(stories: Sequence[Story]) -> str:
    timed = [s for s in stories if has_sla(s)]
    in_time = [
        s
        for s in timed
        if s.claimed_by is not None and s.claim_after is not None and s.claim_after <= SLA_SECONDS
    ]
    return f"{share(len(in_time), len(timed))} of {len(timed)}" if timed else "-"


def nps_text(stories: Sequence[Story]) -> str:
    both = [
        s
        for s in stories
        if not s.holdout
        and s.answer_rating is not None
        and s.initial_rating is not None
        and s.initial_nps is not None
        and s.answer_nps is not None
    ]
    if not both:
        return "-"

    def net(scores: list[int]) -> float:
        return 100.0 * (sum(x >= 9 for x in scores) - sum(x <= 6 for x in scores)) / len(scores)

    before = net([s.initial_nps for s in both if s.initial_nps is not None])
    after = net([s.answer_nps for s in both if s.answer_nps is not None])
    return f"{before:.0f} → {after:.0f}"


def week_end(week: str, until: datetime) -> datetime:
    """When a trend week's backlog is counted: the next Monday 00:00 UTC, or the range's end."""
    year, number = week.split("-W")
    monday = date.fromisocalendar(int(year), int(number), 1)
    return min(datetime.combine(monday + timedelta(days=7), time(), UTC), until)


def backlog_ages(stories: Sequence[Story], at: datetime) -> list[float]:
    """The ages at `at` of the cases of `stories` open then (fired before, not held out, not
    closed by then for good)."""
    return [
        (at - s.fired_at).total_seconds()
        for s in stories
        if s.fired_at < at
        and not s.holdout
        and (s.final_state is None or (s.resolved_at is not None and s.resolved_at > at))
    ]


def backlog_texts(stories: Sequence[Story], at: datetime) -> tuple[str, str]:
    """The backlog at `at` as the trend shows it: how many, and their median age."""
    ages = backlog_ages(stories, at)
    return str(len(ages)), duration(statistics.median(ages) if ages else None)


def reasons_text(stories: Sequence[Story], top: Sequence[str]) -> str:
    """The period's closed cases by reason code as the trend shows them: the view's top codes in
    its order, then the others, as shares of the closed cases."""
    closed = [s.reason for s in stories if s.final_state is not None]
    if not closed:
        return "-"
    parts = [f"{code} {share(closed.count(code), len(closed))}" for code in top if code in closed]
    others = sum(code not in top for code in closed)
    if others:
        parts.append(f"other {share(others, len(closed))}")
    return f"{', '.join(parts)} of {len(closed)}"


def top_reasons(stories: Sequence[Story], most: int = 3) -> list[str]:
    codes = [s.reason for s in stories if s.final_state is not None]
    return sorted(set(codes), key=lambda code: (-codes.count(code), code))[:most]


def grouped(stories: Sequence[Story], by: str) -> dict[str, list[Story]]:
    groups: dict[str, list[Story]] = defaultdict(list)
    for story in stories:
        groups[story.key(by)].append(story)
    return dict(groups)


def cells(view: DashboardView) -> dict[str, dict[str, str]]:
    return {
        ("all" if row.total else row.key): {column.name: value for column, value in row.cells}
        for row in view.rows
    }


def assert_shows(row: dict[str, str], stories: Sequence[Story]) -> None:
    want = shown(stories)
    got = {name: row.get(name, "(hidden)") for name in want.__dataclass_fields__}
    assert got == want.__dict__ | (
        {} if "lift" in row else {"lift": "(hidden)", "samples": "(hidden)"}
    )


# ------------------------------------------------------------------------------------ tests


def form(**params: str) -> DashboardForm:
    return parse(params, datetime(2026, 6, 3, 12, 0, tzinfo=UTC))


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    stories=histories(max_size=40),
    by=st.sampled_from(DIMENSIONS),
    start_day=st.integers(0, 40),
    days=st.integers(1, 80),
    team=st.none() | st.sampled_from(TEAMS),
    member=st.none() | st.sampled_from(MEMBERS),
    reason=st.none() | st.sampled_from(REASONS),
)
def test_the_dashboard_shows_the_figures_of_the_stories(
    database_url: str,
    stories: list[Story],
    by: str,
    start_day: int,
    days: int,
    team: str | None,
    member: str | None,
    reason: str | None,
) -> None:
    first = (START + timedelta(days=start_day)).date()
    last = first + timedelta(days=days - 1)
    params = {"range": "custom", "since": f"{first}", "until": f"{last}", "by": by}
    params |= ({"team": team} if team else {}) | ({"member": member} if member else {})
    params |= {"reason": reason} if reason else {}
    chosen = form(**params)
    assert chosen.query is not None and not chosen.problems
    asyncio.run(seed(database_url, stories))
    view, html = asyncio.run(view_of(database_url, chosen))

    since = datetime.combine(first, datetime.min.time(), UTC)
    until = since + timedelta(days=days)
    in_scope = [
        s
        for s in stories
        if since <= s.fired_at < until
        and (team is None or s.team == team)
        and (member is None or s.member == member)
        and (reason is None or s.key("reason") == reason)
    ]
    groups = grouped(in_scope, by)
    shown_cells = cells(view)
    assert sorted(shown_cells) == sorted([*groups, "all"])
    for key, group in groups.items():
        assert_shows(shown_cells[key], group)
    assert_shows(shown_cells["all"], in_scope)
    # The holdout columns and legend only when the range has held-out cases.
    holdout = any(s.holdout and (s.sent or s.answer_rating is not None) for s in in_scope)
    assert view.has_holdout is holdout
    assert ("Lift beyond holdout" in html) is (holdout and bool(in_scope))

    # The trend: one row per week, with the share claimed within the SLA.
    weeks = grouped(in_scope, "week")
    assert [point.period for point in view.trend] == sorted(weeks)
    top = top_reasons(in_scope)
    for point in view.trend:
        assert point.reasons == reasons_text(weeks[point.period], top)
        assert point.alerts.text == str(len(weeks[point.period]))
        assert point.sla == sla_text(weeks[point.period])
        assert point.to_claim == shown(weeks[point.period]).to_claim
        assert point.nps == nps_text(weeks[point.period])
        # The backlog at the week's end: every case of the range fired by then, not only its own.
        assert (point.backlog, point.backlog_age) == backlog_texts(
            in_scope, week_end(point.period, until)
        )

    # The CSV download is this view: the same groups and figures, unrounded.
    lines = list(csv.DictReader(io.StringIO(as_csv(view.report))))
    # (A key a spreadsheet would take for a formula is quoted, the lone "-" of no value too.)
    assert [line[by] for line in lines] == [
        "'" + row.key if row.key[:1] in "=+-@" else row.key for row in view.rows
    ]
    assert [line["alerts"] for line in lines] == [
        shown_cells[row.key]["alerts"] for row in view.rows
    ]
    if not in_scope:
        assert "No alerts in this range" in html


def test_a_seeded_quarter_by_team_answers_the_managers_question(database_url: str) -> None:
    stories = seeded()
    asyncio.run(seed(database_url, stories))
    view, html = asyncio.run(
        view_of(database_url, form(range="custom", since="2026-03-02", until="2026-05-10"))
    )
    in_scope = [s for s in stories if s.fired_at < datetime(2026, 5, 11, tzinfo=UTC)]
    by_team = grouped(in_scope, "team")
    shown_cells = cells(view)
    for team in TEAMS:
        assert_shows(shown_cells[team], by_team[team])
        assert shown_cells[team]["lift_ci"] == lift_interval(by_team[team])
    assert_shows(shown_cells["all"], in_scope)
    # The headline: the lift beyond the holdout with its interval and both samples, what it
    # means, and how long customers waited.
    lift = welch(changes(in_scope, False), changes(in_scope, True))
    assert lift is not None
    text = " ".join(html.split())
    assert f"{lift[0]:+.2f} stars" in text
    assert f"95% CI {lift[1]:+.2f} to {lift[2]:+.2f}" in text
    samples = f"{len(changes(in_scope, False))} recovered, {len(changes(in_scope, True))} held out"
    assert samples in text
    assert "regression to the mean" in text
    assert shown(in_scope).to_claim in text
    # Which team's recovery lifted ratings most beyond the holdout.
    lifts = {
        team: welch(changes(group, False), changes(group, True)) for team, group in by_team.items()
    }
    best = max((lift[0], team) for team, lift in lifts.items() if lift is not None)
    assert view.headline.leader is not None
    assert (view.headline.leader.key, f"{view.headline.leader.lift.stars:+.2f}") == (
        best[1],
        f"{best[0]:+.2f}",
    )
    assert f"Most lift beyond the holdout {best[1]}: {best[0]:+.2f} stars" in text.replace(
        '</dt><dd id="headline-leader">', " "
    )
    assert "Trend per week" in text and "Claimed within SLA" in text
    assert "Open at end" in text and "Closed: reason codes" in text
    # The reason codes: a filter of the form, labelled, offering the codes of the range.
    assert "<label>Reason code" in html and '<option value="reason"' in html

    # Each filter offers the values of the range, and the form keeps the chosen one.
    chosen = form(range="custom", since="2026-03-02", until="2026-03-08", team="billing")
    _, options = asyncio.run(view_and_options(database_url, chosen))
    week = [s for s in stories if s.fired_at < datetime(2026, 3, 9, tzinfo=UTC)]
    for name in ("team", "agent", "channel", "severity"):
        assert options[name] == sorted({s.key(name) for s in week}), name
    assert options["rule"] == ["negative-rating"] and options["route"] == ["default"]
    assert {s.member for s in week} <= set(options["member"])
    assert options["reason"] == sorted({s.key("reason") for s in week})
    assert '<option value="billing" selected>' in render(chosen, None, options, company="Acme")


def test_past_a_year_the_trend_is_per_month(database_url: str) -> None:
    stories = seeded(40)
    asyncio.run(seed(database_url, stories))
    view, html = asyncio.run(
        view_of(database_url, form(range="custom", since="2025-06-01", until="2026-12-31"))
    )
    assert [point.period for point in view.trend] == sorted(grouped(stories, "month"))
    assert "Trend per month" in html


def test_an_empty_range_says_what_to_do_and_no_holdout_is_named(database_url: str) -> None:
    no_holdout = [s for s in seeded(60) if not s.holdout]
    asyncio.run(seed(database_url, no_holdout))
    view, html = asyncio.run(
        view_of(database_url, form(range="custom", since="2025-01-01", until="2025-01-31"))
    )
    assert view.empty
    assert "No alerts in this range: widen the range" in html
    assert "history projection is on" in html
    assert "Download CSV" not in html
    view, html = asyncio.run(view_of(database_url, form(range="52w", team="billing")))
    assert not view.empty and not view.has_holdout
    assert "Lift beyond holdout" not in html and "Holdout uplift" not in html
    assert "no held-out case was surveyed in this range" in html
    assert "nothing to compare the recovered customers with" in html


def test_the_form_tells_each_bad_value() -> None:
    bad = form(range="3y", by="colour", format="pdf", team="x" * 201)
    assert bad.query is None
    assert [problem.split(":")[0] for problem in bad.problems] == [
        "range",
        "group by",
        "format",
        "team",
    ]
    assert form(range="custom", since="2026-05-01").problems == (
        "custom range: give both the first and the last day",
    )
    assert form(range="custom", since="2026-05-01", until="2026-04-01").problems == (
        "custom range: the last day is before the first",
    )
    assert "is not a day" in form(range="custom", since="May 1", until="2026-05-02").problems[0]
    html = render(bad, None, {}, company="Acme")
    assert "This view cannot be shown" in html and "&#39;colour&#39;" in html


def test_presets_and_the_csv_link_keep_the_view() -> None:
    week = form(range="this-week")
    assert week.query is not None
    assert week.query.since == datetime(2026, 6, 1, tzinfo=UTC)  # Monday
    twelve = form(range="12w", by="member", member="lee")
    assert twelve.query is not None
    assert twelve.query.until - twelve.query.since == timedelta(weeks=12)
    assert dict(twelve.query.filters) == {"member": "lee"}
    assert twelve.parameters(format="csv") == "range=12w&by=member&member=lee&format=csv"
    custom = form(range="custom", since="2026-03-01", until="2026-03-31", by="week")
    assert custom.query is not None
    assert custom.query.until == datetime(2026, 4, 1, tzinfo=UTC)  # the last day included
    assert custom.parameters() == "range=custom&since=2026-03-01&until=2026-03-31&by=week"
    assert parse({}, datetime(2026, 6, 3, tzinfo=UTC)).range == "12w"


def settings_for(url: str, timeout: float = 30.0) -> DatabaseSettings:
    return DatabaseSettings(url=SecretStr(url), statement_timeout=timeout)


NOW = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)


def test_the_page_answers_csv_and_tells_each_failure(database_url: str) -> None:
    # No tables yet: say how to make them.
    page = asyncio.run(answer({}, settings_for(database_url), company="Acme", now=NOW))
    assert page.status == 503
    assert b"no tables yet" in page.body and b"alert-engine history migrate" in page.body

    stories = seeded(1500)
    asyncio.run(seed(database_url, stories))
    params = {"range": "custom", "since": "2026-03-02", "until": "2026-05-10", "by": "agent"}
    page = asyncio.run(
        answer({**params, "format": "csv"}, settings_for(database_url), company="Acme", now=NOW)
    )
    assert page.status == 200
    assert page.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert page.headers["Content-Disposition"] == (
        'attachment; filename="alert-engine-outcomes-by-agent-20260302-20260511.csv"'
    )
    lines = list(csv.DictReader(io.StringIO(page.body.decode())))
    in_scope = [s for s in stories if s.fired_at < datetime(2026, 5, 11, tzinfo=UTC)]
    by_agent = grouped(in_scope, "agent")
    assert [line["agent"] for line in lines] == [*sorted(by_agent), "all"]
    assert [int(line["alerts"]) for line in lines] == [
        *(len(by_agent[key]) for key in sorted(by_agent)),
        len(in_scope),
    ]

    # The trend's CSV: a row per week, unrounded, with the backlog at each week's end.
    page = asyncio.run(
        answer(
            {**params, "format": "trend-csv"}, settings_for(database_url), company="Acme", now=NOW
        )
    )
    assert page.status == 200
    assert page.headers["Content-Disposition"] == (
        'attachment; filename="alert-engine-outcomes-per-week-20260302-20260511.csv"'
    )
    weeks = grouped(in_scope, "week")
    until = datetime(2026, 5, 11, tzinfo=UTC)
    lines = list(csv.DictReader(io.StringIO(page.body.decode())))
    assert [line["week"] for line in lines] == sorted(weeks)
    for line in lines:
        assert int(line["alerts"]) == len(weeks[line["week"]])
        count, age = backlog_texts(in_scope, week_end(line["week"], until))
        assert line["open_at_end"] == count
        seconds = line["open_at_end_median_age_seconds"]
        assert duration(float(seconds) if seconds else None) == age
        closed = [s.reason for s in weeks[line["week"]] if s.final_state is not None]
        assert int(line["closed"]) == len(closed)
        assert {code: int(line[f"closed_{code}"]) for code in top_reasons(in_scope, 10)} == {
            code: closed.count(code) for code in top_reasons(in_scope, 10)
        }

    # A view slower than the statement timeout: cancelled, and the page says what to do.
    page = asyncio.run(answer(params, settings_for(database_url, 0.001), company="Acme", now=NOW))
    assert page.status == 503
    assert b"took longer than 0.001 s" in page.body and b"shorter range" in page.body

    # A bad form: 400, nothing asked of the database.
    bad = {"by": "colour"}
    page = asyncio.run(answer(bad, settings_for(database_url), company="Acme", now=NOW))
    assert page.status == 400 and b"group by" in page.body


def test_an_unreachable_database_is_a_503_that_says_so() -> None:
    # Nothing listens on port 1 of the loopback.
    unreachable = settings_for("postgresql://postgres@127.0.0.1:1/history")
    page = asyncio.run(answer({}, unreachable, company="Acme", now=NOW))
    assert page.status == 503
    assert b"does not answer; alerts are still delivered" in page.body


def test_the_trend_names_the_top_reason_codes_and_counts_the_rest_as_other() -> None:
    top = ["refund", "-", "apology"]
    counts = Counter({"refund": 5, "-": 2, "apology": 1, "call_back": 1, "wrong_team": 1})
    # In the view's order, each period alike, so that a column reads down; shares of the closed.
    assert reasons_cell(counts, top) == "refund 50%, no code 20%, apology 10%, other 20% of 10"
    assert reasons_cell(Counter({"apology": 1}), top) == "apology 100% of 1"
    assert reasons_cell(Counter(), top) == "-"
