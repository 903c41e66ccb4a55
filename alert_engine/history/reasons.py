"""The reason codes of the closed cases (resolved or not actionable, as the log says now) per week
or month of the alerts, for the dashboard's trend.

Views the roll-ups answer read their `reason` rows (a case's resolved and not-actionable counts
by the reason code it was closed with) for the whole days and `case_facts` for the partial days
at the edges; views filtered by another dimension than the reason name two dimensions and read
`case_facts` alone (a filter makes them small).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from alert_engine.history import planner, rollups
from alert_engine.history.queries import ReportQuery

NO_CODE = "-"
_FORMAT = {"week": 'IYYY-"W"IW', "month": "YYYY-MM"}


def _edge_sql(query: ReportQuery, where: str, period: str) -> sql.Composed:
    return sql.SQL(
        "SELECT to_char(c.fired_at AT TIME ZONE 'UTC', {fmt}) AS period, {reason} AS reason,"
        " count(*) AS closed FROM case_facts c WHERE {where} AND c.{closed}{filters}"
        " GROUP BY 1, 2"
    ).format(
        fmt=sql.Literal(_FORMAT[period]),
        reason=sql.SQL(rollups.dimension_sql("reason", "c")),
        where=sql.SQL(where),
        closed=sql.SQL(rollups.IS_CLOSED),
        filters=planner.case_filters(query),
    )


def exact_sql(query: ReportQuery, period: str) -> sql.Composed:
    return _edge_sql(query, "(c.fired_at >= %(since)s AND c.fired_at < %(until)s)", period)


def rolled_sql(query: ReportQuery, period: str) -> sql.Composed:
    return sql.SQL(
        "SELECT to_char(r.day, {fmt}) AS period, r.value AS reason,"
        " sum(r.resolved + r.not_actionable) AS closed FROM daily_rollups r"
        " WHERE r.dimension = 'reason' AND r.day >= %(first_day)s AND r.day < %(end_day)s"
        "{value_filter} AND r.resolved + r.not_actionable > 0 GROUP BY 1, 2"
        " UNION ALL {edges}"
    ).format(
        fmt=sql.Literal(_FORMAT[period]),
        value_filter=planner.value_filter(bool(query.filters)),
        edges=_edge_sql(query, planner.EDGE_DAYS, period),
    )


async def closed_reasons(
    conn: psycopg.AsyncConnection[Any], query: ReportQuery, period: str, min_days: int | None = None
) -> dict[str, Counter[str]]:
    """Per week (`2026-W10`) or month (`2026-03`) of `query`'s alerts, how many of their cases
    were closed with each reason code (`NO_CODE` for none); periods without any are left out."""
    if period not in _FORMAT:
        raise ValueError(f"no reason codes per {period!r} (one of: {', '.join(_FORMAT)})")
    # The roll-ups' `reason` rows answer when the reason is the only dimension named.
    per_reason = ReportQuery(query.since, query.until, "reason", query.filters)
    chosen = planner.plan(per_reason, planner.MIN_DAYS if min_days is None else min_days)
    params = query.params()
    statement = exact_sql(query, period)
    if chosen is not None:
        statement = rolled_sql(query, period)
        params |= planner.params(per_reason, chosen)
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(statement, params)
        rows = await cursor.fetchall()
    found: dict[str, Counter[str]] = {}
    for row in rows:
        found.setdefault(str(row["period"]), Counter())[str(row["reason"])] += int(row["closed"])
    return found


def top_codes(per_period: Mapping[str, Counter[str]], most: int) -> list[str]:
    """The `most` codes closing the most cases over all periods (ties: by name)."""
    overall: Counter[str] = Counter()
    for counts in per_period.values():
        overall.update(counts)
    return [code for code, _ in sorted(overall.items(), key=lambda item: (-item[1], item[0]))][
        :most
    ]
