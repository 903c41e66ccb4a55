"""`alert-engine history rebuild`: empty the history tables and read the topics from their start
into them again, up to the end each partition had when the rebuild began.

The rebuild reads without a consumer group (every partition, assigned), so the live projection's
committed offsets are untouched: workers go on projecting meanwhile, and what they write twice is
written once. Until the rebuild is done the report sees part of the history.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition

from alert_engine.history.database import Database
from alert_engine.history.migrate import migrate
from alert_engine.history.projection import ProjectionStats, topic_names, write_batch
from alert_engine.settings import KafkaSettings

log = logging.getLogger(__name__)

TABLES = (
    "alerts",
    "case_transitions",
    "holdout_assignments",
    "followup_sends",
    "followup_answers",
    "case_facts",
)
# Emptied with `case_facts` by its trigger (naming it here too makes the TRUNCATE fail).
DERIVED = ("daily_rollups",)


@dataclass(frozen=True)
class Rebuilt:
    records: int
    unreadable: int
    refused: int


async def empty(database: Database) -> None:
    async def truncate(conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(f"TRUNCATE {', '.join(TABLES)}")

    await database.until_done(truncate, what="emptying the history tables")


async def rebuild(kafka: KafkaSettings, url: str, *, batch_size: int = 5000) -> Rebuilt:
    database = Database(url)
    try:
        await database.until_done(migrate, what="the history's schema migrations")
        await empty(database)
        stats = await read_all(kafka, database, batch_size=batch_size)
    finally:
        await database.close()
    return Rebuilt(stats.records, sum(stats.unreadable.values()), stats.refused)


async def read_all(
    kafka: KafkaSettings, database: Database, *, batch_size: int = 5000
) -> ProjectionStats:
    """Every record of the history's topics up to their current end, into the tables."""
    topics = topic_names(kafka)
    stats = ProjectionStats()
    # Without a group, a consumer reads every partition of its topics and commits nothing.
    consumer = AIOKafkaConsumer(
        *topics.all,
        bootstrap_servers=kafka.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=batch_size,
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics.all
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return stats
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > await consumer.position(tp)}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=batch_size)
            # Only up to each partition's end at the start: later records are the live
            # projection's, and a busy topic would never end.
            clipped = {
                tp: [record for record in records if record.offset < ends[tp]]
                for tp, records in batches.items()
            }
            if any(clipped.values()):
                await write_batch(database, topics, clipped, stats)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return stats
    finally:
        await consumer.stop()
