"""Small Kafka helpers for the CLI, the demo and tests: create topics, send raw events, read a
whole topic back."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from alert_engine.settings import KafkaSettings


async def ensure_topics(
    kafka: KafkaSettings,
    names: Iterable[str] | None = None,
    *,
    extra: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Create the engine's topics with the configured partition count, if they do not exist.

    Done before any worker starts, so the broker never auto-creates them with its own default
    partition count (the input topics and the tables' changelogs must be co-partitioned). Each
    is created with the configured replication factor and `min.insync.replicas`, if one is set.
    """
    wanted = list(names if names is not None else kafka.engine_topics)
    # Topics the engine's tables use, with their configuration (name -> topic configs).
    extra = extra or {}
    wanted.extend(name for name in extra if name not in wanted)
    replicas = (
        {"min.insync.replicas": str(kafka.min_insync_replicas)}
        if kafka.min_insync_replicas is not None
        else {}
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        # Inside the try: a start that cannot reach the broker leaves a client to close.
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name,
                num_partitions=kafka.partitions,
                replication_factor=kafka.replication_factor,
                topic_configs={**replicas, **extra.get(name, {})},
            )
            for name in wanted
            if name not in existing
        ]
        if missing:
            # Another process may create one in between: the outcome is the same.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()


async def produce_lines(
    bootstrap: str, topic: str, values: Sequence[bytes], keys: Sequence[bytes | None] | None = None
) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        await producer.start()
        for index, value in enumerate(values):
            key = keys[index] if keys is not None else None
            await producer.send(topic, value=value, key=key)
        await producer.flush()
    finally:
        await producer.stop()
    return len(values)


async def read_topic(
    bootstrap: str, topic: str, wait: float = 10.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record now on `topic`, oldest first per partition (partitions in order)."""
    # Without a group, a consumer reads every partition of the topic and commits nothing.
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        # Inside the try: a start that cannot reach the broker leaves a consumer to close.
        await consumer.start()
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return []
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: dict[int, list[ConsumerRecord[bytes, bytes]]] = {
            tp.partition: [] for tp in partitions
        }
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=int(wait * 1000))
            if not batch:
                raise TimeoutError(f"could not read {topic} within {wait} s")
            for tp, records in batch.items():
                found[tp.partition].extend(record for record in records if record.offset < ends[tp])
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return [record for partition in sorted(found) for record in found[partition]]
    finally:
        await consumer.stop()
