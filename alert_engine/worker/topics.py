"""The engine's Kafka topics as Faust Topic objects: made once per app, from the settings' names,
and shared by the agents and everything else that sends to them (case clicks, dead letters)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import faust

from alert_engine.settings import KafkaSettings


@dataclass(frozen=True)
class Topics:
    kafka: KafkaSettings
    by_name: Mapping[str, faust.TopicT]

    @staticmethod
    def create(app: faust.App, kafka: KafkaSettings) -> Topics:
        """One Topic per engine topic: raw bytes keys and values, `kafka.partitions` each."""
        return Topics(
            kafka,
            {
                name: app.topic(name, partitions=kafka.partitions, key_type=bytes, value_type=bytes)
                for name in kafka.engine_topics
            },
        )

    def __getitem__(self, name: str) -> faust.TopicT:
        return self.by_name[name]

    @property
    def cases(self) -> faust.TopicT:
        return self.by_name[self.kafka.cases_topic]

    @property
    def failed_alerts(self) -> faust.TopicT:
        return self.by_name[self.kafka.failed_alerts_topic]
