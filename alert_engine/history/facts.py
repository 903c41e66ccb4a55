"""Each alert's case, folded from the history's rows into one row of `case_facts`.

The fold is recomputed from the log for every alert a batch touches, in the batch's transaction:
whatever order records arrive in (an answer before its alert, a replay, two workers), the row is
what the log says. Two workers touching the same alert take turns on an advisory lock per alert
(taken before anything is written, in one order, so they cannot deadlock): the second one's fold
sees the first one's rows.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import psycopg

_COLUMNS = (
    "alert_id, rule, severity, route, team, agent, channel, member, fired_at, initial_rating, "
    "initial_nps, holdout, claimed_at, state, state_at, reason, sent, followup_rating, followup_nps"
)

_UPDATES = ",\n".join(f"    {name} = EXCLUDED.{name}" for name in _COLUMNS.split(", ")[1:])

FOLD = f"""
INSERT INTO case_facts ({_COLUMNS})
SELECT a.alert_id, a.rule, a.severity, a.route,
       COALESCE(NULLIF(a.team, ''), '-'),
       COALESCE(NULLIF(a.agent, ''), '-'),
       COALESCE(NULLIF(a.channel, ''), '-'),
       COALESCE(owner.assignee, NULLIF(claim.actor, ''), NULLIF(latest.actor, ''), '-'),
       a.fired_at, a.initial_rating, a.initial_nps,
       EXISTS (SELECT 1 FROM holdout_assignments h WHERE h.alert_id = a.alert_id),
       claim.at, latest.state, latest.at, latest.reason,
       EXISTS (SELECT 1 FROM followup_sends s WHERE s.alert_id = a.alert_id AND s.outcome = 'sent'),
       answer.rating, answer.nps
FROM alerts a
LEFT JOIN LATERAL (
    SELECT t.at, t.actor FROM case_transitions t
    WHERE t.alert_id = a.alert_id AND t.state = 'claimed'
    ORDER BY t.at, t.source_topic, t.source_partition, t.source_offset LIMIT 1
) claim ON true
LEFT JOIN LATERAL (
    -- The latest change of state (a record that keeps the state, a note say, is no change).
    SELECT t.state, t.at, t.actor, t.reason FROM case_transitions t
    WHERE t.alert_id = a.alert_id AND t.state IS DISTINCT FROM t.previous_state
    ORDER BY t.at DESC, t.source_topic DESC, t.source_partition DESC, t.source_offset DESC
    LIMIT 1
) latest ON true
LEFT JOIN LATERAL (
    SELECT t.assignee FROM case_transitions t
    WHERE t.alert_id = a.alert_id AND t.assignee IS NOT NULL
    ORDER BY t.at DESC, t.source_topic DESC, t.source_partition DESC, t.source_offset DESC
    LIMIT 1
) owner ON true
LEFT JOIN LATERAL (
    SELECT r.rating, r.nps FROM followup_answers r
    WHERE r.alert_id = a.alert_id ORDER BY r.answered_at, r.rating_id LIMIT 1
) answer ON true
{{where}}
ON CONFLICT (alert_id) DO UPDATE SET
{_UPDATES}
"""

_LOCK = """
SELECT count(pg_advisory_xact_lock(key))
FROM (SELECT DISTINCT hashtextextended(id, 16) AS key FROM unnest(%s::text[]) AS id ORDER BY key) k
"""


async def lock(conn: psycopg.AsyncConnection[Any], alert_ids: Collection[str]) -> None:
    """Holds the alerts' fold for this transaction (call first in it)."""
    if alert_ids:
        await conn.execute(_LOCK, (sorted(alert_ids),))


async def refresh(conn: psycopg.AsyncConnection[Any], alert_ids: Collection[str]) -> None:
    """The facts of these alerts, folded again from their rows (in the caller's transaction,
    after `lock`)."""
    if alert_ids:
        await conn.execute(
            FOLD.format(where="WHERE a.alert_id = ANY(%s)").encode(), (sorted(alert_ids),)
        )


async def refresh_all(conn: psycopg.AsyncConnection[Any]) -> None:
    """Every alert's facts (after a bulk load)."""
    await conn.execute(FOLD.format(where="WHERE true").encode())
