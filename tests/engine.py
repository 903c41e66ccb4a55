"""A real worker process on the session's Kafka and Redis, with topics of its own."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from alert_engine.channels.outbox import outbox_alerts, read_outbox
from alert_engine.cli.kafka import ensure_topics, produce_lines
from alert_engine.settings import KafkaSettings
from devstack.stack import Endpoints
from devstack.workerprocess import WorkerProcess

RULES_DIR = Path(__file__).parents[1] / "rules"


def only_rules(directory: Path, *names: str) -> Path:
    """A rules directory with just these shipped rules (and the shipped defaults), so a test's
    feed is judged by the rule it is about and not also by every windowed example rule."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("_defaults", *names):
        shutil.copy(RULES_DIR / f"{name}.yaml", directory / f"{name}.yaml")
    return directory


class Engine:
    def __init__(
        self,
        stack: Endpoints,
        unique: str,
        workdir: Path,
        rules_dir: Path | None = None,
        partitions: int = 2,
        replication_factor: int = 1,
        min_insync_replicas: int | None = None,
    ) -> None:
        """`rules_dir`: the rules the worker runs; by default only `negative-rating`."""
        if rules_dir is None:
            rules_dir = only_rules(workdir / "rules", "negative-rating")
        self.kafka = KafkaSettings(
            bootstrap=stack.kafka_bootstrap,
            partitions=partitions,
            replication_factor=replication_factor,
            min_insync_replicas=min_insync_replicas,
        ).with_topic_suffix(unique)
        self.outbox = workdir / "outbox.jsonl"
        # Where the survey outbox writes, for a worker pointed there (followup_engine does).
        self.surveys = workdir / "surveys.jsonl"
        self.env = {
            **stack.as_env(),
            "ALERT_ENGINE_APP_ID": f"test-{unique}",
            "ALERT_ENGINE_RULES_DIR": str(rules_dir),
            "ALERT_ENGINE_OUTBOX_PATH": str(self.outbox),
            "ALERT_ENGINE_REDIS_KEY_PREFIX": f"test-{unique}",
            **{
                f"ALERT_ENGINE_KAFKA_{name.upper()}": str(value)
                for name, value in self.kafka.model_dump().items()
                if name != "bootstrap" and value is not None
            },
        }
        self.workdir = workdir
        asyncio.run(ensure_topics(self.kafka))

    def worker(self, name: str = "worker", options: Sequence[str] = ()) -> WorkerProcess:
        return WorkerProcess(self.env, self.workdir / f"{name}.log", options)

    def produce(self, topic: str, values: list[bytes]) -> None:
        asyncio.run(produce_lines(self.kafka.bootstrap, topic, values))

    def delivered(self) -> list[dict[str, Any]]:
        return [alert for entry in read_outbox(self.outbox) for alert in outbox_alerts(entry)]

    def wait_for(self, what: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not what():
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout} s; delivered: {self.delivered()}")
            time.sleep(0.05)

    def consume(self, topic: str, count: int, timeout: float = 30.0) -> list[Any]:
        return asyncio.run(self._consume(topic, count, timeout))

    async def _consume(self, topic: str, count: int, within: float) -> list[Any]:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=self.kafka.bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        records: list[Any] = []
        try:
            deadline = time.monotonic() + within
            while len(records) < count and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for partition_records in batch.values():
                    records.extend(partition_records)
        finally:
            await consumer.stop()
        return records


def alert_keys(alerts: list[dict[str, Any]]) -> list[str]:
    return sorted(str(alert["key"]) for alert in alerts)


def encode_all(events: list[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(event) for event in events]
