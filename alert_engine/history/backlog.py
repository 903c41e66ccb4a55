"""The open backlog per period of a trend: how many cases of the view were open at the end of each
week or month (the last one ends at the end of the range), and their median age then.

A case is open at a moment when it fired before it, was not held out, and is open now or was
closed (resolved, not actionable) after it. What the log says now decides: a case closed and later
reopened counts as open from its alert on. Short views read `case_facts` (medians exact); views
the roll-ups answer (`planner.plan`) count the whole days from `daily_rollups.backlog_*`
(`rollups.BACKLOG_KEY`: ages to the hour) and the partial days at the range's edges from
`case_facts`, and sweeps the period ends in Python (each case added once and taken away once;
the medians from a Fenwick tree of cases per hour): per end in SQL, every open case was counted
once per end, 52 times in a year.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from alert_engine.history import planner, rollups
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


def exact_sql(query: ReportQuery) -> sql.Composed:
    """Per period end, the open cases and their median age, from `case_facts`."""
    return sql.SQL(
        "WITH ends AS (SELECT * FROM unnest(%(keys)s::text[], %(ats)s::timestamptz[])"
        " AS e(key, at)) SELECT e.key, count(*) AS open, percentile_cont(0.5) WITHIN GROUP"
        " (ORDER BY extract(epoch FROM e.at - c.fired_at)) AS median_age"
        " FROM case_facts c JOIN ends e ON c.fired_at < e.at"
        " WHERE c.fired_at >= %(since)s AND c.fired_at < %(until)s AND NOT c.holdout"
        " AND {open_at}{filters} GROUP BY e.key"
    ).format(open_at=sql.SQL(_OPEN_AT), filters=planner.case_filters(query))


def rolled_sql(query: ReportQuery) -> sql.Composed:
    """The cases of the view as `Entry` rows: the roll-up rows of the whole days (`day`, their
    backlog histogram), the partial days' cases (`fired_at`, `closed_at`), and the whole days'
    cases closed between the range's end and the next midnight (`late`): the roll-ups count
    them closed at the range's end, and they were open."""
    return sql.SQL(
        "SELECT 'day' AS kind, r.day, r.backlog_keys AS keys, r.backlog_counts AS counts,"
        " NULL::timestamptz AS fired_at, NULL::timestamptz AS closed_at FROM daily_rollups r"
        " WHERE r.dimension = %(dimension)s AND r.day >= %(first_day)s"
        " AND r.day < %(end_day)s{value_filter} AND cardinality(r.backlog_keys) > 0"
        " UNION ALL SELECT 'edge', NULL, NULL, NULL, c.fired_at,"
        " CASE WHEN c.state IN {closed} THEN c.state_at END FROM case_facts c"
        " WHERE {edge_days}"
        " AND NOT c.holdout AND (c.state IS NULL OR c.state IN {open} OR c.state IN {closed})"
        "{filters}"
        " UNION ALL SELECT 'late', NULL, NULL, NULL, c.fired_at, c.state_at FROM case_facts c"
        " WHERE c.state_at > %(until)s AND c.state_at <= %(next_midnight)s"
        " AND c.fired_at >= %(first_full)s AND c.fired_at < %(end_full)s"
        " AND NOT c.holdout AND c.state IN {closed}{filters}"
    ).format(
        value_filter=planner.value_filter(bool(query.filters)),
        edge_days=sql.SQL(planner.EDGE_DAYS),
        closed=sql.SQL(repr(rollups.CLOSED)),
        open=sql.SQL(repr(OPEN)),
        filters=planner.case_filters(query),
    )


@dataclass(frozen=True)
class Entry:
    """Cases that fired in one UTC hour (hours since 1970) and are in the backlog at the ends
    `first` to `last` (indexes into the period ends)."""

    hour: int
    count: int
    first: int
    last: int


def _hour(moment: datetime) -> int:
    return int((moment - _EPOCH).total_seconds() // 3600)


def entries(rows: Sequence[Mapping[str, Any]], ends: Sequence[PeriodEnd]) -> list[Entry]:
    """`rolled_sql`'s rows as the ends each of their cases was open at."""
    days = [end.day for end in ends]
    ats = [end.at for end in ends]
    final = len(ends) - 1
    found = []
    for row in rows:
        if row["kind"] == "day":
            day: date = row["day"]
            base = (day - _EPOCH.date()).days * 24
            # Fired on `day`: in the backlog of ends after that day ...
            first = bisect.bisect_right(days, day)
            for key, count in zip(row["keys"], row["counts"], strict=True):
                if key < 0:
                    found.append(Entry(base - 1 - key, count, first, final))
                else:
                    # ... up to the last end at or before the midnight it was closed after.
                    closed_day = day + timedelta(days=key // 24)
                    last = bisect.bisect_right(days, closed_day) - 1
                    found.append(Entry(base + key % 24, count, first, last))
        elif row["kind"] == "edge":
            fired, closed = row["fired_at"], row["closed_at"]
            first = bisect.bisect_right(ats, fired)
            last = final if closed is None else bisect.bisect_left(ats, closed) - 1
            found.append(Entry(_hour(fired), 1, first, last))
        else:
            found.append(Entry(_hour(row["fired_at"]), 1, final, final))
    return [entry for entry in found if entry.first <= entry.last]


class _Counts:
    """Cases per hour, added and taken away, with the hour holding any rank found in log time
    (a Fenwick tree)."""

    def __init__(self, low: int, high: int) -> None:
        self.low = low
        self.size = high - low + 1
        self.tree = [0] * (self.size + 1)
        self.total = 0

    def add(self, hour: int, count: int) -> None:
        self.total += count
        index = hour - self.low + 1
        while index <= self.size:
            self.tree[index] += count
            index += index & -index

    def at_rank(self, rank: int) -> tuple[int, int, int]:
        """The hour of the case of 0-based `rank`, how many cases lie before that hour, and how
        many are in it."""
        index, before, step = 0, 0, 1 << self.size.bit_length()
        while step:
            following = index + step
            if following <= self.size and before + self.tree[following] <= rank:
                index = following
                before += self.tree[following]
            step >>= 1
        # `index` hours hold `before` cases, at most `rank`: the case is in the next hour.
        hour = index + self.low
        return hour, before, self.count(hour)

    def count(self, hour: int) -> int:
        return self._upto(hour) - self._upto(hour - 1)

    def _upto(self, hour: int) -> int:
        index, found = min(hour - self.low + 1, self.size), 0
        while index > 0:
            found += self.tree[index]
            index -= index & -index
        return found


def sweep(found: Sequence[Entry], ends: Sequence[PeriodEnd]) -> dict[str, Backlog]:
    """Each end's backlog: its cases' count, and their median age, each case taken to have fired
    evenly spread through its hour (as `planner.medians`)."""
    if not found:
        return {}
    counts = _Counts(min(e.hour for e in found), max(e.hour for e in found))
    starting: dict[int, list[Entry]] = {}
    for entry in found:
        starting.setdefault(entry.first, []).append(entry)
    leaving: dict[int, list[Entry]] = {}
    for entry in found:
        leaving.setdefault(entry.last + 1, []).append(entry)
    out = {}
    for index, end in enumerate(ends):
        for entry in leaving.get(index, ()):
            counts.add(entry.hour, -entry.count)
        for entry in starting.get(index, ()):
            counts.add(entry.hour, entry.count)
        if counts.total <= 0:
            continue
        ages = []
        for rank in sorted({(counts.total - 1) // 2, counts.total // 2}):
            hour, before, here = counts.at_rank(rank)
            fired = _EPOCH + timedelta(hours=hour + (rank - before + 0.5) / here)
            ages.append(max(0.0, (end.at - fired).total_seconds()))
        out[end.key] = Backlog(counts.total, sum(ages) / len(ages))
    return out


async def backlog(
    conn: psycopg.AsyncConnection[Any], query: ReportQuery, period: str, min_days: int | None = None
) -> dict[str, Backlog]:
    """Per week or month of `query`'s range, the cases of its alerts (filtered as it says) open at
    the period's end; periods without any are left out."""
    ends = period_ends(query.since, query.until, period)
    if not ends:
        return {}
    per_period = ReportQuery(query.since, query.until, period, query.filters)
    chosen = planner.plan(per_period, planner.MIN_DAYS if min_days is None else min_days)
    params = query.params() | {
        "keys": [end.key for end in ends],
        "ats": [end.at for end in ends],
        "days": [end.day for end in ends],
    }
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
        params |= planner.params(per_period, chosen)
        params["next_midnight"] = datetime.combine(ends[-1].day, time(), UTC)
        await cursor.execute(rolled_sql(query), params)
        return sweep(entries(await cursor.fetchall(), ends), ends)
