"""`/dashboard` from the outcome history in PostgreSQL (`ALERT_ENGINE_DATABASE_URL`): the form,
the figures per group with the holdout's lift, the trend per week or month, and the same view as
CSV (`&format=csv`; the trend: `&format=trend-csv`).

Each request opens its own connection (a page is opened now and then, not thousands of times a
second) with the report's statement timeout; PostgreSQL unreachable is a 503 page that says so,
and the worker goes on delivering.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import faust
import psycopg
from jinja2 import Environment, PackageLoader, select_autoescape

from alert_engine.dashboard.export import trend_csv
from alert_engine.dashboard.form import PRESETS, DashboardForm, parse
from alert_engine.dashboard.view import DashboardView, build
from alert_engine.history.backlog import backlog
from alert_engine.history.presentation import as_csv
from alert_engine.history.queries import DIMENSIONS, FILTERS, ReportQuery, report
from alert_engine.history.reasons import closed_reasons
from alert_engine.history.trends import filter_options, sla_shares
from alert_engine.settings import DatabaseSettings

log = logging.getLogger(__name__)

templates = Environment(
    loader=PackageLoader("alert_engine.dashboard", "templates"),
    autoescape=select_autoescape(["html"], default_for_string=True, default=False),
    trim_blocks=True,
    lstrip_blocks=True,
)

FILTER_LABELS = {
    "team": "Team",
    "agent": "Agent",
    "rule": "Rule",
    "route": "Route",
    "severity": "Severity",
    "channel": "Channel",
    "member": "Recovery member",
    "reason": "Reason code",
}


async def connect(database: DatabaseSettings) -> psycopg.AsyncConnection[Any]:
    """A connection for one page: the report's statement timeout, and no JIT. The folded cases'
    estimated cost is far above `jit_above_cost`, and compiling them took PostgreSQL about 2 s
    per query (`benchmarks/history_scale.py`), more than running them."""
    assert database.url is not None
    conn = await psycopg.AsyncConnection.connect(
        database.url.get_secret_value(), autocommit=True, connect_timeout=5
    )
    timeout_ms = str(int(database.statement_timeout * 1000))
    await conn.execute("SELECT set_config('statement_timeout', %s, false)", (timeout_ms,))
    await conn.execute("SELECT set_config('jit', 'off', false)")
    return conn


async def load(
    conn: psycopg.AsyncConnection[Any], form: DashboardForm
) -> tuple[DashboardView, Mapping[str, list[str]]]:
    query = form.query
    assert query is not None
    figures = await report(conn, query)
    # Grouped by the trend's own period, the figures are the trend: not asked twice.
    trend = (
        figures
        if query.by == form.period
        else await report(conn, ReportQuery(query.since, query.until, form.period, query.filters))
    )
    slas = await sla_shares(conn, query, form.period)
    backlogs = await backlog(conn, query, form.period)
    reasons = await closed_reasons(conn, query, form.period)
    options = await filter_options(conn, query.since, query.until)
    return build(figures, trend, slas, backlogs, reasons), options


def render(
    form: DashboardForm,
    view: DashboardView | None,
    options: Mapping[str, list[str]],
    *,
    company: str,
    unavailable: str | None = None,
) -> str:
    return templates.get_template("dashboard.html").render(
        form=form,
        view=view,
        options=options,
        presets=PRESETS,
        dimensions=DIMENSIONS,
        filters=FILTERS,
        filter_labels=FILTER_LABELS,
        company=company,
        unavailable=unavailable,
    )


def csv_name(form: DashboardForm) -> str:
    assert form.query is not None
    since, until = form.query.since, form.query.until
    by = f"per-{form.period}" if form.format == "trend-csv" else f"by-{form.by}"
    return f"alert-engine-outcomes-{by}-{since:%Y%m%d}-{until:%Y%m%d}.csv"


@dataclass(frozen=True)
class PageAnswer:
    status: int
    body: bytes
    headers: Mapping[str, str]


def _html(status: int, text: str) -> PageAnswer:
    return PageAnswer(status, text.encode(), {"Content-Type": "text/html; charset=utf-8"})


async def answer(
    params: Mapping[str, str], database: DatabaseSettings, *, company: str, now: datetime
) -> PageAnswer:
    """The page (or its CSV) for the request's GET parameters."""
    form = parse(params, now)
    if form.query is None:
        return _html(400, render(form, None, {}, company=company))
    problem: str | None = None
    try:
        conn = await connect(database)
        async with conn:
            view, options = await load(conn, form)
    except psycopg.errors.UndefinedTable:
        problem = (
            "The history database has no tables yet: the worker creates them at start "
            "(`alert-engine history migrate`), then `alert-engine history rebuild` fills them."
        )
    except psycopg.errors.QueryCanceled:
        problem = (
            f"This view took longer than {database.statement_timeout:g} s "
            "(ALERT_ENGINE_DATABASE_STATEMENT_TIMEOUT) and was cancelled: choose a shorter range "
            "or more filters."
        )
    except (psycopg.OperationalError, OSError) as exc:
        log.warning("dashboard: the history database is unreachable: %s", exc)
        problem = (
            "The history database (ALERT_ENGINE_DATABASE_URL) does not answer; alerts are "
            "still delivered, and projected into it when it is back. Reload in a minute."
        )
    if problem is not None:
        return _html(503, render(form, None, {}, company=company, unavailable=problem))
    if form.format in ("csv", "trend-csv"):
        body = as_csv(view.report) if form.format == "csv" else trend_csv(view, form.period)
        return PageAnswer(
            200,
            body.encode(),
            {
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="{csv_name(form)}"',
            },
        )
    return _html(200, render(form, view, options, company=company))


def register_dashboard(app: faust.App, database: DatabaseSettings, *, company: str) -> None:
    @app.page("/dashboard")
    async def dashboard(web: Any, request: Any) -> Any:
        params = {name: str(value) for name, value in request.query.items()}
        page = await answer(params, database, company=company, now=datetime.now(UTC))
        # (aiohttp refuses a charset in `content_type`: the type goes in the headers.)
        return web.bytes(page.body, status=page.status, headers=dict(page.headers))
