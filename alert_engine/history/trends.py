"""What the dashboard asks of the history beyond the report's figures (`queries`): the share of
cases claimed within their SLA per week or month, and the values each filter can take in a range.

The per-period figures themselves are the report's, grouped by week or month (`queries.report`);
only what the report has no column for is here. The SQL is built as `queries` builds it: values as
placeholders, names as identifiers, the same folded cases (`queries._CASES`) so that a filter by
the recovery member means the same thing on every figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from alert_engine.history.queries import _CASES, FILTERS, ReportQuery

# Values offered per filter, at most (the most frequent first); a filter is also typed freely.
MAX_OPTIONS = 200
PERIODS = ("week", "month")


@dataclass(frozen=True)
class SlaShare:
    """Cases whose alert carried a claim-by time (its route has an SLA), and those of them
    claimed by then."""

    with_sla: int
    claimed_in_time: int

    @property
    def share(self) -> float | None:
        return self.claimed_in_time / self.with_sla if self.with_sla else None


def _where(query: ReportQuery) -> sql.Composable:
    filters = [
        sql.SQL("c.{} = {}").format(sql.Identifier(name), sql.Placeholder(f"filter_{name}"))
        for name in sorted(query.filters)
    ]
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(filters) if filters else sql.SQL("")


def params(query: ReportQuery) -> dict[str, Any]:
    values: dict[str, Any] = {"since": query.since, "until": query.until}
    values.update({f"filter_{name}": value for name, value in query.filters.items()})
    return values


def sla_sql(query: ReportQuery, period: str) -> sql.Composed:
    if period not in PERIODS:
        raise ValueError(f"no trend per {period!r} (one of: {', '.join(PERIODS)})")
    return sql.SQL(
        "WITH cases AS ({cases}), timed AS ("
        " SELECT c.{period} AS period, c.claimed_at,"
        " (x.record -> 'sla' ->> 'claim_by')::timestamptz AS claim_by"
        " FROM cases c JOIN alerts x ON x.alert_id = c.alert_id{where}) "
        "SELECT period, count(claim_by) AS with_sla,"
        " count(*) FILTER (WHERE claimed_at <= claim_by) AS claimed_in_time "
        "FROM timed GROUP BY period ORDER BY period"
    ).format(cases=sql.SQL(_CASES), period=sql.Identifier(period), where=_where(query))


async def sla_shares(
    conn: psycopg.AsyncConnection[Any], query: ReportQuery, period: str
) -> dict[str, SlaShare]:
    """Per week (`2026-W10`) or month (`2026-03`) of the alerts in `query`."""
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(sla_sql(query, period), params(query))
        rows = await cursor.fetchall()
    return {
        str(row["period"]): SlaShare(int(row["with_sla"]), int(row["claimed_in_time"]))
        for row in rows
    }


def options_sql() -> sql.Composed:
    parts = [
        sql.SQL(
            "(SELECT {name}::text AS filter, {column} AS value FROM cases"
            " GROUP BY {column} ORDER BY count(*) DESC, {column} LIMIT {limit})"
        ).format(
            name=sql.Literal(name),
            column=sql.Identifier(name),
            limit=sql.Literal(MAX_OPTIONS),
        )
        for name in FILTERS
    ]
    return sql.SQL("WITH cases AS ({cases}) {parts}").format(
        cases=sql.SQL(_CASES), parts=sql.SQL(" UNION ALL ").join(parts)
    )


async def filter_options(
    conn: psycopg.AsyncConnection[Any], since: Any, until: Any
) -> Mapping[str, list[str]]:
    """The values each filter takes among the alerts fired in [since, until), sorted."""
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(options_sql(), {"since": since, "until": until})
        rows = await cursor.fetchall()
    found: dict[str, list[str]] = {name: [] for name in FILTERS}
    for row in rows:
        if row["value"] is not None:
            found[str(row["filter"])].append(str(row["value"]))
    return {name: sorted(values) for name, values in found.items()}
