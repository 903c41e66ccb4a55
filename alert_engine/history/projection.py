"""The projection: the `alerts`, `cases` and `followups` topics into the history tables.

It runs in every worker (`worker.history_agents`) with a Kafka consumer of its own, in its own
consumer group (`<app id>-history`), not as a Faust agent next to delivery: Faust commits a
record's offset once every agent reading it is done, so a PostgreSQL outage would hold back the
alerts' offsets, and fill the streams' buffers until delivery itself waits. Here an outage holds
back only the history: each batch (`getmany`, up to `batch_size` records) is written in one
transaction, retried until PostgreSQL answers, and only then are its offsets committed. A worker
killed in between, a rebalance, a second worker or a rebuild read some records again, and write
nothing twice (`writer`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import OffsetAndMetadata

from alert_engine.history.database import Database
from alert_engine.history.migrate import migrate
from alert_engine.history.records import Rows, Source, TopicNames, read
from alert_engine.history.writer import write
from alert_engine.settings import DatabaseSettings, KafkaSettings

log = logging.getLogger(__name__)


def topic_names(kafka: KafkaSettings) -> TopicNames:
    return TopicNames(
        alerts=kafka.alerts_topic, cases=kafka.cases_topic, followups=kafka.followups_topic
    )


@dataclass
class ProjectionStats:
    records: int = 0
    batches: int = 0
    records_by_topic: Counter[str] = field(default_factory=Counter)
    refused_by_topic: Counter[str] = field(default_factory=Counter)
    # Rows PostgreSQL refused for their content, and records that could not be read at all.
    refused: int = 0
    unreadable: Counter[str] = field(default_factory=Counter)


def rows_of(
    topics: TopicNames, batches: Mapping[TopicPartition, Sequence[ConsumerRecord[Any, Any]]]
) -> Rows:
    rows = Rows()
    for tp, records in batches.items():
        for record in records:
            read(topics, Source(tp.topic, tp.partition, record.offset), record.value, rows)
    return rows


async def write_batch(
    database: Database,
    topics: TopicNames,
    batches: Mapping[TopicPartition, Sequence[ConsumerRecord[Any, Any]]],
    stats: ProjectionStats,
) -> None:
    """One batch into PostgreSQL, waiting out an outage."""
    rows = rows_of(topics, batches)
    for bad in rows.unreadable:
        stats.unreadable[bad.source.topic] += 1
        log.warning(
            "history: %s[%s]@%s cannot be read, skipped: %s",
            bad.source.topic,
            bad.source.partition,
            bad.source.offset,
            bad.reason,
        )
    if len(rows):
        written = await database.until_done(
            lambda conn: write(conn, rows), what=f"a batch of {len(rows)} history rows"
        )
        stats.refused += written.refused
        stats.refused_by_topic.update(written.refused_by_topic)
    for tp, records in batches.items():
        stats.records_by_topic[tp.topic] += len(records)
    stats.records += sum(len(records) for records in batches.values())
    stats.batches += 1


class Projection:
    """The live projection of one worker."""

    def __init__(
        self,
        kafka: KafkaSettings,
        settings: DatabaseSettings,
        group_id: str,
        *,
        stats: ProjectionStats | None = None,
    ) -> None:
        if settings.url is None:
            raise ValueError("the projection needs a database URL")
        self.kafka = kafka
        self.settings = settings
        self.group_id = group_id
        self.topics = topic_names(kafka)
        self.database = Database(settings.url.get_secret_value())
        self.stats = stats or ProjectionStats()
        # Set once the schema is migrated and the consumer started.
        self.started = asyncio.Event()

    async def run(self) -> None:
        """Until cancelled."""
        await self.database.until_done(migrate, what="the history's schema migrations")
        consumer = AIOKafkaConsumer(
            *self.topics.all,
            bootstrap_servers=self.kafka.bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.settings.batch_size,
            # An outage longer than this loses the group membership (the partitions move, and
            # their records are read again, once): a wait for PostgreSQL is not a poll.
            max_poll_interval_ms=600_000,
        )
        try:
            await consumer.start()
            self.started.set()
            while True:
                batches = await consumer.getmany(
                    timeout_ms=int(self.settings.batch_wait * 1000),
                    max_records=self.settings.batch_size,
                )
                if not batches:
                    continue
                await write_batch(self.database, self.topics, batches, self.stats)
                offsets = {
                    tp: OffsetAndMetadata(records[-1].offset + 1, "")
                    for tp, records in batches.items()
                    if records
                }
                try:
                    await consumer.commit(offsets)
                except (CommitFailedError, KafkaError) as exc:
                    # Written, not committed: whoever reads them next writes nothing twice.
                    log.warning("history: offsets not committed (read again later): %s", exc)
        finally:
            await consumer.stop()
            await self.database.close()
