"""The history's schema on the real PostgreSQL of the test session: migrated up from an empty
database, and rows written once however often they are offered."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import psycopg
import pytest

from alert_engine.cases import CaseEvent, CaseState
from alert_engine.history import migrate as migrations
from alert_engine.history.migrate import MigrationError, migrate, migrate_url
from alert_engine.history.records import Rows, Source, TopicNames, read
from alert_engine.history.writer import write
from tests.factories import make_alert
from tests.history_factories import rows_of
from tests.history_factories import story as a_story

TOPICS = TopicNames("alerts", "cases", "followups")
TABLES = {
    "alerts",
    "case_transitions",
    "holdout_assignments",
    "followup_sends",
    "followup_answers",
    "schema_migrations",
    "case_facts",
    "daily_rollups",
}


async def connect(url: str) -> psycopg.AsyncConnection:
    return await psycopg.AsyncConnection.connect(url, autocommit=True)


async def tables(conn: psycopg.AsyncConnection) -> set[str]:
    cursor = await conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    )
    return {row[0] for row in await cursor.fetchall()}


async def count(conn: psycopg.AsyncConnection, table: str) -> int:
    cursor = await conn.execute(f"SELECT count(*) FROM {table}")
    row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def test_migrations_run_up_from_an_empty_database_once(database_url: str) -> None:
    async with await connect(database_url) as conn:
        assert await tables(conn) == set()
        applied = await migrate(conn)
        assert [m.version for m in applied] == [m.version for m in migrations.migrations()]
        assert await tables(conn) == TABLES
        assert await migrate(conn) == []
        cursor = await conn.execute("SELECT version, name FROM schema_migrations ORDER BY 1")
        assert await cursor.fetchall() == [
            (1, "history"),
            (2, "daily_rollups"),
            (3, "rollup_values_index"),
            (4, "backlog"),
        ]
        # The indexes the report's range and filters use, and the dashboard's filter values.
        cursor = await conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'alerts'")
        indexes = {row[0] for row in await cursor.fetchall()}
        assert {"alerts_fired_at", "alerts_team_fired_at"} <= indexes
        cursor = await conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'daily_rollups'"
        )
        indexes = {row[0] for row in await cursor.fetchall()}
        assert "daily_rollups_day_values" in indexes and "daily_rollups_day" not in indexes


async def test_workers_starting_together_migrate_once(database_url: str) -> None:
    results = await asyncio.gather(*(migrate_url(database_url) for _ in range(4)))
    assert sorted(len(applied) for applied in results) == [0, 0, 0, len(migrations.migrations())]


async def test_an_edited_migration_or_a_newer_database_stops_the_runner(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with await connect(database_url) as conn:
        await migrate(conn)
        original = migrations.migrations()
        edited = [replace(original[0], sql=original[0].sql + "\n-- edited\n"), *original[1:]]
        monkeypatch.setattr(migrations, "migrations", lambda: edited)
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn)
        monkeypatch.setattr(migrations, "migrations", lambda: original)
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (99, 'future', 'x')"
        )
        with pytest.raises(MigrationError, match="newer release"):
            await migrate(conn)


async def counts(conn: psycopg.AsyncConnection) -> dict[str, int]:
    skip = {"schema_migrations", "case_facts", "daily_rollups"}
    return {table: await count(conn, table) for table in sorted(TABLES - skip)}


async def test_rows_offered_again_are_written_once(database_url: str) -> None:
    stories = [a_story(1), a_story(2, holdout=True, claimed_by=None, claim_after=None)]
    rows = rows_of(stories, TOPICS)
    async with await connect(database_url) as conn:
        await migrate(conn)
        await write(conn, rows)
        first = await counts(conn)
        assert first == {
            "alerts": 2,
            "case_transitions": 2 + 1,  # claimed + resolved; the holdout case resolved
            "holdout_assignments": 1,
            "followup_sends": 2,
            "followup_answers": 2,
        }
        # A replay: the same records at the same offsets.
        await write(conn, rows)
        # The same records again at later offsets (a producer's retry): ids keep them once.
        later = Rows()
        for index, (topic, _, value) in enumerate(stories[0].records(TOPICS)):
            read(TOPICS, Source(topic, 1, 1000 + index), value, later)
        await write(conn, later)
        assert await counts(conn) == first


async def test_text_postgresql_cannot_hold_is_cleaned_not_refused(database_url: str) -> None:
    alert = make_alert(key="r-nul", team="ord\x00ers", comment="bad \x00 byte \\u0000 kept")
    rows = Rows()
    read(TOPICS, Source("alerts", 0, 0), alert.to_json(), rows)
    claim = CaseEvent(
        alert_id=alert.id,
        state=CaseState.CLAIMED,
        previous_state=CaseState.OPEN,
        actor="le\x00e",
        at=alert.fired_at + timedelta(minutes=1),
        alert=alert,
    )
    read(TOPICS, Source("cases", 0, 0), claim.to_json(), rows)
    async with await connect(database_url) as conn:
        await migrate(conn)
        written = await write(conn, rows)
        assert written.refused == 0
        cursor = await conn.execute("SELECT team, record->'event'->>'comment' FROM alerts")
        assert await cursor.fetchall() == [("orders", "bad  byte \\u0000 kept")]
        cursor = await conn.execute("SELECT actor FROM case_transitions")
        assert await cursor.fetchall() == [("lee",)]


def test_records_that_cannot_be_read_are_reported_with_where_they_are() -> None:
    rows = Rows()
    read(TOPICS, Source("cases", 2, 7), b"{not json", rows)
    read(TOPICS, Source("cases", 2, 8), b'{"alert_id": "al-x", "state": "claimed"}', rows)
    read(TOPICS, Source("alerts", 0, 3), b'{"id": "al-y"}', rows)
    read(TOPICS, Source("followups", 1, 4), None, rows)
    assert len(rows) == 0
    assert [(bad.source.topic, bad.source.offset) for bad in rows.unreadable] == [
        ("cases", 7),
        ("cases", 8),
        ("alerts", 3),
        ("followups", 4),
    ]
    assert "at: an ISO 8601 time is required" in rows.unreadable[1].reason


def test_case_records_of_a_newer_release_keep_their_new_fields() -> None:
    """The case lifecycle adds reason codes, notes and assignees: they land in their columns,
    and fields no column has yet are in the record."""
    alert = make_alert()
    record = CaseEvent(
        alert_id=alert.id,
        state=CaseState.RESOLVED_NO_FOLLOWUP,
        previous_state=CaseState.CLAIMED,
        actor="lee",
        at=alert.fired_at,
        alert=alert,
        reason="refund",
        note="Refunded the delivery fee.",
        assignee="U9",
        assignee_name="kim",
        sla_breached=True,
    )
    rows = Rows()
    read(TOPICS, Source("cases", 0, 0), record.to_json(), rows)
    [transition] = rows.transitions
    assert (transition.reason, transition.note, transition.assignee) == (
        "refund",
        "Refunded the delivery fee.",
        "kim",
    )
    assert '"sla_breached":true' in transition.record
    # An unknown state still projects (a lifecycle with more states than this release's).
    rows = Rows()
    value = record.to_json().replace(b'"resolved_no_followup"', b'"escalated_to_legal"', 1)
    read(TOPICS, Source("cases", 0, 1), value, rows)
    assert [t.state for t in rows.transitions] == ["escalated_to_legal"]


async def test_an_upgraded_database_gets_the_rollups_of_its_history(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = migrations.migrations()
    async with await connect(database_url) as conn:
        # A release before the roll-ups wrote some history...
        monkeypatch.setattr(migrations, "migrations", lambda: original[:1])
        await migrate(conn)
        stories = [a_story(1), a_story(30, claimed_by=None, claim_after=None, resolution=None)]
        monkeypatch.setattr("alert_engine.history.rollups.refresh", lambda conn, ids: _nothing())
        await write(conn, rows_of(stories, TOPICS))
        monkeypatch.undo()
        # ...then this one migrates: the roll-ups hold what was there.
        assert [m.version for m in await migrate(conn)] == [m.version for m in original[1:]]
        cursor = await conn.execute(
            "SELECT day, alerts, claimed, still_open, cardinality(backlog_keys) FROM daily_rollups"
            " WHERE dimension = 'all' ORDER BY day"
        )
        # (Each case is in the backlog's histogram: open now, or closed on a known day.)
        assert await cursor.fetchall() == [
            (
                story.fired_at.date(),
                1,
                1 if story.claimed_by else 0,
                0 if story.resolution else 1,
                1,
            )
            for story in stories
        ]


async def _nothing() -> None:
    return None
