"""The manager's dashboard in Debian's Chromium, served by a real worker on a seeded PostgreSQL
history: signed in, a range and filters changed with the form, the figures shown checked against
those computed from the seed alone, the CSV against the table, the empty state, a phone's width
without horizontal scroll, and every control reached with the keyboard."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import statistics
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, ViewportSize, sync_playwright

from alert_engine.cli.kafka import ensure_topics
from alert_engine.history.presentation import duration
from devstack.postgres import create_database
from devstack.stack import Endpoints
from devstack.workerprocess import WorkerProcess
from tests.dashboard.test_dashboard import (
    backlog_ages,
    grouped,
    lift_interval,
    reasons_text,
    seed,
    seeded,
    shown,
    top_reasons,
    week_end,
)
from tests.engine import Engine
from tests.history_factories import MEMBERS, TEAMS, Story
from tests.system.test_followup_browser import CHROMIUM_ARGS, PHONE, chromium

pytestmark = pytest.mark.integration

DESKTOP = ViewportSize(width=1280, height=900)
QUARTER = "range=custom&since=2026-03-02&until=2026-05-10"
SHOWN_COLUMNS = ("alerts", "claimed", "to_claim", "to_resolve", "not_actionable", "response")


@dataclass
class Served:
    worker: WorkerProcess
    stories: list[Story]


@pytest.fixture(scope="module")
def served(
    stack: Endpoints, postgres_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    unique = uuid.uuid4().hex[:10]
    url = create_database(postgres_server_url, f"dash_{unique}")
    stories = seeded()
    asyncio.run(seed(url, stories))
    engine = Engine(stack, unique, tmp_path_factory.mktemp("dashboard"))
    engine.env["ALERT_ENGINE_DATABASE_URL"] = url
    asyncio.run(ensure_topics(engine.kafka, [engine.kafka.followups_topic]))
    worker = engine.worker().start()
    try:
        yield Served(worker, stories)
    finally:
        worker.stop()


def sign_in(page: Page, served: Served, path: str) -> None:
    page.goto(served.worker.url + path)
    assert "/signin?next=" in page.url
    credentials = served.worker.credentials
    assert credentials is not None
    # The name field has the focus once the page is shown (autofocus); on a loaded machine that
    # can come after the load event, and keys typed before it are lost.
    page.wait_for_function("document.activeElement && document.activeElement.id === 'name'")
    page.keyboard.type(credentials.name)
    page.keyboard.press("Tab")
    page.keyboard.type(credentials.password)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url == served.worker.url + path


def row_cells(page: Page, key: str) -> dict[str, str]:
    row = page.locator(f'#groups tr[data-key="{key}"]')
    names = row.locator("td").evaluate_all("cells => cells.map(c => c.dataset.column)")
    values = row.locator("td").all_inner_texts()
    return dict(zip(names, (value.strip() for value in values), strict=True))


def assert_row(page: Page, key: str, stories: list[Story]) -> None:
    want = shown(stories)
    got = row_cells(page, key)
    assert {name: got[name] for name in SHOWN_COLUMNS} == {
        name: getattr(want, name) for name in SHOWN_COLUMNS
    }, key
    assert (got["lift"], got["samples"]) == (want.lift, want.samples), key
    assert got["lift_ci"] == lift_interval(stories), key


def screenshot(page: Page, name: str) -> None:
    """Into $ALERT_ENGINE_SCREENSHOTS, if set: to look at the page."""
    if os.environ.get("ALERT_ENGINE_SCREENSHOTS"):
        shots = Path(os.environ["ALERT_ENGINE_SCREENSHOTS"])
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
        page.screenshot(path=str(shots / f"{name}-top.png"))


def spreadsheet(key: str) -> str:
    return "'" + key if key[:1] in "=+-@" else key


def until_day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC) + timedelta(days=1)


def test_a_manager_filters_and_ranges_the_dashboard_in_chromium(served: Served) -> None:
    stories = served.stories
    quarter = [s for s in stories if s.fired_at < until_day("2026-05-10")]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=DESKTOP)
            page = context.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            sign_in(page, served, "/dashboard?" + QUARTER)
            screenshot(page, "dashboard-desktop")

            # The quarter by team: every team's figures as computed from the stories.
            by_team = grouped(quarter, "team")
            for team in TEAMS:
                assert_row(page, team, by_team[team])
            assert_row(page, "all", quarter)
            assert "regression to the mean" in page.locator("#meaning").inner_text()
            assert shown(quarter).lift in page.locator("#headline-lift").inner_text()
            assert page.locator("#headline-wait").inner_text().startswith(shown(quarter).to_claim)

            # At 1,280 px the headline columns are in view, and nothing scrolls sideways.
            for header in page.locator("#groups th.headline-column").all():
                box = header.bounding_box()
                assert box is not None and box["x"] + box["width"] <= DESKTOP["width"], (
                    header.inner_text()
                )
            assert page.evaluate("document.documentElement.scrollWidth") <= DESKTOP["width"]
            assert page.evaluate(
                "(() => { const t = document.getElementById('groups');"
                " return t.scrollWidth <= t.parentElement.clientWidth; })()"
            )

            # A filter and another grouping, chosen in the form.
            page.select_option("select[name=team]", "billing")
            page.select_option("select[name=by]", "member")
            with page.expect_navigation():
                page.get_by_role("button", name="Show").click()
            billing = [s for s in quarter if s.team == "billing"]
            by_member = grouped(billing, "member")
            assert set(by_member) <= {*MEMBERS, "outbox", "-"}
            keys = page.locator("#groups tbody tr").evaluate_all(
                "rows => rows.map(r => r.dataset.key)"
            )
            assert keys == [*sorted(by_member), "all"]
            for member, group in by_member.items():
                assert_row(page, member, group)
            assert_row(page, "all", billing)

            # Another range: the last 52 weeks hold every seeded alert (March to May 2026).
            page.select_option("select[name=range]", "52w")
            with page.expect_navigation():
                page.get_by_role("button", name="Show").click()
            assert "range=52w" in page.url
            every_billing = [s for s in stories if s.team == "billing"]
            assert datetime.now(UTC) - timedelta(weeks=52) < min(s.fired_at for s in stories)
            assert_row(page, "all", every_billing)
            for member, group in grouped(every_billing, "member").items():
                assert_row(page, member, group)

            # The trend per week: the alerts of each week, as text beside its bar.
            weeks = grouped(every_billing, "week")
            trend = page.locator("#trend tbody tr")
            assert trend.evaluate_all("rows => rows.map(r => r.dataset.key)") == sorted(weeks)
            top = top_reasons(every_billing)
            now = datetime.now(UTC)
            for week, group in weeks.items():
                cell = page.locator(f'#trend tr[data-key="{week}"] td[data-column="alerts"]')
                assert cell.inner_text().strip() == str(len(group))
                # The backlog at the week's end and the closed cases' reason codes, as text.
                texts = {
                    name: page.locator(
                        f'#trend tr[data-key="{week}"] td[data-column="{name}"]'
                    ).inner_text()
                    for name in ("backlog", "backlog_age", "reasons")
                }
                ages = backlog_ages(every_billing, week_end(week, now))
                assert texts["backlog"] == str(len(ages))
                assert texts["reasons"] == reasons_text(group, top)
                # 52 weeks are read from the daily roll-ups: the median age to the hour.
                middle = statistics.median(ages) if ages else None
                assert texts["backlog_age"] in (
                    {"-"}
                    if middle is None
                    else {duration(middle + shift) for shift in range(-3600, 3601, 30)}
                )
            # Every trend column in view at 1,280 px at 52 weeks, nothing scrolling sideways.
            screenshot(page, "dashboard-trend-52w")
            for header in page.locator("#trend th").all():
                box = header.bounding_box()
                assert box is not None and box["x"] + box["width"] <= DESKTOP["width"], (
                    header.inner_text()
                )
            assert page.evaluate("document.documentElement.scrollWidth") <= DESKTOP["width"]
            assert page.evaluate(
                "(() => { const t = document.getElementById('trend');"
                " return t.scrollWidth <= t.parentElement.clientWidth; })()"
            )

            # The CSV is the view: the same groups, the same figures.
            link = page.get_by_role("link", name="Download CSV")
            href = link.get_attribute("href")
            assert href is not None and "format=csv" in href and "team=billing" in href
            answer = context.request.get(served.worker.url + href)
            assert answer.status == 200
            assert answer.headers["content-type"].startswith("text/csv")
            lines = list(csv.DictReader(io.StringIO(answer.text())))
            # (A key a spreadsheet would take for a formula is quoted, the lone "-" of no
            # owner too.)
            assert [line["member"] for line in lines] == [spreadsheet(key) for key in keys]
            for line, key in zip(lines, keys, strict=True):
                cells = row_cells(page, key)
                assert line["alerts"] == cells["alerts"]
                assert line["claimed"] == cells["claimed"]
                lift = line["holdout_lift_stars"]
                assert (f"{float(lift):+.2f}" if lift else "-") == cells["lift"]

            # A range without alerts says what to do.
            page.select_option("select[name=range]", "custom")
            page.fill("input[name=since]", "2025-01-01")
            page.fill("input[name=until]", "2025-01-31")
            with page.expect_navigation():
                page.get_by_role("button", name="Show").click()
            empty = page.locator("#empty").inner_text()
            assert empty.startswith("No alerts in this range with these filters: widen the range")
            assert "history projection is on" in empty
            assert page.locator("#groups").count() == 0
            screenshot(page, "dashboard-empty")
        finally:
            browser.close()
    assert not [text for text in console if "Content Security Policy" in text], console


def test_the_dashboard_on_a_phone_and_by_keyboard(served: Served) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=PHONE)
            sign_in(page, served, "/dashboard?" + QUARTER + "&by=week")
            screenshot(page, "dashboard-phone")
            # Stacked cards: nothing wider than the phone, every value labelled.
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            first = page.locator("#groups tbody tr").first
            box = first.bounding_box()
            assert box is not None and box["width"] <= PHONE["width"]
            label = first.locator('td[data-column="alerts"]').evaluate(
                "cell => getComputedStyle(cell, '::before').content"
            )
            assert label == '"Alerts"'
            # The trend's rows are cards too, the backlog and the reason codes labelled.
            week = page.locator("#trend tbody tr").first
            box = week.bounding_box()
            assert box is not None and box["width"] <= PHONE["width"]
            for name, text in (("backlog", "Open at end"), ("reasons", "Closed: reason codes")):
                cell = week.locator(f'td[data-column="{name}"]')
                assert cell.evaluate("c => getComputedStyle(c, '::before').content") == f'"{text}"'
                cell_box = cell.bounding_box()
                assert cell_box is not None and cell_box["x"] + cell_box["width"] <= PHONE["width"]

            # Every control in order with Tab (a date field's day, month and year are stops
            # of their own), and the form sent with Enter.
            page.locator("select[name=range]").focus()
            reached: list[str] = []
            for _ in range(40):
                name = page.evaluate(
                    "document.activeElement.name || document.activeElement.textContent.trim()"
                )
                if not reached or reached[-1] != name:
                    reached.append(name)
                if name == "Download CSV":
                    break
                page.keyboard.press("Tab")
            assert reached == [
                "range",
                "since",
                "until",
                "by",
                "team",
                "agent",
                "rule",
                "route",
                "severity",
                "channel",
                "member",
                "reason",
                "Show",
                "Download CSV",
            ]
            page.locator("select[name=by]").focus()
            page.keyboard.press("ArrowDown")  # by week -> by month
            page.locator("button").focus()
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert "by=month" in page.url
            quarter = [s for s in served.stories if s.fired_at < until_day("2026-05-10")]
            months = grouped(quarter, "month")
            keys = page.locator("#groups tbody tr").evaluate_all(
                "rows => rows.map(r => r.dataset.key)"
            )
            assert keys == [*sorted(months), "all"]
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        finally:
            browser.close()
