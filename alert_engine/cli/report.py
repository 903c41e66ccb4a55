"""`alert-engine report`: the recovery outcome figures.

From the outcome history in PostgreSQL (`ALERT_ENGINE_DATABASE_URL`): any date range, filters,
grouping by any dimension or by week or month, as a table, CSV or JSON. The figures exist nowhere
else (Redis keeps only hot state): without a database the command says what to set, and exits 3.
"""

from __future__ import annotations

import asyncio
import re
import sys
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import click

from alert_engine.cli.history import database_settings
from alert_engine.cli.output import EXIT_PROBLEMS, EXIT_UNREACHABLE
from alert_engine.history.queries import DIMENSIONS, FILTERS, ReportQuery

DEFAULT_SINCE = "12w"
NO_DATABASE = (
    "error: the outcome figures need the history database: set "
    "ALERT_ENGINE_DATABASE_URL=postgresql://USER:PASSWORD@HOST:5432/DB, the workers' history "
    "(see docs/analytics.md)"
)
_RELATIVE = re.compile(r"^(\d+)([dw])$")


def parse_time(text: str, *, now: datetime, end: bool = False) -> datetime:
    """`2026-03-01` (a day: its start, or with `end` the start of the next day), an ISO 8601
    time (UTC unless it says otherwise), `7d` / `4w` / `52w` before now, `this-week` (since
    Monday 00:00 UTC), `this-month`, or `now`."""
    value = text.strip().lower()
    if value == "now":
        return now
    if value == "this-week":
        monday = now.date() - timedelta(days=now.weekday())
        return datetime.combine(monday, time(), UTC)
    if value == "this-month":
        return datetime.combine(now.date().replace(day=1), time(), UTC)
    relative = _RELATIVE.match(value)
    if relative is not None:
        amount = int(relative.group(1))
        return now - (
            timedelta(days=amount) if relative.group(2) == "d" else timedelta(weeks=amount)
        )
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        pass
    else:
        return datetime.combine(day + timedelta(days=1) if end else day, time(), UTC)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: expected a date (2026-03-01), an ISO 8601 time, 7d / 4w / 52w, "
            "this-week, this-month or now"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _filter_options(command: Any) -> Any:
    for name in reversed(FILTERS):
        command = click.option(
            f"--{name}",
            f"filter_{name}",
            metavar="VALUE",
            help=f"Only alerts whose {name} is VALUE"
            + {
                "member": " (the recovery member who owns the case).",
                "reason": " (the reason code the case was closed with).",
            }.get(name, "."),
        )(command)
    return command


@click.command()
@click.option("--since", default=None, help=f"Alerts fired from (default {DEFAULT_SINCE} ago).")
@click.option("--until", default="now", show_default=True, help="Alerts fired before.")
@click.option(
    "--by",
    type=click.Choice(DIMENSIONS),
    default="team",
    show_default=True,
    help="One row per value of this dimension, or per ISO week or month of the alert.",
)
@click.option(
    "--format",
    "form",
    type=click.Choice(("table", "csv", "json")),
    default="table",
    show_default=True,
)
@_filter_options
def report(since: str | None, until: str, by: str, form: str, **filters: str | None) -> None:
    """Print the recovery outcome figures: alerts, time to claim and to resolve, follow-ups,
    ratings and NPS before and after, uplift, and the holdout's lift.

    Dates: 2026-03-01, an ISO 8601 time, 7d / 4w / 52w (before now), this-week, this-month.
    """
    now = datetime.now(UTC)
    chosen = {name.removeprefix("filter_"): value for name, value in filters.items() if value}
    start = parse_time(since or DEFAULT_SINCE, now=now)
    end = parse_time(until, now=now, end=True)
    if end <= start:
        raise click.BadParameter("--until must be after --since")
    database = database_settings()
    if database.url is None:
        # Not a usage error: the command is right, the infrastructure it needs is missing.
        click.echo(NO_DATABASE, err=True)
        sys.exit(EXIT_UNREACHABLE)
    from alert_engine.history.presentation import render
    from alert_engine.history.queries import ReportUnavailable, load_report

    try:
        report = asyncio.run(load_report(database, ReportQuery(start, end, by, chosen)))
    except ReportUnavailable as exc:
        import psycopg

        click.echo(f"error: {exc}", err=True)
        unreachable = isinstance(exc.__cause__, psycopg.OperationalError)
        sys.exit(EXIT_UNREACHABLE if unreachable else EXIT_PROBLEMS)
    click.echo(render(report, form), nl=form != "csv")
