"""Rows into the history tables: one transaction per batch, every insert `ON CONFLICT DO NOTHING`
(a row already there, by its ids or by its source position, is a replay: nothing is written).

The same transaction folds the touched alerts' `case_facts` again (`facts`), then the daily
roll-ups of the days they fired on (`rollups`). A batch that
PostgreSQL refuses for its content (not for being unreachable) is written row by row, so that one
bad row costs only itself: it is logged with its source position and counted, and the rest of the
batch lands.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import psycopg

from alert_engine.history import facts, rollups
from alert_engine.history.records import (
    AlertRow,
    AnswerRow,
    HoldoutRow,
    Rows,
    SendRow,
    Source,
    TransitionRow,
)

log = logging.getLogger(__name__)

_SOURCE = "source_topic, source_partition, source_offset"

INSERT_ALERT = f"""
INSERT INTO alerts (alert_id, rule, severity, route, team, agent, channel, customer_id, fired_at,
                    event_time, initial_rating, initial_nps, record, {_SOURCE})
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s)
ON CONFLICT DO NOTHING
"""
INSERT_TRANSITION = f"""
INSERT INTO case_transitions ({_SOURCE}, alert_id, state, previous_state, action, actor,
                              user_id, at, reason, note, assignee, record)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)
ON CONFLICT DO NOTHING
"""
INSERT_HOLDOUT = f"""
INSERT INTO holdout_assignments (alert_id, assigned_at, {_SOURCE})
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING
"""
INSERT_ANSWER = f"""
INSERT INTO followup_answers (rating_id, alert_id, rating, previous_rating, nps, comment,
                              answered_at, record, {_SOURCE})
VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s)
ON CONFLICT DO NOTHING
"""
INSERT_SEND = f"""
INSERT INTO followup_sends (survey_id, alert_id, outcome, at, holdout, record, {_SOURCE})
VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s)
ON CONFLICT DO NOTHING
"""


def _params(row: Any) -> tuple[Any, ...]:
    """The row's fields in column order, its source as the three columns it is."""
    values: list[Any] = []
    for column in fields(row):
        value = getattr(row, column.name)
        if isinstance(value, Source):
            values.extend((value.topic, value.partition, value.offset))
        else:
            values.append(value)
    return tuple(values)


_STATEMENTS: tuple[tuple[str, str, type], ...] = (
    ("alerts", INSERT_ALERT, AlertRow),
    ("transitions", INSERT_TRANSITION, TransitionRow),
    ("holdouts", INSERT_HOLDOUT, HoldoutRow),
    ("answers", INSERT_ANSWER, AnswerRow),
    ("sends", INSERT_SEND, SendRow),
)


@dataclass(frozen=True)
class Written:
    """What a batch did: rows offered, and the rows PostgreSQL refused (logged)."""

    offered: int
    refused: int
    # The refused rows by the topic they were read from.
    refused_by_topic: Counter[str] = field(default_factory=Counter)


async def write(conn: psycopg.AsyncConnection[Any], rows: Rows) -> Written:
    """Writes `rows` in one transaction; raises `psycopg.OperationalError` (and the like) when
    PostgreSQL cannot be reached, for the caller to retry the whole batch."""
    touched = {row.alert_id for name, _, _ in _STATEMENTS for row in getattr(rows, name)}
    try:
        async with conn.transaction():
            await _quick_plans(conn)
            await facts.lock(conn, touched)
            for name, statement, _ in _STATEMENTS:
                batch: Sequence[Any] = getattr(rows, name)
                if batch:
                    async with conn.cursor() as cursor:
                        await cursor.executemany(statement, [_params(row) for row in batch])
            await facts.refresh(conn, touched)
            await rollups.refresh(conn, touched)
        return Written(len(rows), 0)
    except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError) as exc:
        if isinstance(exc, psycopg.errors.UndefinedTable):
            raise
        log.warning(
            "a batch of %d history rows was refused (%s); writing it row by row", len(rows), exc
        )
    refused: Counter[str] = Counter()
    for name, statement, _ in _STATEMENTS:
        for row in getattr(rows, name):
            try:
                async with conn.transaction():
                    await facts.lock(conn, [row.alert_id])
                    await conn.execute(statement, _params(row))
                    await facts.refresh(conn, [row.alert_id])
                    await rollups.refresh(conn, [row.alert_id])
            except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError) as exc:
                if isinstance(exc, psycopg.errors.UndefinedTable):
                    raise
                source: Source = row.source
                refused[source.topic] += 1
                log.error(
                    "history row from %s[%s]@%s refused, skipped: %s",
                    source.topic,
                    source.partition,
                    source.offset,
                    exc,
                )
    return Written(len(rows), refused.total(), refused)


async def _quick_plans(conn: psycopg.AsyncConnection[Any]) -> None:
    """No JIT compilation for this transaction: the fold of a large batch looks costly enough to
    the planner to compile, which takes longer (seconds) than running it."""
    await conn.execute("SELECT set_config('jit', 'off', true)")
