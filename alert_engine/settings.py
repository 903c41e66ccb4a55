"""Typed, validated configuration, one model per component.

Every value can be set from the environment (`ALERT_ENGINE_KAFKA_BOOTSTRAP`, ...). The models are
frozen: a worker reads its configuration once at start and passes it down, never re-reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALERT_ENGINE_KAFKA_", frozen=True)

    bootstrap: str = "127.0.0.1:9092"
    ratings_topic: str = "ratings"
    interactions_topic: str = "interactions"
    alerts_topic: str = "alerts"
    deadletter_topic: str = "deadletter"
    # Alerts whose delivery failed for good, with the error; `alert-engine deadletter` replays them.
    failed_alerts_topic: str = "alerts.failed"
    # Events re-keyed by the group key of windowed rules, so that a key's window state lives on
    # one partition (an internal topic, like the tables' changelogs).
    windows_topic: str = "windows"
    partitions: int = Field(default=4, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    # How long the group waits for a silent worker before its partitions move to another. Faust's
    # default is 60 s; a crashed worker's alerts would wait that long.
    session_timeout: float = Field(default=10.0, gt=0)
    heartbeat_interval: float = Field(default=2.0, gt=0)

    @field_validator("bootstrap")
    @classmethod
    def _host_port(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {value!r}")
        return value

    @property
    def broker_url(self) -> str:
        return ",".join(f"kafka://{server.strip()}" for server in self.bootstrap.split(","))


class RedisSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALERT_ENGINE_REDIS_", frozen=True)

    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "alert-engine"


class WebSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALERT_ENGINE_WEB_", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=6066, ge=0, le=65535)


class EngineSettings(BaseSettings):
    """What the worker evaluates and where alerts go when no other destination is configured."""

    model_config = SettingsConfigDict(env_prefix="ALERT_ENGINE_", frozen=True)

    app_id: str = "alert-engine"
    rules_dir: Path = Path("rules")
    outbox_path: Path = Path(".outbox/alerts.jsonl")
    # Events larger than this are dead-lettered unread: a survey answer is a few hundred bytes,
    # and an unbounded comment is a memory and Slack-limit hazard.
    max_event_bytes: int = Field(default=64 * 1024, ge=1024)
    # How often a worker looks for changed rule files; 0 turns hot reload off.
    rules_reload_seconds: float = Field(default=5.0, ge=0)


@dataclass(frozen=True)
class Settings:
    """The components' settings, read together from one environment."""

    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    web: WebSettings = field(default_factory=WebSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
