"""Daily roll-ups of `case_facts`: per UTC day and value of each dimension (and 'all'), every
additive figure of the report and histograms of the durations, so that a view of months sums a
row per day and value instead of reading every alert (`planner` reads them).

The roll-up rows of a day are recomputed from that day's `case_facts` (DELETE + INSERT), for the
fired days of the alerts a batch touches, in the batch's transaction after the fold (`facts`):
idempotent, so a replay or a second worker writes the same rows. Two transactions refreshing
the same day take turns on an advisory lock per day, taken after their alerts' locks and in
order, so they cannot deadlock, and the second one's recomputation sees the first one's facts.

Durations (time to claim, to resolve) go in geometric buckets of ratio `RATIO`: bucket 0 holds
everything under one second, bucket b >= 1 holds [RATIO**(b-1), RATIO**b) seconds. A median from
the merged histograms lies within its bucket, 5% of the value wide. The open cases are counted
by the UTC hour they fired in: their age at the end of a range is known to the hour.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from datetime import date
from typing import Any

import psycopg

from alert_engine.history.definitions import FILTERS, OPEN, RESOLVED

RATIO = 1.05
_LOG_RATIO = math.log(RATIO)
CLAIM, RESOLVE, OPEN_HOUR = 0, 1, 2


def bucket_bounds(bucket: int) -> tuple[float, float]:
    """The durations (s) bucket `bucket` holds: [low, high)."""
    if bucket <= 0:
        return 0.0, 1.0
    return RATIO ** (bucket - 1), RATIO**bucket


def bucket_sql(seconds: str) -> str:
    """The bucket of a duration in seconds (an SQL expression of float8), as `bucket_bounds`."""
    return (
        f"(CASE WHEN ({seconds}) < 1 THEN 0"
        f" ELSE 1 + floor(ln({seconds}) / {_LOG_RATIO!r})::int END)"
    )


CLAIM_SECONDS = "extract(epoch FROM claimed_at - fired_at)::float8"
RESOLVE_SECONDS = "extract(epoch FROM state_at - fired_at)::float8"
IS_RESOLVED = f"state IN {RESOLVED!r}"
IS_OPEN = f"NOT holdout AND (state IS NULL OR state IN {OPEN!r})"
# Closed for good as far as the log says now (a later reopening makes a case open again).
CLOSED = (*RESOLVED, "not_actionable")
IS_CLOSED = f"state IN {CLOSED!r}"
# The day a closed case stopped being open: closed at a midnight exactly, it was not open then.
CLOSED_DAY = "((state_at - interval '1 microsecond') AT TIME ZONE 'UTC')::date"
# A case of the backlog (not held out, open now or closed): -1 - its fired hour (0-23) while open
# now; else its fired hour + 24 * the days from its fired day to its `CLOSED_DAY` (at least 0).
BACKLOG_KEY = (
    f"(CASE WHEN {IS_OPEN} THEN -1 - extract(hour FROM fired_at AT TIME ZONE 'UTC')::int"
    f" ELSE extract(hour FROM fired_at AT TIME ZONE 'UTC')::int"
    f" + 24 * GREATEST(0, {CLOSED_DAY} - (fired_at AT TIME ZONE 'UTC')::date) END)"
)
IN_BACKLOG = f"NOT holdout AND (state IS NULL OR state IN {OPEN!r} OR {IS_CLOSED})"


def _cohort(prefix: str, holdout: bool) -> list[tuple[str, str]]:
    cohort = f"holdout IS {'TRUE' if holdout else 'FALSE'}"
    paired = f"{cohort} AND followup_rating IS NOT NULL AND initial_rating IS NOT NULL"
    nps = f"{paired} AND initial_nps IS NOT NULL AND followup_nps IS NOT NULL"

    def net(column: str) -> str:
        return f"CASE WHEN {nps} THEN ({column} >= 9)::int - ({column} <= 6)::int ELSE 0 END"

    return [
        (f"{prefix}_sent", f"({cohort} AND sent)::int"),
        (f"{prefix}_answered", f"({cohort} AND followup_rating IS NOT NULL)::int"),
        (f"{prefix}_paired", f"({paired})::int"),
        (f"{prefix}_initial_sum", f"CASE WHEN {paired} THEN initial_rating ELSE 0 END"),
        (f"{prefix}_followup_sum", f"CASE WHEN {paired} THEN followup_rating ELSE 0 END"),
        (
            f"{prefix}_change_sum",
            f"CASE WHEN {paired} THEN followup_rating - initial_rating ELSE 0 END",
        ),
        (
            f"{prefix}_change_squares",
            f"CASE WHEN {paired} THEN (followup_rating - initial_rating)"
            " * (followup_rating - initial_rating) ELSE 0 END",
        ),
        (f"{prefix}_nps_n", f"({nps})::int"),
        (f"{prefix}_nps_before_net", net("initial_nps")),
        (f"{prefix}_nps_after_net", net("followup_nps")),
    ]


# What one case adds to each additive figure: an SQL expression over a row of `case_facts`
# (and `claim_by`, the alert's claim-by time or NULL).
CONTRIBUTIONS: tuple[tuple[str, str], ...] = (
    ("alerts", "1"),
    ("claimed", "(claimed_at IS NOT NULL)::int"),
    ("resolved", f"COALESCE({IS_RESOLVED}, false)::int"),
    ("not_actionable", "COALESCE(state = 'not_actionable', false)::int"),
    ("still_open", f"({IS_OPEN})::int"),
    ("with_sla", "(claim_by IS NOT NULL)::int"),
    ("claimed_in_time", "COALESCE(claimed_at <= claim_by, false)::int"),
    *_cohort("recovered", False),
    *_cohort("holdout", True),
)
FIGURES = tuple(name for name, _ in CONTRIBUTIONS)


# The dimensions' values as `definitions.CASES` names them.
def dimension_sql(name: str, table: str) -> str:
    """Dimension `name` of a row of `case_facts` called `table`, as `definitions.CASES` names it."""
    return f"COALESCE({table}.reason, '-')" if name == "reason" else f"{table}.{name}"


_UNPIVOT = ", ".join(
    ["('all', 'all')", *(f"('{name}', {dimension_sql(name, 'c')})" for name in FILTERS)]
)

_HISTOGRAMS = (
    ("claim", f"{bucket_sql(CLAIM_SECONDS)}", "claimed_at IS NOT NULL"),
    ("resolve", f"{bucket_sql(RESOLVE_SECONDS)}", IS_RESOLVED),
    ("open", "extract(hour FROM fired_at AT TIME ZONE 'UTC')::int", IS_OPEN),
    ("backlog", BACKLOG_KEY, IN_BACKLOG),
)
_KEY = ("dimension", "value", "day")


def _build_sql(source: str) -> str:
    columns = ", ".join(FIGURES)
    sums = ", ".join(f"sum({name})::bigint AS {name}" for name in FIGURES)
    per_case = ", ".join(f"{expr} AS {name}" for name, expr in CONTRIBUTIONS)
    marks = ", ".join(f"({condition}) AS is_{name}" for name, _, condition in _HISTOGRAMS)
    buckets = ", ".join(f"{expr} AS {name}_bucket" for name, expr, _ in _HISTOGRAMS)
    histograms = "".join(
        f", {name} AS (SELECT dimension, value, day, array_agg(bucket ORDER BY bucket) AS buckets,"
        f" array_agg(n ORDER BY bucket) AS counts FROM (SELECT dimension, value, day,"
        f" {name}_bucket AS bucket, count(*)::int AS n FROM unpivoted WHERE is_{name}"
        f" GROUP BY 1, 2, 3, 4) b GROUP BY 1, 2, 3)"
        for name, _, _ in _HISTOGRAMS
    )
    joins = " ".join(f"LEFT JOIN {name} USING ({', '.join(_KEY)})" for name, _, _ in _HISTOGRAMS)
    arrays = ", ".join(
        f"COALESCE({name}.buckets, '{{}}'), COALESCE({name}.counts, '{{}}')"
        for name, _, _ in _HISTOGRAMS
    )
    return f"""
WITH facts AS (
    SELECT f.*, (f.fired_at AT TIME ZONE 'UTC')::date AS day,
           (a.record -> 'sla' ->> 'claim_by')::timestamptz AS claim_by
    FROM {source} JOIN alerts a ON a.alert_id = f.alert_id
), cases AS (
    SELECT day, {per_case}, {marks}, {buckets}, team, agent, rule, route, severity, channel,
           member, reason
    FROM facts
), unpivoted AS (
    SELECT d.dimension, d.value, c.* FROM cases c CROSS JOIN LATERAL (VALUES {_UNPIVOT})
        AS d(dimension, value)
), figures AS (
    SELECT dimension, value, day, {sums} FROM unpivoted GROUP BY 1, 2, 3
){histograms}
INSERT INTO daily_rollups ({", ".join(_KEY)}, {columns}, claim_buckets, claim_counts,
                           resolve_buckets, resolve_counts, open_hours, open_counts,
                           backlog_keys, backlog_counts)
SELECT {", ".join(_KEY)}, {columns}, {arrays}
FROM figures {joins}
"""


# Each day's facts by the index on fired_at.
REFRESH_DAYS = _build_sql(
    "unnest(%(days)s::date[]) AS t(day) JOIN case_facts f"
    " ON f.fired_at >= (t.day::timestamp AT TIME ZONE 'UTC')"
    " AND f.fired_at < ((t.day + 1)::timestamp AT TIME ZONE 'UTC')"
)
BUILD_ALL = _build_sql("case_facts f")

_TOUCHED_DAYS = """
SELECT DISTINCT (fired_at AT TIME ZONE 'UTC')::date FROM case_facts WHERE alert_id = ANY(%s)
"""
_LOCK_DAYS = """
SELECT count(pg_advisory_xact_lock(key)) FROM (
    SELECT DISTINCT hashtextextended('daily_rollups ' || d::text, 16) AS key
    FROM unnest(%s::date[]) AS d ORDER BY key
) k
"""


async def refresh_days(conn: psycopg.AsyncConnection[Any], days: Collection[date]) -> None:
    """The roll-up rows of these UTC days, computed again from their `case_facts` (in the
    caller's transaction)."""
    if not days:
        return
    ordered = sorted(days)
    await conn.execute(_LOCK_DAYS, (ordered,))
    await conn.execute("DELETE FROM daily_rollups WHERE day = ANY(%s::date[])", (ordered,))
    await conn.execute(REFRESH_DAYS.encode(), {"days": ordered})


async def refresh(conn: psycopg.AsyncConnection[Any], alert_ids: Collection[str]) -> None:
    """The roll-ups of the days these alerts fired on (after `facts.refresh` of them)."""
    if not alert_ids:
        return
    cursor = await conn.execute(_TOUCHED_DAYS, (sorted(alert_ids),))
    await refresh_days(conn, [row[0] for row in await cursor.fetchall()])


async def rebuild(conn: psycopg.AsyncConnection[Any]) -> None:
    """Every roll-up row from `case_facts` (after a bulk load; in the caller's transaction)."""
    await conn.execute("SELECT set_config('jit', 'off', true)")
    await conn.execute("SELECT set_config('work_mem', '256MB', true)")
    await conn.execute("DELETE FROM daily_rollups")
    await conn.execute(BUILD_ALL.encode())
