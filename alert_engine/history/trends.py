"""What the dashboard asks of the history beyond the report's figures (`queries`): the share of
cases claimed within their SLA per week or month, and the values each filter can take in a range.

The per-period figures themselves are the report's, grouped by week or month (`queries.report`);
only what the report has no column for is here. The SQL is built as `queries` builds it: values as
placeholders, names as identifiers, and an alert's dimensions named as the folded cases
(`queries._CASES`) name them, so that a filter means the same thing on every figure; a filter by
the recovery member, who is folded from a case's whole log, uses those folded cases.
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


# An alert's dimensions as the folded cases name them (`queries._CASES`): a blank one is "-".
_DIMENSION = {
    "team": "COALESCE(NULLIF(a.team, ''), '-')",
    "agent": "COALESCE(NULLIF(a.agent, ''), '-')",
    "channel": "COALESCE(NULLIF(a.channel, ''), '-')",
    "rule": "a.rule",
    "route": "a.route",
    "severity": "a.severity",
}
_PERIOD = {
    "week": "to_char(a.fired_at AT TIME ZONE 'UTC', 'IYYY-\"W\"IW')",
    "month": "to_char(a.fired_at AT TIME ZONE 'UTC', 'YYYY-MM')",
}


def sla_sql(query: ReportQuery, period: str) -> sql.Composed:
    if period not in PERIODS:
        raise ValueError(f"no trend per {period!r} (one of: {', '.join(PERIODS)})")
    if {"member", "reason"} & set(query.filters):
        # Who owns a case, and the reason code it was closed with, are folded from its whole
        # log: the report's folded cases.
        return sql.SQL(
            "WITH cases AS ({cases}), timed AS ("
            " SELECT c.{period} AS period, c.claimed_at,"
            " (x.record -> 'sla' ->> 'claim_by')::timestamptz AS claim_by"
            " FROM cases c JOIN alerts x ON x.alert_id = c.alert_id{where}) "
            "SELECT period, count(claim_by) AS with_sla,"
            " count(*) FILTER (WHERE claimed_at <= claim_by) AS claimed_in_time "
            "FROM timed GROUP BY period ORDER BY period"
        ).format(cases=sql.SQL(_CASES), period=sql.Identifier(period), where=_where(query))
    # Otherwise only the alerts with an SLA, and their first claim: far less to read.
    filters = [
        sql.SQL("{} = {}").format(sql.SQL(_DIMENSION[name]), sql.Placeholder(f"filter_{name}"))
        for name in sorted(query.filters)
    ]
    return sql.SQL(
        "SELECT {period} AS period, count(*) AS with_sla,"
        " count(*) FILTER (WHERE claim.at <= (a.record -> 'sla' ->> 'claim_by')::timestamptz)"
        " AS claimed_in_time "
        "FROM alerts a LEFT JOIN LATERAL ("
        " SELECT t.at FROM case_transitions t WHERE t.alert_id = a.alert_id AND t.state = 'claimed'"
        " ORDER BY t.at LIMIT 1) claim ON true "
        "WHERE a.fired_at >= %(since)s AND a.fired_at < %(until)s"
        " AND a.record -> 'sla' ->> 'claim_by' IS NOT NULL{filters} "
        "GROUP BY 1 ORDER BY 1"
    ).format(
        period=sql.SQL(_PERIOD[period]),
        filters=sql.SQL("").join(sql.SQL(" AND ") + f for f in filters),
    )


async def sla_shares(
    conn: psycopg.AsyncConnection[Any], query: ReportQuery, period: str
) -> dict[str, SlaShare]:
    """Per week (`2026-W10`) or month (`2026-03`) of the alerts in `query` (from the daily
    roll-ups when the view allows, `planner`)."""
    # The planner builds on this module's types: imported here, not at the top.
    from alert_engine.history import planner

    rolled = await planner.sla_shares(conn, query, period)
    if rolled is not None:
        return rolled
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(sla_sql(query, period), params(query))
        rows = await cursor.fetchall()
    return {
        str(row["period"]): SlaShare(int(row["with_sla"]), int(row["claimed_in_time"]))
        for row in rows
    }


def options_sql() -> sql.Composed:
    """The alerts' own dimensions as the folded cases name them, and as recovery members anyone
    who acted on a case of the range or was assigned one (the owners among them; choosing one
    who only wrote a note shows the cases they own, perhaps none)."""
    alerts = [
        sql.SQL(
            "(SELECT {name}::text AS filter, {column} AS value FROM alerts a"
            " WHERE a.fired_at >= %(since)s AND a.fired_at < %(until)s"
            " GROUP BY 2 ORDER BY count(*) DESC, 2 LIMIT {limit})"
        ).format(
            name=sql.Literal(name),
            column=sql.SQL(_DIMENSION[name]),
            limit=sql.Literal(MAX_OPTIONS),
        )
        for name in FILTERS
        if name in _DIMENSION
    ]
    reasons = sql.SQL(
        "(SELECT 'reason'::text AS filter, COALESCE(f.reason, '-') AS value"
        " FROM alerts a JOIN case_facts f ON f.alert_id = a.alert_id"
        " WHERE a.fired_at >= %(since)s AND a.fired_at < %(until)s"
        " GROUP BY 2 ORDER BY count(*) DESC, 2 LIMIT {limit})"
    ).format(limit=sql.Literal(MAX_OPTIONS))
    members = sql.SQL(
        "(SELECT 'member'::text AS filter, COALESCE(t.assignee, t.actor) AS value"
        " FROM alerts a JOIN case_transitions t ON t.alert_id = a.alert_id"
        " WHERE a.fired_at >= %(since)s AND a.fired_at < %(until)s"
        " AND COALESCE(t.assignee, t.actor) <> ''"
        " GROUP BY 2 ORDER BY count(*) DESC, 2 LIMIT {limit})"
    ).format(limit=sql.Literal(MAX_OPTIONS))
    return sql.SQL(" UNION ALL ").join([*alerts, members, reasons])


async def filter_options(
    conn: psycopg.AsyncConnection[Any], since: Any, until: Any
) -> Mapping[str, list[str]]:
    """The values each filter takes among the alerts fired in [since, until), sorted (over a long
    range, of the whole days it touches, from the daily roll-ups)."""
    from alert_engine.history import planner

    rolled = await planner.filter_options(conn, since, until, MAX_OPTIONS)
    if rolled is not None:
        found = rolled
    else:
        async with conn.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(options_sql(), {"since": since, "until": until})
            rows = await cursor.fetchall()
        found = {name: [] for name in FILTERS}
        for row in rows:
            if row["value"] is not None:
                found[str(row["filter"])].append(str(row["value"]))
    # A case nobody owns is "-" in the figures: offered too.
    found["member"].append("-")
    return {name: sorted(set(values)) for name, values in found.items()}
