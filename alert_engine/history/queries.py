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
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from alert_engine.history.welch import welch_interval
from alert_engine.problems import AlertEngineError
from alert_engine.settings import DatabaseSettings

# What rows group by; the first seven also filter.
FILTERS = ("team", "agent", "rule", "route", "severity", "channel", "member", "reason")
DIMENSIONS = (*FILTERS, "week", "month")
RESOLVED = ("resolved_followup", "resolved_no_followup")
# Cases not closed (held-out cases are never open: they are not delivered for action).
OPEN = ("open", "claimed", "reopened")
CONFIDENCE = 0.95


@dataclass(frozen=True)
class ReportQuery:
    """Alerts fired in [since, until), those matching every filter, grouped by `by`."""

    since: datetime
    until: datetime
    by: str = "team"
    filters: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.by not in DIMENSIONS:
            raise ValueError(f"cannot group by {self.by!r} (one of: {', '.join(DIMENSIONS)})")
        unknown = sorted(set(self.filters) - set(FILTERS))
        if unknown:
            raise ValueError(f"cannot filter by {unknown} (only by: {', '.join(FILTERS)})")
        if self.since.tzinfo is None or self.until.tzinfo is None:
            raise ValueError("since and until need a time zone")
        if self.until <= self.since:
            raise ValueError("until must be after since")


@dataclass(frozen=True)
class HoldoutLift:
    """How much more recovered customers' ratings rose than held-out customers' (in stars, mean
    follow-up minus initial rating): the rise that is the recovery's own, beyond what a second
    rating gives anyway. Holdout cases are chosen at random, so the difference is causal."""

    stars: float
    low: float
    high: float
    recovered_n: int
    holdout_n: int


@dataclass(frozen=True)
class Cohort:
    """Follow-up figures of recovered cases, or of cases held out of recovery."""

    sent: int
    answered: int
    # Answered cases whose alert had an initial rating: the rating figures are theirs.
    paired: int
    avg_initial: float | None
    avg_followup: float | None
    # Sample variance of (follow-up - initial) over the paired cases (None below two).
    change_variance: float | None
    nps_before: float | None
    nps_after: float | None

    @property
    def response_rate(self) -> float | None:
        return self.answered / self.sent if self.sent else None

    @property
    def uplift(self) -> float | None:
        if self.avg_initial is None or self.avg_followup is None or not self.avg_initial:
            return None
        return self.avg_followup / self.avg_initial

    @property
    def mean_change(self) -> float | None:
        if self.avg_initial is None or self.avg_followup is None:
            return None
        return self.avg_followup - self.avg_initial


@dataclass(frozen=True)
class ReportRow:
    key: str
    alerts: int
    claimed: int
    median_claim_seconds: float | None
    resolved: int
    median_resolve_seconds: float | None
    not_actionable: int
    # Cases still open (or claimed, or reopened) now, of the alerts in range, and the median of
    # their ages at the end of the range (the backlog and how long it has waited).
    still_open: int
    median_open_age_seconds: float | None
    recovered: Cohort
    holdout: Cohort

    @property
    def sent(self) -> int:
        return self.recovered.sent + self.holdout.sent

    @property
    def answered(self) -> int:
        return self.recovered.answered + self.holdout.answered

    @property
    def response_rate(self) -> float | None:
        return self.answered / self.sent if self.sent else None

    @property
    def recovery_lift(self) -> float | None:
        """Recovered uplift over holdout uplift (as `outcomes.Figures.recovery_lift`)."""
        if self.recovered.uplift is None or not self.holdout.uplift:
            return None
        return self.recovered.uplift / self.holdout.uplift

    @property
    def holdout_lift(self) -> HoldoutLift | None:
        return holdout_lift(self.recovered, self.holdout)


@dataclass(frozen=True)
class Report:
    query: ReportQuery
    rows: list[ReportRow]
    total: ReportRow


def holdout_lift(recovered: Cohort, holdout: Cohort) -> HoldoutLift | None:
    """Welch's interval for the difference of the two cohorts' mean rating change; None unless
    each cohort has two paired answers."""
    if (
        recovered.mean_change is None
        or holdout.mean_change is None
        or recovered.change_variance is None
        or holdout.change_variance is None
    ):
        return None
    stars = recovered.mean_change - holdout.mean_change
    low, high = welch_interval(
        stars,
        (recovered.change_variance, recovered.paired),
        (holdout.change_variance, holdout.paired),
        CONFIDENCE,
    )
    return HoldoutLift(stars, low, high, recovered.paired, holdout.paired)


# One row per alert in the range (`facts` folds each alert's case from the log).
_CASES = """
SELECT alert_id, fired_at, rule, severity, route, team, agent, channel, member, initial_rating,
       initial_nps, holdout, claimed_at, state, state_at, COALESCE(reason, '-') AS reason, sent,
       followup_rating, followup_nps,
       to_char(fired_at AT TIME ZONE 'UTC', 'IYYY-"W"IW') AS week,
       to_char(fired_at AT TIME ZONE 'UTC', 'YYYY-MM') AS month
FROM case_facts
WHERE fired_at >= %(since)s AND fired_at < %(until)s
"""


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
        cases=sql.SQL(_CASES),
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


_NO_ANSWERS = Cohort(0, 0, 0, None, None, None, None, None)
EMPTY = ReportRow("all", 0, 0, None, 0, None, 0, 0, None, _NO_ANSWERS, _NO_ANSWERS)


async def report(conn: psycopg.AsyncConnection[Any], query: ReportQuery) -> Report:
    """The figures of `query`: from the daily roll-ups where the view allows (`planner`), else
    from `case_facts`."""
    # The planner builds on this module's types: imported here, not at the top.
    from alert_engine.history import planner

    chosen = planner.plan(query)
    if chosen is not None:
        return await planner.report(conn, query, chosen)
    return await exact_report(conn, query)


async def exact_report(conn: psycopg.AsyncConnection[Any], query: ReportQuery) -> Report:
    """The figures of `query` from `case_facts` alone (medians exact)."""
    params: dict[str, Any] = {"since": query.since, "until": query.until}
    params.update({f"filter_{name}": value for name, value in query.filters.items()})
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cursor:
        # JIT compiling the aggregates takes seconds, far longer than running them; and a year
        # of alerts sorted for the medians fits in memory with more than the default 4 MB.
        await cursor.execute("SELECT set_config('jit', 'off', true)")
        await cursor.execute("SELECT set_config('work_mem', '64MB', true)")
        await cursor.execute(report_sql(query), params)
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
