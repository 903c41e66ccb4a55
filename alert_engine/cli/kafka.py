"""Small Kafka helpers for the CLI, the demo and tests: create topics, send raw events."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence

from aiokafka import AIOKafkaProducer
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
    partition count (the input topics and the tables' changelogs must be co-partitioned).
    """
    wanted = list(names if names is not None else kafka.engine_topics)
    # Topics the engine's tables use, with their configuration (name -> topic configs).
    extra = extra or {}
    wanted.extend(name for name in extra if name not in wanted)
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
                topic_configs=dict(extra.get(name, {})),
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
