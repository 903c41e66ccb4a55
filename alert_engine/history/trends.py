"""What the dashboard asks of the history beyond the report's figures (`queries`): the share of
cases claimed within their SLA per week or month, and the values each filter can take in a range.

The per-period figures themselves are the report's, grouped by week or month (`queries.report`);
only what the report has no column for is here. Both come from the daily roll-ups (`planner`),
counts and distinct values, exact there for any range. Views the roll-ups cannot answer (two
filters, less than a whole day) read the folded cases (`definitions.CASES`), where a filter means
what it means on every figure (the recovery member: the case's owner, folded from its log).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from alert_engine.history import planner
from alert_engine.history.definitions import CASES, ReportQuery, SlaShare

# Values offered per filter, at most (the most frequent first); a filter is also typed freely.
MAX_OPTIONS = 200
PERIODS = ("week", "month")

# `SlaShare` is `definitions`'; named here too, where the dashboard looks for it.
__all__ = [
    "MAX_OPTIONS",
    "PERIODS",
    "SlaShare",
    "filter_options",
    "sla_shares",
    "sla_sql",
]


def _where(query: ReportQuery) -> sql.Composable:
    filters = [
        sql.SQL("c.{} = {}").format(sql.Identifier(name), sql.Placeholder(f"filter_{name}"))
        for name in sorted(query.filters)
    ]
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(filters) if filters else sql.SQL("")


def sla_sql(query: ReportQuery, period: str) -> sql.Composed:
    """The SLA shares from the folded cases: for the views the roll-ups do not answer (two
    filters, hence few cases; or less than a whole day)."""
    if period not in PERIODS:
        raise ValueError(f"no trend per {period!r} (one of: {', '.join(PERIODS)})")
    return sql.SQL(
        "WITH cases AS ({cases}), timed AS ("
        " SELECT c.{period} AS period, c.claimed_at,"
        " (x.record -> 'sla' ->> 'claim_by')::timestamptz AS claim_by"
        " FROM cases c JOIN alerts x ON x.alert_id = c.alert_id{where}) "
        "SELECT period, count(claim_by) AS with_sla,"
        " count(*) FILTER (WHERE claimed_at <= claim_by) AS claimed_in_time "
        "FROM timed GROUP BY period HAVING count(claim_by) > 0 ORDER BY period"
    ).format(cases=sql.SQL(CASES), period=sql.Identifier(period), where=_where(query))


async def sla_shares(
    conn: psycopg.AsyncConnection[Any], query: ReportQuery, period: str
) -> dict[str, SlaShare]:
    """Per week (`2026-W10`) or month (`2026-03`) of the alerts in `query` that has an alert with
    an SLA (from the daily roll-ups when the view allows, `planner`)."""
    rolled = await planner.sla_shares(conn, query, period)
    if rolled is not None:
        return rolled
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(sla_sql(query, period), query.params())
        rows = await cursor.fetchall()
    return {
        str(row["period"]): SlaShare(int(row["with_sla"]), int(row["claimed_in_time"]))
        for row in rows
    }


async def filter_options(
    conn: psycopg.AsyncConnection[Any], since: Any, until: Any
) -> Mapping[str, list[str]]:
    """The values each filter takes among the alerts fired on the UTC days [since, until) touches,
    sorted (from the daily roll-ups, `planner.filter_options`)."""
    found = await planner.filter_options(conn, since, until, MAX_OPTIONS)
    # A case nobody owns is "-" in the figures: offered too.
    found["member"].append("-")
    return {name: sorted(set(values)) for name, values in found.items()}
