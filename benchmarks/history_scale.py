"""The outcome history at scale: N alerts over two years (default 1,000,000) with their cases,
follow-up sends and answers and holdouts, generated in PostgreSQL; then every kind of report
(`alert-engine report`'s query) timed, and the projection's write path (records read and written
in batches, as the worker does) measured in records per second.

    .venv/bin/python benchmarks/history_scale.py [--alerts N] [--repeat R] [--kafka-records K]

Uses ALERT_ENGINE_DATABASE_URL if set (its database is filled: use an empty one), else a throwaway
PostgreSQL from devstack.postgres. Prints p50 / p95 / max per report view.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from alert_engine.history import rollups
from alert_engine.history.facts import refresh_all
from alert_engine.history.migrate import migrate
from alert_engine.history.queries import ReportQuery, report
from alert_engine.history.records import Rows, Source, TopicNames, read
from alert_engine.history.writer import write
from devstack.postgres import PostgresServer, create_database

END = datetime(2026, 12, 1, tzinfo=UTC)
START = END - timedelta(days=730)

# Deterministic: setseed before the generation. Shares as in a contact center's recovery desk.
_GENERATE = """
SELECT setseed(0.16);
INSERT INTO alerts (alert_id, rule, severity, route, team, agent, channel, customer_id, fired_at,
                    event_time, initial_rating, initial_nps, record, source_topic,
                    source_partition, source_offset)
SELECT 'al-' || n, (ARRAY['negative-rating','detractor','angry-comment'])[1 + n %% 3],
       (ARRAY['high','critical'])[1 + n %% 2], 'default',
       'team-' || (n %% 12), 'agent-' || (n %% 400), (ARRAY['chat','phone','email'])[1 + n %% 3],
       'c-' || n, %(start)s::timestamptz + (n::float8 / %(alerts)s) * interval '730 days',
       %(start)s::timestamptz + (n::float8 / %(alerts)s) * interval '730 days',
       1 + (n %% 2), (n * 7) %% 11, jsonb_build_object('id', 'al-' || n), 'alerts', n %% 12, n / 12
FROM generate_series(1, %(alerts)s) AS n;

CREATE TEMP TABLE plan AS
SELECT alert_id, fired_at, random() AS r1, random() AS r2, random() AS r3, random() AS r4,
       'member-' || (abs(hashtext(alert_id)) %% 40) AS member
FROM alerts;

INSERT INTO holdout_assignments (alert_id, assigned_at, source_topic, source_partition,
                                 source_offset)
SELECT alert_id, fired_at, 'cases', 0, row_number() OVER () FROM plan WHERE r4 < 0.05;

INSERT INTO case_transitions (source_topic, source_partition, source_offset, alert_id, state,
                              previous_state, action, actor, at, record)
SELECT 'cases', 1, row_number() OVER (), alert_id, 'claimed', 'open', 'claim', member,
       fired_at + r1 * interval '2 hours', '{}'::jsonb
FROM plan WHERE r4 >= 0.05 AND r1 < 0.85;

INSERT INTO case_transitions (source_topic, source_partition, source_offset, alert_id, state,
                              previous_state, action, actor, at, reason, record)
SELECT 'cases', 2, row_number() OVER (), alert_id,
       CASE WHEN r2 < 0.6 THEN 'resolved_followup' WHEN r2 < 0.9 THEN 'resolved_no_followup'
            ELSE 'not_actionable' END,
       'claimed', 'resolve', member, fired_at + interval '2 hours' + r2 * interval '1 day',
       (ARRAY['refund','apology','call_back'])[1 + (abs(hashtext(alert_id)) %% 3)], '{}'::jsonb
FROM plan WHERE r4 >= 0.05 AND r1 < 0.8;

INSERT INTO followup_sends (survey_id, alert_id, outcome, at, holdout, record, source_topic,
                            source_partition, source_offset)
SELECT 'sv-' || alert_id, alert_id, 'sent', fired_at + interval '2 days', r4 < 0.05, '{}'::jsonb,
       'followups', 0, row_number() OVER ()
FROM plan WHERE (r4 < 0.05 OR (r1 < 0.8 AND r2 < 0.6)) AND r3 < 0.9;

INSERT INTO followup_answers (rating_id, alert_id, rating, previous_rating, nps, answered_at,
                              record, source_topic, source_partition, source_offset)
SELECT 'fu-' || alert_id, alert_id,
       LEAST(5, 1 + floor(r3 * 4 + CASE WHEN r4 < 0.05 THEN 0 ELSE 1 END))::int, 1,
       floor(r1 * 11)::int, fired_at + interval '3 days', '{}'::jsonb, 'cases', 3,
       row_number() OVER ()
FROM plan WHERE (r4 < 0.05 OR (r1 < 0.8 AND r2 < 0.6)) AND r3 < 0.35;
ANALYZE;
"""

VIEWS: list[tuple[str, int, str, dict[str, str]]] = [
    ("this week by team", 7, "team", {}),
    ("4 weeks by agent", 28, "agent", {}),
    ("12 weeks by team", 84, "team", {}),
    ("12 weeks by member, one team", 84, "member", {"team": "team-3"}),
    ("52 weeks by week", 364, "week", {}),
    ("52 weeks by month, one team", 364, "month", {"team": "team-5"}),
    ("52 weeks by team", 364, "team", {}),
    ("52 weeks by agent", 364, "agent", {}),
    ("104 weeks by month", 728, "month", {}),
]


async def fill(url: str, alerts: int) -> float:
    started = time.monotonic()
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await migrate(conn)
        for statement in _GENERATE.split(";\n"):
            if statement.strip():
                await conn.execute(statement, {"start": START, "alerts": alerts})
        async with conn.transaction():
            await conn.execute("SELECT set_config('jit', 'off', true)")
            await refresh_all(conn)
        async with conn.transaction():
            await rollups.rebuild(conn)
        await conn.execute("VACUUM ANALYZE case_facts")
        await conn.execute("VACUUM ANALYZE daily_rollups")
    return time.monotonic() - started


async def time_views(url: str, repeat: int) -> list[tuple[str, list[float]]]:
    results = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for name, days, by, filters in VIEWS:
            query = ReportQuery(END - timedelta(days=days), END, by, filters)
            await report(conn, query)  # warm the cache, as a dashboard in use is
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                await report(conn, query)
                times.append(time.perf_counter() - started)
            results.append((name, times))
    return results


async def projection_rate(url: str, records: int, batch: int) -> float:
    """Records per second through the projection's read and write (Kafka aside)."""
    from tests.history_factories import story

    topics = TopicNames("alerts", "cases", "followups")
    values: list[tuple[str, bytes]] = []
    number = 10_000_000
    while len(values) < records:
        number += 1
        # Alerts of the last two days of the history, as a live worker writes them: each batch
        # refreshes the roll-ups of days already holding their share of the million.
        fired_at = END - timedelta(seconds=(number * 7) % (2 * 86400) + 1)
        values += [
            (topic, value) for topic, _, value in story(number, fired_at=fired_at).records(topics)
        ]
    values = values[:records]
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        started = time.monotonic()
        for first in range(0, len(values), batch):
            rows = Rows()
            for offset, (topic, value) in enumerate(values[first : first + batch], first):
                read(topics, Source(topic, 7, offset), value, rows)
            await write(conn, rows)
        return len(values) / (time.monotonic() - started)


async def projection_through_kafka(
    url: str, bootstrap: str, records: int, batch_size: int = 5000
) -> float:
    """Records per second of the live projection catching up on a backlog of `records` on the
    real broker (alerts, cases and followups topics), as a worker's task runs it."""
    from alert_engine.cli.kafka import ensure_topics, produce_lines
    from alert_engine.history.projection import Projection, topic_names
    from alert_engine.settings import DatabaseSettings, KafkaSettings
    from tests.history_factories import story

    kafka = KafkaSettings(bootstrap=bootstrap, partitions=4).with_topic_suffix(
        f"bench{time.time_ns()}"
    )
    topics = topic_names(kafka)
    await ensure_topics(kafka, topics.all)
    by_topic: dict[str, tuple[list[bytes], list[bytes | None]]] = {}
    produced, number = 0, 20_000_000
    while produced < records:
        number += 1
        for topic, key, value in story(number).records(topics):
            values, keys = by_topic.setdefault(topic, ([], []))
            values.append(value)
            keys.append(key)
            produced += 1
    for topic, (values, keys) in by_topic.items():
        await produce_lines(bootstrap, topic, values, keys)
    projection = Projection(
        kafka,
        DatabaseSettings(url=url, batch_size=batch_size),
        group_id=f"bench-{time.time_ns()}",
    )
    task = asyncio.create_task(projection.run())
    await projection.started.wait()
    started = time.monotonic()
    # The process's memory as the projection catches up: flat, or growing with the records?
    memory = [rss_mb()]
    while projection.stats.records < produced:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
        memory.append(rss_mb())
    elapsed = time.monotonic() - started
    tenth = max(1, len(memory) // 10)
    print(
        "RSS while catching up (MB, each tenth of the way): "
        + " ".join(f"{max(memory[i : i + tenth]):.0f}" for i in range(0, len(memory), tenth))
    )
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return produced / elapsed


def rss_mb() -> float:
    """This process's resident memory (Linux), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--projection-records", type=int, default=20_000)
    parser.add_argument(
        "--kafka-records",
        type=int,
        default=0,
        help="also time the live projection on a backlog of this many records on a local broker",
    )
    parser.add_argument("--batch-size", type=int, default=5000, help="the projection's batches")
    args = parser.parse_args()
    server = None
    url = os.environ.get("ALERT_ENGINE_DATABASE_URL")
    if not url:
        server = PostgresServer(Path(tempfile.mkdtemp(prefix="bench-history-")))
        server.start()
        url = create_database(server.url, "history")
    try:
        seconds = asyncio.run(fill(url, args.alerts))
        print(f"generated {args.alerts:,} alerts over two years in {seconds:.0f} s")
        print(f"{'view':<34} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        for name, times in asyncio.run(time_views(url, args.repeat)):
            print(
                f"{name:<34} {statistics.median(times) * 1000:8.0f} "
                f"{percentile(times, 0.95) * 1000:8.0f} {max(times) * 1000:8.0f}"
            )
        rate = asyncio.run(projection_rate(url, args.projection_records, args.batch_size))
        print(f"projection write path: {rate:,.0f} records/s (batches of {args.batch_size})")
        if args.kafka_records:
            from devstack.stack import running_stack

            with running_stack() as endpoints:
                rate = asyncio.run(
                    projection_through_kafka(
                        url, endpoints.kafka_bootstrap, args.kafka_records, args.batch_size
                    )
                )
            print(f"projection through Kafka: {rate:,.0f} records/s ({args.kafka_records:,})")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
