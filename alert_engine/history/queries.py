"""The outcome figures, computed in SQL from the history: for a date range of alerts, optionally
filtered, one row per value of a dimension and a total.

Each alert's case is one row of `case_facts`, folded from its records (first claim, latest change
of state, owner, first answer) whenever one of them is written, so the figures follow from the
log whatever order it was projected in. A pure model of the same definitions in the tests
(`tests/history_model.py`) holds them to their meaning; beyond it: time to resolve, not
actionable, and the holdout's causal lift with its confidence interval (`HoldoutLift`). Views of a
quarter or more read the daily roll-ups instead (`planner`, `rollups`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from alert_engine.history import planner
from alert_engine.history.definitions import (
    CASES,
    CONFIDENCE,
    DIMENSIONS,
    EMPTY,
    FILTERS,
    OPEN,
    RESOLVED,
    Cohort,
    HoldoutLift,
    Report,
    ReportQuery,
    ReportRow,
    holdout_lift,
)
from alert_engine.problems import AlertEngineError
from alert_engine.settings import DatabaseSettings

# The shared definitions are `definitions`'; named here too, where the report's callers look.
__all__ = [
    "CONFIDENCE",
    "DIMENSIONS",
    "EMPTY",
    "FILTERS",
    "OPEN",
    "RESOLVED",
    "Cohort",
    "HoldoutLift",
    "Report",
    "ReportQuery",
    "ReportRow",
    "ReportUnavailable",
    "exact_report",
    "holdout_lift",
    "load_report",
    "report",
    "report_sql",
]


def _cohort_columns(prefix: str, holdout: bool) -> str:
    cohort = f"holdout IS {'TRUE' if holdout else 'FALSE'}"
    paired = f"{cohort} AND followup_rating IS NOT NULL AND initial_rating IS NOT NULL"
    nps = f"{paired} AND initial_nps IS NOT NULL AND followup_nps IS NOT NULL"
    return f"""
    count(*) FILTER (WHERE {cohort} AND sent) AS {prefix}_sent,
    count(*) FILTER (WHERE {cohort} AND followup_rating IS NOT NULL) AS {prefix}_answered,
    count(*) FILTER (WHERE {paired}) AS {prefix}_paired,
    (avg(initial_rating) FILTER (WHERE {paired}))::float8 AS {prefix}_avg_initial,
    (avg(followup_rating) FILTER (WHERE {paired}))::float8 AS {prefix}_avg_followup,
    (var_samp(followup_rating - initial_rating) FILTER (WHERE {paired}))::float8
        AS {prefix}_change_variance,
    count(*) FILTER (WHERE {nps}) AS {prefix}_nps_n,
    (count(*) FILTER (WHERE {nps} AND initial_nps >= 9)
     - count(*) FILTER (WHERE {nps} AND initial_nps <= 6)) AS {prefix}_nps_before_net,
    (count(*) FILTER (WHERE {nps} AND followup_nps >= 9)
     - count(*) FILTER (WHERE {nps} AND followup_nps <= 6)) AS {prefix}_nps_after_net"""


_FIGURES = f"""
    count(*) AS alerts,
    count(claimed_at) AS claimed,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM claimed_at - fired_at))
        AS median_claim_seconds,
    count(*) FILTER (WHERE state IN {RESOLVED!r}) AS resolved,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM state_at - fired_at))
        FILTER (WHERE state IN {RESOLVED!r}) AS median_resolve_seconds,
    count(*) FILTER (WHERE state = 'not_actionable') AS not_actionable,
    count(*) FILTER (WHERE NOT holdout AND (state IS NULL OR state IN {OPEN!r})) AS still_open,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM %(until)s - fired_at))
        FILTER (WHERE NOT holdout AND (state IS NULL OR state IN {OPEN!r}))
        AS median_open_age_seconds,
    {_cohort_columns("recovered", False)},
    {_cohort_columns("holdout", True)}
"""


def report_sql(query: ReportQuery) -> sql.Composed:
    filters = [
        sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(f"filter_{name}"))
        for name in sorted(query.filters)
    ]
    where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(filters) if filters else sql.SQL("")
    return sql.SQL(
        "WITH cases AS ({cases}) "
        "SELECT {key}::text AS key, GROUPING({key}) = 1 AS is_total, {figures} "
        "FROM cases{where} GROUP BY GROUPING SETS (({key}), ()) ORDER BY is_total, key"
    ).format(
        cases=sql.SQL(CASES),
        key=sql.Identifier(query.by),
        figures=sql.SQL(_FIGURES),
        where=where,
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _nps(net: int, count: int) -> float | None:
    return 100.0 * net / count if count else None


def _cohort(row: Mapping[str, Any], prefix: str) -> Cohort:
    return Cohort(
        sent=int(row[f"{prefix}_sent"]),
        answered=int(row[f"{prefix}_answered"]),
        paired=int(row[f"{prefix}_paired"]),
        avg_initial=_float(row[f"{prefix}_avg_initial"]),
        avg_followup=_float(row[f"{prefix}_avg_followup"]),
        change_variance=_float(row[f"{prefix}_change_variance"]),
        nps_before=_nps(int(row[f"{prefix}_nps_before_net"]), int(row[f"{prefix}_nps_n"])),
        nps_after=_nps(int(row[f"{prefix}_nps_after_net"]), int(row[f"{prefix}_nps_n"])),
    )


def _row(row: Mapping[str, Any]) -> ReportRow:
    return ReportRow(
        key="all" if row["is_total"] else str(row["key"]),
        alerts=int(row["alerts"]),
        claimed=int(row["claimed"]),
        median_claim_seconds=_float(row["median_claim_seconds"]),
        resolved=int(row["resolved"]),
        median_resolve_seconds=_float(row["median_resolve_seconds"]),
        not_actionable=int(row["not_actionable"]),
        still_open=int(row["still_open"]),
        median_open_age_seconds=_float(row["median_open_age_seconds"]),
        recovered=_cohort(row, "recovered"),
        holdout=_cohort(row, "holdout"),
    )


async def report(conn: psycopg.AsyncConnection[Any], query: ReportQuery) -> Report:
    """The figures of `query`: from the daily roll-ups where the view allows (`planner`), else
    from `case_facts`."""
    chosen = planner.plan(query)
    if chosen is not None:
        return await planner.report(conn, query, chosen)
    return await exact_report(conn, query)


async def exact_report(conn: psycopg.AsyncConnection[Any], query: ReportQuery) -> Report:
    """The figures of `query` from `case_facts` alone (medians exact)."""
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cursor:
        # JIT compiling the aggregates takes seconds, far longer than running them; and a year
        # of alerts sorted for the medians fits in memory with more than the default 4 MB.
        await cursor.execute("SELECT set_config('jit', 'off', true)")
        await cursor.execute("SELECT set_config('work_mem', '64MB', true)")
        await cursor.execute(report_sql(query), query.params())
        fetched = await cursor.fetchall()
    groups = [_row(row) for row in fetched if not row["is_total"]]
    total = next((_row(row) for row in fetched if row["is_total"]), EMPTY)
    return Report(query, groups, total)


class ReportUnavailable(AlertEngineError, RuntimeError):
    """The report cannot be made now; the message says why and what to do."""


async def load_report(settings: DatabaseSettings, query: ReportQuery) -> Report:
    """The report from the history database of `settings` (for the CLI and the dashboard):
    one connection, the statement timeout applied; `ReportUnavailable` when PostgreSQL is
    unreachable, the schema missing or the query too slow."""
    if settings.url is None:
        raise ReportUnavailable("no history database: set ALERT_ENGINE_DATABASE_URL")
    try:
        conn = await psycopg.AsyncConnection.connect(
            settings.url.get_secret_value(), connect_timeout=10, autocommit=True
        )
    except psycopg.OperationalError as exc:
        raise ReportUnavailable(f"cannot reach the history database: {exc}".rstrip()) from exc
    async with conn:
        timeout_ms = str(int(settings.statement_timeout * 1000))
        await conn.execute("SELECT set_config('statement_timeout', %s, false)", (timeout_ms,))
        try:
            return await report(conn, query)
        except psycopg.errors.UndefinedTable as exc:
            raise ReportUnavailable(
                "the history database has no tables yet: run `alert-engine history migrate` "
                "(a worker does it at start), then `alert-engine history rebuild`"
            ) from exc
        except psycopg.errors.QueryCanceled as exc:
            raise ReportUnavailable(
                f"the report took longer than {settings.statement_timeout:g} s "
                "(ALERT_ENGINE_DATABASE_STATEMENT_TIMEOUT): narrow the range or add a filter"
            ) from exc
