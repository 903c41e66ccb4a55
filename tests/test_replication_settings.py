"""Replication of the engine's topics: `ALERT_ENGINE_KAFKA_MIN_INSYNC_REPLICAS` is checked against
the replication factor at load time and given to every topic the engine creates."""

import pytest
from aiokafka.admin import NewTopic
from pydantic import ValidationError

from alert_engine.cli import kafka as kafka_cli
from alert_engine.settings import KafkaSettings


def test_min_insync_replicas_above_the_replication_factor_is_refused_at_load_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALERT_ENGINE_KAFKA_REPLICATION_FACTOR", "2")
    monkeypatch.setenv("ALERT_ENGINE_KAFKA_MIN_INSYNC_REPLICAS", "3")
    with pytest.raises(ValidationError, match=r"min_insync_replicas \(3\) is above"):
        KafkaSettings()


def test_min_insync_replicas_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERT_ENGINE_KAFKA_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("ALERT_ENGINE_KAFKA_MIN_INSYNC_REPLICAS", "2")
    kafka = KafkaSettings()
    assert (kafka.replication_factor, kafka.min_insync_replicas) == (3, 2)
    # Unset: the broker's own default applies.
    monkeypatch.delenv("ALERT_ENGINE_KAFKA_MIN_INSYNC_REPLICAS")
    assert KafkaSettings(replication_factor=3).min_insync_replicas is None


class RecordingAdmin:
    created: list[NewTopic] = []

    def __init__(self, **_: object) -> None:
        pass

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def list_topics(self) -> list[str]:
        return ["ratings"]

    async def create_topics(self, topics: list[NewTopic]) -> None:
        RecordingAdmin.created.extend(topics)


@pytest.mark.parametrize(("min_isr", "expected"), [(2, {"min.insync.replicas": "2"}), (None, {})])
async def test_every_topic_the_engine_creates_gets_the_min_insync_replicas(
    monkeypatch: pytest.MonkeyPatch, min_isr: int | None, expected: dict[str, str]
) -> None:
    monkeypatch.setattr(kafka_cli, "AIOKafkaAdminClient", RecordingAdmin)
    RecordingAdmin.created = []
    kafka = KafkaSettings(replication_factor=3, min_insync_replicas=min_isr)
    changelog = {"app-window-state-changelog": {"cleanup.policy": "compact"}}
    await kafka_cli.ensure_topics(kafka, extra=changelog)
    created = {topic.name: topic for topic in RecordingAdmin.created}
    # `ratings` exists already: left as it is.
    assert set(created) == (set(kafka.engine_topics) - {"ratings"}) | set(changelog)
    assert {topic.replication_factor for topic in created.values()} == {3}
    for name, topic in created.items():
        assert topic.topic_configs == {**expected, **changelog.get(name, {})}
