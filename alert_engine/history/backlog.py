"""The open backlog per period of a trend: how many cases of the view were open at the end of each
week or month (the last one ends at the end of the range), and their median age then.

A case is open at a moment when it fired before it, was not held out, and is open now or was
closed (resolved, not actionable) after it. What the log says now decides: a case closed and later
reopened counts as open from its alert on. Short views read `case_facts` (medians exact); views
the roll-ups answer (`planner.plan`) count the whole days from `daily_rollups.backlog_*`
(`rollups.BACKLOG_KEY`: ages to the hour) and the partial days at the range's edges from
`case_facts`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from alert_engine.history import rollups
from alert_engine.history.queries import OPEN, ReportQuery

PERIODS = ("week", "month")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Backlog:
    """Cases open at a period's end, and the median of their ages then (None without any)."""

    open: int
    median_age_seconds: float | None


@dataclass(frozen=True)
class PeriodEnd:
    """A trend period (`2026-W10`, `2026-03`) and the moment its backlog is counted at: the start
    of the next period, or the end of the range."""

    key: str
    at: datetime

    @property
    def day(self) -> date:
        """The first midnight at or after `at` (the roll-ups know closing days, not times)."""
        if self.at.time() == time() and self.at.tzinfo is not None:
            return self.at.astimezone(UTC).date()
        return self.at.astimezone(UTC).date() + timedelta(days=1)


def _key(moment: datetime, period: str) -> str:
    if period == "week":
        year, week, _ = moment.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{moment:%Y-%m}"


def _next_start(moment: datetime, period: str) -> datetime:
    day = moment.astimezone(UTC).date()
    if period == "week":
        following = day + timedelta(days=7 - day.weekday())
    else:
        following = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
    return datetime.combine(following, time(), UTC)


def period_ends(since: datetime, until: datetime, period: str) -> list[PeriodEnd]:
    """Every period [since, until) touches, in order, with the moment its backlog is counted at."""
    if period not in PERIODS:
        raise ValueError(f"no backlog per {period!r} (one of: {', '.join(PERIODS)})")
    ends = []
    cursor = since.astimezone(UTC)
    while cursor < until:
        end = min(_next_start(cursor, period), until.astimezone(UTC))
        ends.append(PeriodEnd(_key(cursor, period), end))
        cursor = end
    return ends


_OPEN_AT = (
    f"(c.state IS NULL OR c.state IN {OPEN!r}"
    f" OR (c.state IN {rollups.CLOSED!r} AND c.state_at > e.at))"
)


def _filters(query: ReportQuery) -> sql.Composable:
    return sql.SQL("").join(
        sql.SQL(" AND {} = {}").format(
            sql.SQL(rollups.dimension_sql(name, "c")), sql.Placeholder(f"filter_{name}")
        )
        for name in sorted(query.filters)
    )


def exact_sql(query: ReportQuery) -> sql.Composed:
    """Per period end, the open cases and their median age, from `case_facts`."""
    return sql.SQL(
        "WITH ends AS (SELECT * FROM unnest(%(keys)s::text[], %(ats)s::timestamptz[])"
        " AS e(key, at)) SELECT e.key, count(*) AS open, percentile_cont(0.5) WITHIN GROUP"
        " (ORDER BY extract(epoch FROM e.at - c.fired_at)) AS median_age"
        " FROM case_facts c JOIN ends e ON c.fired_at < e.at"
        " WHERE c.fired_at >= %(since)s AND c.fired_at < %(until)s AND NOT c.holdout"
        " AND {open_at}{filters} GROUP BY e.key"
    ).format(open_at=sql.SQL(_OPEN_AT), filters=_filters(query))


def rolled_sql(query: ReportQuery) -> sql.Composed:
    """Per period end, the rows of the hour histogram of the open cases' fired times that hold
    the two middle ranks (as `planner.medians_sql`), with the period's count (`total`)."""
    value_filter = sql.SQL(" AND r.value = %(value)s") if query.filters else sql.SQL("")
    hour = "floor(extract(epoch FROM c.fired_at) / 3600)::bigint"
    return sql.SQL(
        "WITH ends AS (SELECT * FROM unnest(%(keys)s::text[], %(ats)s::timestamptz[],"
        " %(days)s::date[]) AS e(key, at, day)), "
        "hours AS ("
        # The whole days: open now (key < 0), or closed on a day at or after the end's midnight.
        " SELECT e.key, (r.day - DATE '1970-01-01')::bigint * 24"
        " + CASE WHEN u.k < 0 THEN -1 - u.k ELSE u.k %% 24 END AS hour, u.n"
        " FROM daily_rollups r CROSS JOIN LATERAL unnest(r.backlog_keys, r.backlog_counts)"
        " AS u(k, n) JOIN ends e ON r.day < e.day AND (u.k < 0 OR r.day + u.k / 24 >= e.day)"
        " WHERE r.dimension = %(dimension)s AND r.day >= %(first_day)s"
        " AND r.day < %(end_day)s{value_filter}"
        # The partial days at the edges, case by case.
        " UNION ALL SELECT e.key, {hour}, 1 FROM case_facts c JOIN ends e ON c.fired_at < e.at"
        " WHERE ((c.fired_at >= %(since)s AND c.fired_at < %(first_full)s)"
        " OR (c.fired_at >= %(end_full)s AND c.fired_at < %(until)s))"
        " AND NOT c.holdout AND {open_at}{filters}"
        # An end within a day (the range's): the whole days' cases closed between it and the
        # next midnight were counted closed above; those closed after it were open.
        " UNION ALL SELECT e.key, {hour}, 1 FROM ends e JOIN case_facts c"
        " ON c.state_at > e.at AND c.state_at <= (e.day::timestamp AT TIME ZONE 'UTC')"
        " WHERE c.fired_at >= %(first_full)s AND c.fired_at < %(end_full)s AND c.fired_at < e.at"
        " AND NOT c.holdout AND c.state IN {closed}{filters}), "
        "summed AS (SELECT key, hour, sum(n)::bigint AS n FROM hours GROUP BY key, hour), "
        "ranked AS (SELECT *, sum(n) OVER (PARTITION BY key ORDER BY hour) AS upto,"
        " sum(n) OVER (PARTITION BY key) AS total FROM summed) "
        "SELECT key, hour, n, upto, total FROM ranked"
        " WHERE (upto - n <= (total - 1) / 2 AND (total - 1) / 2 < upto)"
        " OR (upto - n <= total / 2 AND total / 2 < upto)"
    ).format(
        value_filter=value_filter,
        hour=sql.SQL(hour),
        open_at=sql.SQL(_OPEN_AT),
        closed=sql.SQL(repr(rollups.CLOSED)),
        filters=_filters(query),
    )


def rolled_medians(
    rows: Sequence[Mapping[str, Any]], ends: Sequence[PeriodEnd]
) -> dict[str, Backlog]:
    """`rolled_sql`'s rows as each period's backlog: the middle ranks' ages, each case taken to
    have fired evenly spread through its hour."""
    at = {end.key: end.at for end in ends}
    ages: dict[str, list[float]] = {}
    totals: dict[str, int] = {}
    for row in rows:
        key, total, upto, n = str(row["key"]), int(row["total"]), int(row["upto"]), int(row["n"])
        totals[key] = total
        for rank in sorted({(total - 1) // 2, total // 2}):
            if upto - n <= rank < upto:
                fired = _EPOCH + timedelta(hours=int(row["hour"]) + (rank - (upto - n) + 0.5) / n)
                ages.setdefault(key, []).append(max(0.0, (at[key] - fired).total_seconds()))
    return {
        key: Backlog(total, sum(ages[key]) / len(ages[key]) if ages.get(key) else None)
        for key, total in totals.items()
    }


async def backlog(
    conn: psycopg.AsyncConnection[Any], query: ReportQuery, period: str, min_days: int | None = None
) -> dict[str, Backlog]:
    """Per week or month of `query`'s range, the cases of its alerts (filtered as it says) open at
    the period's end; periods without any are left out."""
    # The planner builds on the report's types: imported here, as `trends` does.
    from alert_engine.history import planner

    ends = period_ends(query.since, query.until, period)
    if not ends:
        return {}
    per_period = ReportQuery(query.since, query.until, period, query.filters)
    chosen = planner.plan(per_period, planner.MIN_DAYS if min_days is None else min_days)
    params: dict[str, Any] = {
        "since": query.since,
        "until": query.until,
        "keys": [end.key for end in ends],
        "ats": [end.at for end in ends],
        "days": [end.day for end in ends],
    }
    params.update({f"filter_{name}": value for name, value in query.filters.items()})
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute("SELECT set_config('jit', 'off', true)")
        await cursor.execute("SELECT set_config('work_mem', '64MB', true)")
        if chosen is None:
            await cursor.execute(exact_sql(query), params)
            return {
                str(row["key"]): Backlog(
                    int(row["open"]),
                    None if row["median_age"] is None else float(row["median_age"]),
                )
                for row in await cursor.fetchall()
            }
        await cursor.execute(rolled_sql(query), params | planner.params(per_period, chosen))
        return rolled_medians(await cursor.fetchall(), ends)
