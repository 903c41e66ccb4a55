"""The projection through the real broker into the real PostgreSQL: each fact written once
whatever reads it again (a second worker, records published twice), the rebuild equal to the live
projection, a PostgreSQL outage waited out with nothing lost, and a real worker projecting."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from click.testing import CliRunner

from alert_engine.alerts import Alert
from alert_engine.cases import CaseState
from alert_engine.cli.kafka import ensure_topics, produce_lines
from alert_engine.cli.main import main
from alert_engine.history.database import DATABASE
from alert_engine.history.projection import Projection, topic_names
from alert_engine.history.rebuild import DERIVED, TABLES, rebuild
from alert_engine.settings import DatabaseSettings, KafkaSettings
from devstack.postgres import PostgresServer, create_database
from devstack.stack import Endpoints
from tests.factories import encode, rating
from tests.followup_factories import case, followup_engine
from tests.history_factories import Story, expected
from tests.history_factories import story as a_story

pytestmark = pytest.mark.integration

# Where records of the same fact may differ between two projections: an alert's row comes from
# its `alerts` record or from the first case record carrying it, whichever is written first.
_SOURCE_OF_ALERTS = ("source_topic", "source_partition", "source_offset")


def seeded(first: int = 0) -> list[Story]:
    """Cases of every kind: resolved and answered, held out, not actionable, reopened."""
    stories = [a_story(first + n, claimed_by=("lee", "kim")[n % 2]) for n in range(12)]
    stories += [
        a_story(
            first + 100 + n,
            holdout=True,
            claimed_by=None,
            claim_after=None,
            resolution=None,
            resolve_after=None,
            answer_rating=2 + n % 3,
        )
        for n in range(5)
    ]
    stories += [
        a_story(
            first + 200 + n,
            resolution="not_actionable",
            sent=False,
            answer_rating=None,
            answer_nps=None,
        )
        for n in range(3)
    ]
    stories += [
        a_story(first + 300 + n, reopened=True, sent=False, answer_rating=None, answer_nps=None)
        for n in range(2)
    ]
    return stories


async def produce(kafka: KafkaSettings, stories: list[Story]) -> int:
    topics = topic_names(kafka)
    by_topic: dict[str, tuple[list[bytes], list[bytes | None]]] = {}
    for story in stories:
        for topic, key, value in story.records(topics):
            values, keys = by_topic.setdefault(topic, ([], []))
            values.append(value)
            keys.append(key)
    sent = 0
    for topic, (values, keys) in by_topic.items():
        sent += await produce_lines(kafka.bootstrap, topic, values, keys)
    return sent


async def dump(
    url: str, *, without_alert_sources: bool = False
) -> dict[str, list[tuple[Any, ...]]]:
    tables: dict[str, list[tuple[Any, ...]]] = {}
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for table in (*TABLES, *DERIVED):
            cursor = await conn.execute(f"SELECT * FROM {table}")  # fixed names
            names = [column.name for column in cursor.description or []]
            rows = await cursor.fetchall()
            if without_alert_sources and table == "alerts":
                keep = [i for i, name in enumerate(names) if name not in _SOURCE_OF_ALERTS]
                rows = [tuple(row[i] for i in keep) for row in rows]
            tables[table] = sorted(rows, key=repr)
    return tables


async def counts(url: str) -> dict[str, int]:
    # The roll-ups are compared whole (live against rebuilt), not counted.
    return {
        table: len(rows) for table, rows in (await dump(url)).items() if table != "daily_rollups"
    }


def expected_counts(stories: list[Story]) -> dict[str, int]:
    want = expected(stories)
    transitions = sum(
        (s.claimed_by is not None) + (s.resolution is not None) + s.reopened for s in stories
    )
    return {
        "alerts": len(stories),
        "case_transitions": transitions,
        "holdout_assignments": sum(s.holdout for s in stories),
        "followup_sends": want.sent,
        "followup_answers": want.answered,
        "case_facts": len(stories),
    }


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s")
        await asyncio.sleep(0.1)


def settings_for(url: str) -> DatabaseSettings:
    return DatabaseSettings(url=url, batch_wait=0.05)


async def start(projection: Projection) -> asyncio.Task[None]:
    task = asyncio.create_task(projection.run())
    started = asyncio.create_task(projection.started.wait())
    done, _ = await asyncio.wait([task, started], timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raises what stopped it
    assert started in done, "the projection did not start"
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_each_fact_is_written_once_and_a_rebuild_equals_the_live_projection(
    stack: Endpoints, unique: str, database_url: str, postgres_server_url: str
) -> None:
    kafka = KafkaSettings(bootstrap=stack.kafka_bootstrap, partitions=3).with_topic_suffix(unique)
    topics = topic_names(kafka)
    await ensure_topics(kafka, topics.all)
    stories = seeded()
    records = await produce(kafka, stories)
    want = expected_counts(stories)

    live = Projection(kafka, settings_for(database_url), group_id=f"history-{unique}")
    task = await start(live)
    try:
        await eventually(lambda: _equal(counts(database_url), want))
        # A second worker in another group reads every record again; records published twice
        # (a producer's retry) come again at later offsets. Neither writes anything twice.
        other = Projection(kafka, settings_for(database_url), group_id=f"history2-{unique}")
        other_task = await start(other)
        await produce(kafka, stories[:5])
        try:
            await eventually(
                lambda: _at_least(other.stats.records, records + _records(stories[:5]))
            )
            await eventually(lambda: _at_least(live.stats.records, records + _records(stories[:5])))
        finally:
            await stop(other_task)
        assert await counts(database_url) == want
        # A new fact after all that is still written, once.
        later = [a_story(900)]
        await produce(kafka, later)
        await eventually(lambda: _equal(counts(database_url), expected_counts([*stories, *later])))
    finally:
        await stop(task)
    live_tables = await dump(database_url, without_alert_sources=True)

    # The rebuild into another database reads the topics from their start: the same history.
    rebuilt_url = create_database(postgres_server_url, f"rebuilt_{unique}")
    result = await rebuild(kafka, rebuilt_url, batch_size=7)
    assert result.records == records + _records(stories[:5]) + _records(later)
    assert (result.unreadable, result.refused) == (0, 0)
    assert await dump(rebuilt_url, without_alert_sources=True) == live_tables
    # A rebuild of a database that has its history already empties it first: the same again.
    await rebuild(kafka, rebuilt_url)
    assert await dump(rebuilt_url, without_alert_sources=True) == live_tables


def _records(stories: list[Story]) -> int:
    names = topic_names(KafkaSettings())
    return sum(len(story.records(names)) for story in stories)


async def _equal(value: Awaitable[dict[str, int]], want: dict[str, int]) -> bool:
    return await value == want


async def _at_least(value: int, want: int) -> bool:
    return value >= want


async def test_a_postgresql_outage_is_waited_out_and_loses_nothing(
    stack: Endpoints, unique: str, tmp_path: Path
) -> None:
    server = PostgresServer(tmp_path / "pg-under-test")
    server.start()
    url = create_database(server.url, "history")
    kafka = KafkaSettings(bootstrap=stack.kafka_bootstrap, partitions=2).with_topic_suffix(unique)
    await ensure_topics(kafka, topic_names(kafka).all)
    first, second = seeded(), seeded(1000)
    stories = [*first, *second]
    projection = Projection(kafka, settings_for(url), group_id=f"history-{unique}")
    task = await start(projection)
    try:
        await produce(kafka, first)
        await eventually(lambda: _equal(counts(url), expected_counts(first)))
        server.kill()  # SIGKILL: the connection breaks mid-session
        await produce(kafka, second)
        await eventually(lambda: _at_least(DATABASE.waiting, 1))
        assert not DATABASE.reachable
        await asyncio.sleep(1.0)  # a few retries against the dead server
        server.start()
        await eventually(lambda: _equal(counts(url), expected_counts(stories)), within=60)
        assert DATABASE.reachable
        assert projection.stats.refused == 0
    finally:
        await stop(task)
        server.stop()


def test_a_worker_projects_its_alerts_cases_and_surveys_and_the_cli_reports_them(
    stack: Endpoints, unique: str, tmp_path: Path, database_url: str
) -> None:
    engine = followup_engine(stack, unique, tmp_path)
    engine.env["ALERT_ENGINE_DATABASE_URL"] = database_url
    worker = engine.worker().start()

    def count(table: str) -> int:
        with psycopg.connect(database_url) as conn:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # fixed names
        return int(row[0]) if row else 0

    try:
        engine.produce(
            engine.kafka.ratings_topic,
            [encode(rating(id=f"r-{n}", team=("orders", "billing")[n % 2])) for n in range(4)],
        )
        engine.wait_for(lambda: len(engine.delivered()) == 4)
        engine.wait_for(lambda: count("alerts") == 4)
        # One case resolved with a follow-up: its survey goes out a second later, and the send
        # reaches the history through the followups topic.
        [first] = [alert for alert in engine.delivered() if alert["key"] == "r-0"]
        resolved = case(Alert.model_validate(first), CaseState.RESOLVED_FOLLOWUP)
        engine.produce(engine.kafka.cases_topic, [resolved.to_json()])
        engine.wait_for(lambda: count("followup_sends") == 1)
        assert count("case_transitions") == 1
        assert worker.readiness()["database_reachable"] is True
        kafka = engine.kafka
        assert worker.stats()["history_records"] == {
            kafka.alerts_topic: 4,
            kafka.cases_topic: 1,
            kafka.followups_topic: 1,
        }
    finally:
        worker.stop()

    env = {**engine.env}
    result = CliRunner().invoke(main, ["report", "--format", "json", "--since", "1d"], env=env)
    assert result.exit_code == 0, result.output
    document = orjson.loads(result.output)
    assert [(row["key"], row["alerts"]) for row in document["rows"]] == [
        ("billing", 2),
        ("orders", 2),
    ]
    assert (document["total"]["resolved"], document["total"]["sent"]) == (1, 1)
    result = CliRunner().invoke(main, ["history", "rebuild"], env=env)
    assert result.exit_code == 0, result.output
    assert "rebuilt the history from 6 record(s)" in result.output  # 4 alerts, a case, a send
    result = CliRunner().invoke(main, ["report", "--since", "1d", "--by", "severity"], env=env)
    assert result.exit_code == 0, result.output
    assert all(len(line) <= 100 for line in result.output.splitlines())
    assert "high" in result.output.split()
