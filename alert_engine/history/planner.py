"""The report from the daily roll-ups (`rollups`) where a view allows: whole UTC days of the range
from `daily_rollups`, the partial days at its edges from `case_facts` (the same figures and
histograms, computed there), merged in SQL; medians from the merged histograms.

A view can use the roll-ups when its filters and grouping name at most one dimension (by week or
month with no filter or one; by a dimension with no filter or only a filter on it); anything else
names two dimensions, is filtered, hence small, and stays on `case_facts` (`queries.exact_report`).
Ranges under `MIN_DAYS` whole days stay there too: fast enough so, and their medians exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from alert_engine.history import rollups
from alert_engine.history.definitions import (
    EMPTY,
    FILTERS,
    Cohort,
    Report,
    ReportQuery,
    ReportRow,
    SlaShare,
)

# Whole days a range needs before the roll-ups answer it: the dashboard's 12-week view has 83 (its
# first day is partial). Reading 12 weeks of cases twice (groups, trend) for exact medians took
# ~700 ms of a page; from the roll-ups the medians are within their 5% bucket.
MIN_DAYS = 83
_PERIOD_FORMAT = {"week": 'IYYY-"W"IW', "month": "YYYY-MM"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Plan:
    """Which roll-up rows answer a view: those of `dimension` (and `value`, if filtered) over the
    whole days [first_day, end_day); the rest of [since, until) comes from `case_facts`."""

    dimension: str
    value: str | None
    first_day: date
    end_day: date

    @property
    def first_full(self) -> datetime:
        return datetime.combine(self.first_day, datetime.min.time(), UTC)

    @property
    def end_full(self) -> datetime:
        return datetime.combine(self.end_day, datetime.min.time(), UTC)


def plan(query: ReportQuery, min_days: int = MIN_DAYS) -> Plan | None:
    """The roll-ups' part of `query`, or None when the view is for `case_facts` alone."""
    named = set(query.filters) | ({query.by} & set(FILTERS))
    if len(named) > 1:
        return None
    since, until = query.since.astimezone(UTC), query.until.astimezone(UTC)
    first_day = since.date() if since.time() == datetime.min.time() else since.date() + timedelta(1)
    end_day = until.date()
    if (end_day - first_day).days < max(1, min_days):
        return None
    dimension = next(iter(named), "all")
    value = query.filters.get(dimension)
    return Plan(dimension, value, first_day, end_day)


def _keys(query: ReportQuery) -> tuple[sql.Composable, sql.Composable]:
    """The group's key of a roll-up row (`r`) and of an edge case (`c`)."""
    if query.by in _PERIOD_FORMAT:
        fmt = sql.Literal(_PERIOD_FORMAT[query.by])
        return (
            sql.SQL("to_char(r.day, {})").format(fmt),
            sql.SQL("to_char(c.fired_at AT TIME ZONE 'UTC', {})").format(fmt),
        )
    return sql.SQL("r.value"), sql.SQL(rollups.dimension_sql(query.by, "c"))


# The cases of the partial days at a range's edges (`params`' bounds), from `case_facts` (`c`):
# the roll-ups hold the whole days between.
EDGE_DAYS = (
    "((c.fired_at >= %(since)s AND c.fired_at < %(first_full)s)"
    " OR (c.fired_at >= %(end_full)s AND c.fired_at < %(until)s))"
)


def value_filter(filtered: bool) -> sql.Composable:
    """The roll-up rows' (`r`) condition on the plan's value, for a filtered view."""
    return sql.SQL(" AND r.value = %(value)s") if filtered else sql.SQL("")


def case_filters(query: ReportQuery) -> sql.Composable:
    """`query`'s filters on the cases of `case_facts` (`c`), each ` AND`-ed, their values named
    as `ReportQuery.params` names them."""
    return sql.SQL("").join(
        sql.SQL(" AND {} = {}").format(
            sql.SQL(rollups.dimension_sql(name, "c")), sql.Placeholder(f"filter_{name}")
        )
        for name in sorted(query.filters)
    )


def _sources(query: ReportQuery, chosen: Plan, columns: str) -> sql.Composed:
    """`edges`: the cases of the partial days (with their key and claim-by time); `days`: the
    roll-up rows of the whole days (their key and `columns`: only those, as the rows are
    materialized)."""
    roll_key, edge_key = _keys(query)
    edge_filter = (
        sql.SQL(" AND {} = %(value)s").format(sql.SQL(rollups.dimension_sql(chosen.dimension, "c")))
        if chosen.value is not None
        else sql.SQL("")
    )
    return sql.SQL(
        "edges AS (SELECT {edge_key} AS key, c.*,"
        " (a.record -> 'sla' ->> 'claim_by')::timestamptz AS claim_by"
        " FROM case_facts c JOIN alerts a ON a.alert_id = c.alert_id"
        " WHERE {edge_days}{edge_filter}), "
        "days AS (SELECT {roll_key} AS key, {columns} FROM daily_rollups r"
        " WHERE r.dimension = %(dimension)s AND r.day >= %(first_day)s"
        " AND r.day < %(end_day)s{value_filter})"
    ).format(
        edge_key=edge_key,
        roll_key=roll_key,
        columns=sql.SQL(columns),
        edge_days=sql.SQL(EDGE_DAYS),
        edge_filter=edge_filter,
        value_filter=value_filter(chosen.value is not None),
    )


def figures_sql(query: ReportQuery, chosen: Plan) -> sql.Composed:
    names = rollups.FIGURES
    day_columns = ", ".join(names)
    edge_columns = ", ".join(f"{expr} AS {name}" for name, expr in rollups.CONTRIBUTIONS)
    sums = ", ".join(f"COALESCE(sum({name}), 0)::bigint AS {name}" for name in names)
    return sql.SQL(
        "WITH {sources}, parts AS ("
        "SELECT key, {day_columns} FROM days UNION ALL SELECT key, {edge_columns} FROM edges) "
        "SELECT key::text AS key, GROUPING(key) = 1 AS is_total, {sums} FROM parts"
        " GROUP BY GROUPING SETS ((key), ()) ORDER BY is_total, key"
    ).format(
        sources=_sources(query, chosen, day_columns),
        day_columns=sql.SQL(day_columns),
        edge_columns=sql.SQL(edge_columns),
        sums=sql.SQL(sums),
    )


_HISTOGRAM_COLUMNS = (
    "r.day, r.claim_buckets, r.claim_counts, r.resolve_buckets, r.resolve_counts, r.open_hours,"
    " r.open_counts"
)


def medians_sql(query: ReportQuery, chosen: Plan) -> sql.Composed:
    """Per group and for the total, per histogram (claim, resolve, open hour), the merged
    histogram: its buckets in order and how many cases each holds. Walking them for the middle
    ranks is `medians`' (in Python: ranking every bucket in SQL took as long as merging them)."""
    hours = "(r.day - DATE '1970-01-01') * 24"
    parts = [
        f"SELECT key, {rollups.CLAIM} AS measure, u.b::bigint AS bucket, u.n AS n"
        " FROM days r, unnest(r.claim_buckets, r.claim_counts) AS u(b, n)",
        f"SELECT key, {rollups.RESOLVE}, u.b::bigint, u.n"
        " FROM days r, unnest(r.resolve_buckets, r.resolve_counts) AS u(b, n)",
        f"SELECT key, {rollups.OPEN_HOUR}, {hours} + u.b, u.n"
        " FROM days r, unnest(r.open_hours, r.open_counts) AS u(b, n)",
        f"SELECT key, {rollups.CLAIM}, {rollups.bucket_sql(rollups.CLAIM_SECONDS)}, 1"
        " FROM edges WHERE claimed_at IS NOT NULL",
        f"SELECT key, {rollups.RESOLVE}, {rollups.bucket_sql(rollups.RESOLVE_SECONDS)}, 1"
        f" FROM edges WHERE {rollups.IS_RESOLVED}",
        f"SELECT key, {rollups.OPEN_HOUR}, floor(extract(epoch FROM fired_at) / 3600)::bigint, 1"
        f" FROM edges WHERE {rollups.IS_OPEN}",
    ]
    return sql.SQL(
        "WITH {sources}, merged AS ({parts}), "
        "histogram AS (SELECT key, GROUPING(key) = 1 AS is_total, measure, bucket, sum(n)::int AS n"
        # Byte order for the keys here: only the grouping needs them ordered, and it is faster.
        ' FROM (SELECT key COLLATE "C" AS key, measure, bucket, n FROM merged) m'
        " GROUP BY GROUPING SETS ((key, measure, bucket), (measure, bucket))) "
        "SELECT key::text AS key, is_total, measure, array_agg(bucket ORDER BY bucket) AS buckets,"
        " array_agg(n ORDER BY bucket) AS counts FROM histogram GROUP BY is_total, key, measure"
    ).format(
        sources=_sources(query, chosen, _HISTOGRAM_COLUMNS),
        parts=sql.SQL(" UNION ALL ").join(map(sql.SQL, parts)),
    )


def _value(measure: int, bucket: int, share: float, until: datetime) -> float:
    """The value at `share` (0-1) of the way through a bucket, assuming its cases evenly spread."""
    if measure == rollups.OPEN_HOUR:
        fired = _EPOCH + timedelta(hours=bucket + share)
        return max(0.0, (until - fired).total_seconds())
    low, high = rollups.bucket_bounds(bucket)
    return low + share * (high - low)


def medians(
    rows: Sequence[Mapping[str, Any]], until: datetime
) -> dict[tuple[str | None, int], float]:
    """(group key or None for the total, measure) -> median, from `medians_sql`'s histograms:
    the two middle ranks (percentile_cont's, (total - 1) // 2 and total // 2) found in their
    buckets, each told by its place in its bucket, their mean."""
    found: dict[tuple[str | None, int], float] = {}
    for row in rows:
        measure, counts = int(row["measure"]), [int(n) for n in row["counts"]]
        total = sum(counts)
        if not total:
            continue
        values, below = [], 0
        middles = sorted({(total - 1) // 2, total // 2})
        for bucket, n in zip(row["buckets"], counts, strict=True):
            while middles and middles[0] < below + n:
                share = (middles.pop(0) - below + 0.5) / n
                values.append(_value(measure, int(bucket), share, until))
            if not middles:
                break
            below += n
        key = None if row["is_total"] else str(row["key"])
        found[(key, measure)] = sum(values) / len(values)
    return found


def _cohort(row: Mapping[str, Any], prefix: str) -> Cohort:
    def figure(name: str) -> int:
        return int(row[f"{prefix}_{name}"])

    paired, nps_n = figure("paired"), figure("nps_n")
    change, squares = figure("change_sum"), figure("change_squares")
    return Cohort(
        sent=figure("sent"),
        answered=figure("answered"),
        paired=paired,
        avg_initial=figure("initial_sum") / paired if paired else None,
        avg_followup=figure("followup_sum") / paired if paired else None,
        # Integers throughout, one division: as exact as PostgreSQL's var_samp in numeric.
        change_variance=(
            (paired * squares - change * change) / (paired * (paired - 1)) if paired > 1 else None
        ),
        nps_before=100.0 * figure("nps_before_net") / nps_n if nps_n else None,
        nps_after=100.0 * figure("nps_after_net") / nps_n if nps_n else None,
    )


def _row(row: Mapping[str, Any], found: Mapping[tuple[str | None, int], float]) -> ReportRow:
    key = None if row["is_total"] else str(row["key"])
    return ReportRow(
        key="all" if key is None else key,
        alerts=int(row["alerts"]),
        claimed=int(row["claimed"]),
        median_claim_seconds=found.get((key, rollups.CLAIM)),
        resolved=int(row["resolved"]),
        median_resolve_seconds=found.get((key, rollups.RESOLVE)),
        not_actionable=int(row["not_actionable"]),
        still_open=int(row["still_open"]),
        median_open_age_seconds=found.get((key, rollups.OPEN_HOUR)),
        recovered=_cohort(row, "recovered"),
        holdout=_cohort(row, "holdout"),
    )


def params(query: ReportQuery, chosen: Plan) -> dict[str, Any]:
    return {
        "since": query.since,
        "until": query.until,
        "first_full": chosen.first_full,
        "end_full": chosen.end_full,
        "first_day": chosen.first_day,
        "end_day": chosen.end_day,
        "dimension": chosen.dimension,
        "value": chosen.value,
    }


def sla_sql(query: ReportQuery, chosen: Plan) -> sql.Composed:
    """Per group, the cases with a claim-by time and those claimed by then: the two SLA figures
    alone (only they are read from the roll-up rows)."""
    return sql.SQL(
        "WITH {sources}, parts AS (SELECT key, with_sla, claimed_in_time FROM days UNION ALL"
        " SELECT key, (claim_by IS NOT NULL)::int, COALESCE(claimed_at <= claim_by, false)::int"
        " FROM edges) "
        "SELECT key::text AS key, sum(with_sla)::bigint AS with_sla,"
        " sum(claimed_in_time)::bigint AS claimed_in_time FROM parts GROUP BY key ORDER BY key"
    ).format(sources=_sources(query, chosen, "with_sla, claimed_in_time"))


async def sla_shares(
    conn: psycopg.AsyncConnection[Any], query: ReportQuery, period: str, min_days: int = 1
) -> dict[str, SlaShare] | None:
    """`trends.sla_shares` from the roll-ups, or None when the view is not theirs. They are
    counts, exact from the roll-ups, so any view of a whole day or more reads them (`min_days`:
    for the tests, which hold the roll-ups to the cases on short ranges)."""
    per_period = ReportQuery(query.since, query.until, period, query.filters)
    chosen = plan(per_period, min_days)
    if chosen is None:
        return None
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(sla_sql(per_period, chosen), params(per_period, chosen))
        rows = await cursor.fetchall()
    return {
        str(row["key"]): SlaShare(int(row["with_sla"]), int(row["claimed_in_time"]))
        for row in rows
        if row["with_sla"]
    }


_OPTIONS = """
SELECT dimension, value FROM (
    SELECT dimension, value, row_number() OVER (
        PARTITION BY dimension ORDER BY sum(alerts) DESC, value) AS place
    FROM daily_rollups
    WHERE dimension <> 'all' AND day >= %(first_day)s AND day <= %(last_day)s
    GROUP BY dimension, value
) ranked WHERE place <= %(most)s
"""


async def filter_options(
    conn: psycopg.AsyncConnection[Any], since: datetime, until: datetime, most: int
) -> dict[str, list[str]]:
    """The values of each dimension on the UTC days [since, until) touches (the most frequent
    `most`), from their roll-up rows, whatever the range: a short one reads a few thousand rows
    where the cases would be every alert of it. A recovery member is offered when they own a
    case of those days (as the member filter means: the case's owner)."""
    last = until.astimezone(UTC) - timedelta(microseconds=1)
    first_day, last_day = since.astimezone(UTC).date(), last.date()
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(_OPTIONS, {"first_day": first_day, "last_day": last_day, "most": most})
        rows = await cursor.fetchall()
    found: dict[str, list[str]] = {name: [] for name in FILTERS}
    for row in rows:
        found[str(row["dimension"])].append(str(row["value"]))
    return found


async def report(conn: psycopg.AsyncConnection[Any], query: ReportQuery, chosen: Plan) -> Report:
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute("SELECT set_config('jit', 'off', true)")
        # A year by agent merges about a million bucket counts: in memory, not spilled to disk.
        await cursor.execute("SELECT set_config('work_mem', '64MB', true)")
        await cursor.execute(figures_sql(query, chosen), params(query, chosen))
        fetched = await cursor.fetchall()
        await cursor.execute(medians_sql(query, chosen), params(query, chosen))
        found = medians(await cursor.fetchall(), query.until)
    groups = [_row(row, found) for row in fetched if not row["is_total"]]
    total = next((_row(row, found) for row in fetched if row["is_total"]), EMPTY)
    return Report(query, groups, total)
