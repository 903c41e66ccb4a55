"""Typed, validated configuration, one model per component.

Every value can be set from the environment (`ALERT_ENGINE_KAFKA_BOOTSTRAP`, ...). The models are
frozen: a worker reads its configuration once at start and passes it down, never re-reads it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Annotated, Literal, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, Field, SecretStr, ValidationInfo, field_validator
from pydantic.functional_validators import BeforeValidator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from alert_engine.events import MAX_DEPTH
from alert_engine.rules.yamlsource import YamlLimits


def _comma_separated(value: object) -> object:
    """`a, b,,c` from the environment as `("a", "b", "c")`; a list or tuple as it is."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


# A list setting, comma-separated in the environment (`NoDecode`: not read as JSON).
CommaSeparated: TypeAlias = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_separated)]


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALERT_ENGINE_KAFKA_", frozen=True)

    bootstrap: str = "127.0.0.1:9092"
    ratings_topic: str = "ratings"
    interactions_topic: str = "interactions"
    alerts_topic: str = "alerts"
    deadletter_topic: str = "deadletter"
    # Alerts whose delivery failed for good, with the error (`alert-engine failed list|replay`).
    failed_alerts_topic: str = "alerts.failed"
    # Case state changes (claimed, resolved, ...), one JSON record per change keyed by alert id.
    cases_topic: str = "cases"
    # Events re-keyed by the group key of windowed rules, so that a key's window state lives on
    # one partition (an internal topic, like the tables' changelogs).
    windows_topic: str = "windows"
    # What became of each due survey (sent, suppressed, ...), for the outcome history.
    followups_topic: str = "followups"
    partitions: int = Field(default=4, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    # `min.insync.replicas` of the topics the engine creates: with the producer's acks=all, a
    # write succeeds once this many replicas have it, so a cluster of 3 with 2 here takes writes
    # with one broker down and loses none of them when another fails. None: the broker's default.
    min_insync_replicas: int | None = Field(default=None, ge=1)
    # How long the group waits for a silent worker before its partitions move to another. Faust's
    # default is 60 s; a crashed worker's alerts would wait that long.
    session_timeout: float = Field(default=10.0, gt=0)
    heartbeat_interval: float = Field(default=2.0, gt=0)
    # Seconds the producer waits to fill a request: under load many small sends (alerts,
    # window batches, changelog entries) share one produce request instead of one each.
    producer_linger: float = Field(default=0.005, ge=0, le=1)

    @field_validator("min_insync_replicas")
    @classmethod
    def _not_above_replicas(cls, value: int | None, info: ValidationInfo) -> int | None:
        replicas = info.data.get("replication_factor")
        if value is not None and replicas is not None and value > replicas:
            # Kafka would create the topics and then refuse every write to them.
            raise ValueError(
                f"min_insync_replicas ({value}) is above replication_factor ({replicas})"
            )
        return value

    @field_validator("bootstrap")
    @classmethod
    def _host_port(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {value!r}")
        return value

    @property
    def engine_topics(self) -> tuple[str, ...]:
        """Every topic the engine reads or writes (the tables' changelogs aside)."""
        return tuple(getattr(self, name) for name in _TOPIC_FIELDS)

    def with_topic_suffix(self, suffix: str) -> KafkaSettings:
        """The same settings with every topic name suffixed: engines (or tests, benchmarks) that
        share a broker keep their streams apart."""
        return self.model_copy(
            update={name: f"{getattr(self, name)}-{suffix}" for name in _TOPIC_FIELDS}
        )

    @property
    def broker_url(self) -> str:
        return ",".join(f"kafka://{server.strip()}" for server in self.bootstrap.split(","))


_TOPIC_FIELDS = tuple(name for name in KafkaSettings.model_fields if name.endswith("_topic"))


class RedisSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALERT_ENGINE_REDIS_", frozen=True)

    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "alert-engine"


class WebSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALERT_ENGINE_WEB_", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=6066, ge=0, le=65535)
    # Names (without a port) browsers may reach the operators' pages by, besides localhost and
    # `host`; comma-separated in the environment. A page asked for under any other Host is
    # refused: a DNS-rebinding site cannot read or act through a visitor's browser.
    allowed_hosts: CommaSeparated = ()

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_host_name(name) for name in names)

    @property
    def host_names(self) -> frozenset[str]:
        """Every name the operators' pages answer to: localhost, the address the server listens
        on (unless it listens on every address) and `allowed_hosts`."""
        names = {"localhost", "127.0.0.1", "::1", *self.allowed_hosts}
        if self.host not in ("", "0.0.0.0", "::"):
            names.add(self.host.lower().strip("[]"))
        return frozenset(names)


_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _host_name(name: str) -> str:
    """A DNS name or an IP address, lower-cased; IPv6 with or without brackets."""
    name = name.strip().lower()
    try:
        return str(ip_address(name.strip("[]")))
    except ValueError:
        pass
    if ":" in name:
        raise ValueError(f"{name!r}: give the host name without a port")
    labels = name.removesuffix(".").split(".")
    if len(name) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise ValueError(f"{name!r} is not a host name")
    return name.removesuffix(".")


class EngineSettings(BaseSettings):
    """What the worker evaluates and where alerts go when no other destination is configured."""

    model_config = SettingsConfigDict(env_prefix="ALERT_ENGINE_", frozen=True)

    app_id: str = "alert-engine"
    rules_dir: Path = Path("rules")
    outbox_path: Path = Path(".outbox/alerts.jsonl")
    # Events larger than this are dead-lettered unread: a survey answer is a few hundred bytes,
    # and an unbounded comment is a memory and Slack-limit hazard. At most 256 KiB: an alert
    # carries its event (a join alert a rating and an interaction) and a `windows` record at
    # least one, each in one Kafka record of the producer's 1,000,000 bytes.
    max_event_bytes: int = Field(default=64 * 1024, ge=1024, le=256 * 1024)
    # The routing tree (see `alert_engine.routing`); without one, every alert goes to the outbox.
    routing_file: Path | None = None
    # Links shown with an alert: `{customer_id}`, `{interaction_id}`, `{agent_id}`, `{rating_id}`.
    customer_url: str | None = None
    interaction_url: str | None = None
    # Seconds between checks for escalations and digests that are due.
    escalation_check_interval: float = Field(default=1.0, gt=0)
    # How often a worker looks for changed rule files; 0 turns hot reload off.
    rules_reload_seconds: float = Field(default=5.0, ge=0)
    # A larger rule file is refused unread; a file whose YAML aliases expand it beyond this many
    # nodes is refused at the alias (a few hundred bytes can stand for gigabytes).
    rules_max_file_bytes: int = Field(default=YamlLimits.max_bytes, ge=1024)
    rules_max_yaml_nodes: int = Field(default=YamlLimits.max_nodes, ge=100)
    # Input events are evaluated in batches of up to `batch_size`: the events already waiting,
    # handed over at once. While Kafka holds more of a partition than the worker has taken (a
    # backlog), a batch waits up to `batch_wait` seconds to fill: fewer, fuller batches (one
    # windows-topic record per partition and batch) while catching up, no wait when keeping up.
    batch_size: int = Field(default=500, ge=1, le=10_000)
    batch_wait: float = Field(default=0.05, gt=0, le=1.0)
    # A worker that keeps up gets a few events at a time, and each batch has costs of its own
    # (a windows record per partition, changelog messages, produce requests): a batch begun
    # waits up to `batch_linger` seconds for more events even when nothing more is known to be
    # waiting (as Kafka's `linger.ms`), the windowed agent up to `windows_batch_linger` (its
    # alerts are about minutes to days of events). 0 hands a batch over at once. Never longer
    # than `batch_wait`.
    batch_linger: float = Field(default=0.02, ge=0, le=1.0)
    windows_batch_linger: float = Field(default=0.05, ge=0, le=1.0)
    # Sends in flight at once per destination: each mostly waits on Redis and Slack, so a burst
    # is delivered in about the time of one instead of one after the other.
    delivery_concurrency: int = Field(default=32, ge=1, le=1000)
    # An input partition that has shown no newer event for this many seconds no longer holds
    # back the windowed rules' watermark (see `windows.watermarks`).
    windows_idle_seconds: float = Field(default=30.0, gt=0)
    # Seconds a worker's shutdown may take after SIGTERM or SIGINT before it exits anyway (code
    # 70, see `worker.shutdown`): below Kubernetes' default 30 s grace period, so the log
    # says why rather than a bare SIGKILL.
    shutdown_timeout: float = Field(default=25.0, gt=0, le=600)

    @property
    def rule_file_limits(self) -> YamlLimits:
        return YamlLimits(max_bytes=self.rules_max_file_bytes, max_nodes=self.rules_max_yaml_nodes)


class EventSettings(BaseSettings):
    """What the input agents accept beyond the schema: nesting, and event times against the
    broker's timestamp of their record. An event outside them is dead-lettered as `invalid`."""

    model_config = SettingsConfigDict(env_prefix="ALERT_ENGINE_EVENTS_", frozen=True)

    # Levels of objects and arrays, the event itself one: later stages embed the event in
    # records of their own, and JSON encoders stop at some depth (see `events.MAX_DEPTH`).
    max_depth: int = Field(default=32, ge=3, le=MAX_DEPTH)
    # Seconds an event's time may be ahead of its record's timestamp (clocks disagree a little);
    # further ahead, one event would move the windowed rules' watermark into the future.
    max_future_skew: float = Field(default=300.0, ge=0)
    # Events timed before this are refused: no contact center's feedback is that old, and
    # times near year 1 or 9999 break date arithmetic further down.
    earliest_time: AwareDatetime = datetime(2000, 1, 1, tzinfo=UTC)


class SlackSettings(BaseSettings):
    """Without a bot token, Slack destinations deliver to the local outbox instead."""

    model_config = SettingsConfigDict(env_prefix="ALERT_ENGINE_SLACK_", frozen=True)

    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    api_url: str = "https://slack.com/api/"
    # Retries inside slack_sdk (429 with Retry-After, 500/503, connection errors) of the calls
    # a click makes (message update, thread reply). Alert posts have one retry layer, the
    # delivery layer's (`DeliverySettings`), and no slack_sdk retries.
    max_retries: int = Field(default=2, ge=0)


class DeliverySettings(BaseSettings):
    """How failed deliveries are retried: one layer, for every destination (slack_sdk's own
    retries are off for alert posts)."""

    model_config = SettingsConfigDict(env_prefix="ALERT_ENGINE_DELIVERY_", frozen=True)

    # Sends of one alert to one destination before it goes to `alerts.failed`.
    attempts: int = Field(default=8, ge=1, le=100)
    # Backoff after a failed send: doubling from `first_delay` to `max_delay`, each delay spread
    # by +-`jitter` (a share of it) so alerts that failed together do not retry together, and
    # never shorter than the destination's Retry-After.
    first_delay: float = Field(default=0.5, gt=0)
    max_delay: float = Field(default=30.0, gt=0)
    jitter: float = Field(default=0.2, ge=0, le=1)
    # An alert not delivered to a destination this many seconds after its first try goes to
    # `alerts.failed` whatever its attempts: while a destination's circuit is open its alerts
    # wait without spending attempts, and a destination down for good must not keep them (and
    # their uncommitted offsets) in hand forever.
    give_up_after: float = Field(default=600.0, gt=0)
    # Transient failures in a row that open a destination's circuit (`alert_engine.delivery.gates`).
    failures_to_open: int = Field(default=5, ge=1)
    # An open circuit lets one probe through after a cool-down that backs off like a retry but
    # only up to this (a Retry-After still counts): a probe costs one call, and the cool-down is
    # how long alerts may wait after the destination is back.
    max_cool_down: float = Field(default=5.0, gt=0)
    # Alerts a worker has taken from Kafka and not yet delivered or given up on (waiting for a
    # retry or for their destination to answer). At the limit it takes no more until one is done.
    max_pending: int = Field(default=5000, ge=1)

    @field_validator("max_delay")
    @classmethod
    def _not_below_first(cls, value: float, info: ValidationInfo) -> float:
        first = info.data.get("first_delay")
        if first is not None and value < first:
            raise ValueError(f"max_delay ({value}) is below first_delay ({first})")
        return value


class SendGridSettings(BaseSettings):
    """Without an API key, email destinations deliver to the local outbox instead."""

    model_config = SettingsConfigDict(env_prefix="ALERT_ENGINE_SENDGRID_", frozen=True)

    api_key: SecretStr | None = None
    host: str = "https://api.sendgrid.com"
    sender: str = "alerts@example.com"


class SigninSettings(BaseSettings):
    """Who may open the worker's internal pages (see `alert_engine.signin`). Neither a members
    file nor trusted proxies: one generated member, `demo`, signs in with a one-time link the
    worker writes to its log."""

    model_config = SettingsConfigDict(env_prefix="ALERT_ENGINE_SIGNIN_", frozen=True)

    # Members and their argon2 password hashes (YAML or JSON; a mounted Kubernetes Secret works
    # the same): the built-in login. Re-read when it changes.
    members_file: Path | None = None
    # Addresses or networks of the authenticating proxy (oauth2-proxy) whose `X-Forwarded-User`
    # / `X-Forwarded-Email` (or `X-Auth-Request-*`) headers sign a request in; comma-separated.
    # From any other peer those headers are ignored.
    trusted_proxies: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = ()
    # Signs session cookies and sign-in links. Unset: a random secret is created once in Redis
    # and shared by the workers.
    session_secret: SecretStr | None = None
    # A session ends this long after sign-in.
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    # Cookies only over HTTPS: set it when the pages are reached through TLS.
    secure_cookies: bool = False
    # Failed sign-ins per client address, and per member name, within the window; then 429.
    max_failures: int = Field(default=5, ge=1, le=1000)
    failure_window_seconds: float = Field(default=15 * 60, gt=0)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        parts = _comma_separated(value)
        if not isinstance(parts, list | tuple):
            return value
        networks = []
        for part in parts:
            text = str(part).strip()
            if not text:
                continue
            try:
                networks.append(ip_network(text, strict=False))
            except ValueError:
                raise ValueError(f"{text!r} is not an IP address or network") from None
        return tuple(networks)

    @property
    def configured(self) -> bool:
        """Whether sign-in is set up (else the generated `demo` member)."""
        return self.members_file is not None or bool(self.trusted_proxies)


class MetricsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALERT_ENGINE_METRICS_", frozen=True)

    # When set, `/metrics` answers only a request with `Authorization: Bearer <token>` (401
    # otherwise): Prometheus' `authorization: {credentials_file: ...}`.
    token: SecretStr | None = None


LogFormat: TypeAlias = Literal["text", "json"]


class LogSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALERT_ENGINE_LOG_", frozen=True)

    # json: one object per line (time, level, logger, message, fields) for log pipelines.
    format: LogFormat = "text"


class FollowupSettings(BaseSettings):
    """The follow-up survey policy: when a survey is sent after a case is resolved, and to whom."""

    model_config = SettingsConfigDict(env_prefix="ALERT_ENGINE_FOLLOWUP_", frozen=True)

    # After resolve time; 24 hours by default, seconds in the demo.
    delay_seconds: float = Field(default=24 * 3600, ge=0)
    # No survey is sent between these local times of the customer (start == end: no quiet hours).
    quiet_start: time = time(21, 0)
    quiet_end: time = time(8, 0)
    # For customers without a (known) `timezone`.
    default_timezone: str = "UTC"
    # A customer who got a survey within this period gets no second one.
    suppression_seconds: float = Field(default=30 * 24 * 3600, ge=0)
    # Share of eligible alerts held out of recovery contact (still surveyed): measures the lift.
    holdout_share: float = Field(default=0.0, ge=0.0, le=1.0)
    # How long a survey link works.
    token_ttl_seconds: float = Field(default=14 * 24 * 3600, gt=0)
    # Signs survey links. Unset: a random secret is created once in Redis and shared by workers.
    token_secret: SecretStr | None = None
    # Where customers reach the worker's web server; unset: http://{web host}:{web port}.
    public_url: str | None = None
    # How often a worker looks for due surveys.
    poll_seconds: float = Field(default=1.0, gt=0)
    # A claimed survey not marked sent within this time is claimed again (its sender died).
    lease_seconds: float = Field(default=60.0, gt=0)
    # Surveys go here when no email service is configured.
    outbox_path: Path = Path(".outbox/surveys.jsonl")
    sender: str = "feedback@example.com"
    # Signs the survey emails and pages.
    company: str = "Customer Care"

    @field_validator("default_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (expected an IANA name)") from None
        return value


class DatabaseSettings(BaseSettings):
    """The outcome history in PostgreSQL (`alert_engine.history`): off unless `url` is set."""

    model_config = SettingsConfigDict(env_prefix="ALERT_ENGINE_DATABASE_", frozen=True)

    # `postgresql://user:password@host:5432/dbname` (or a libpq `key=value` string). Secret: it
    # may hold the password, and the logs mask it whole.
    url: SecretStr | None = None
    # The projection reads the topics in its own consumer group, `<app id>-<group_suffix>`: its
    # progress (or a PostgreSQL outage) never holds up delivery.
    group_suffix: str = Field(default="history", min_length=1, max_length=64)
    # Records written per transaction, at most (5,000 caught up on a backlog 1.6x faster than
    # 1,000: docs/analytics.md); and how long a batch waits for more records.
    batch_size: int = Field(default=5000, ge=1, le=50_000)
    batch_wait: float = Field(default=0.2, gt=0, le=10)
    # Seconds a query of the report may take before it is cancelled.
    statement_timeout: float = Field(default=30.0, gt=0)

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        text = value.get_secret_value().strip()
        scheme, sep, _ = text.partition("://")
        if sep and scheme not in ("postgres", "postgresql"):
            raise ValueError(f"expected a postgresql:// URL, got a {scheme}:// one")
        if not sep and "=" not in text:
            raise ValueError("expected a postgresql:// URL or a libpq key=value string")
        return SecretStr(text)

    @property
    def enabled(self) -> bool:
        return self.url is not None


# The reason codes a resolution records unless `ALERT_ENGINE_CASES_REASONS` says otherwise.
DEFAULT_REASONS = ("refund", "replacement", "apology", "call_back", "policy_explained", "other")
REASON_CODE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class CaseSettings(BaseSettings):
    """The team's rules for cases: the reason codes a resolution records, how long an undo and a
    reopen stay possible, which follow-up answers reopen a case, what the card shows."""

    model_config = SettingsConfigDict(env_prefix="ALERT_ENGINE_CASES_", frozen=True)

    # Comma-separated codes (`call_back` reads "Call back"); `other` needs a note.
    reasons: CommaSeparated = DEFAULT_REASONS
    # A resolution or "not actionable" can be undone for this long.
    undo_seconds: float = Field(default=300.0, ge=0, le=24 * 3600)
    # A closed case can be reopened for this many days after it closed.
    reopen_days: float = Field(default=14.0, ge=0)
    # A follow-up answer still unhappy reopens a closed case.
    reopen_when_unhappy: bool = True
    # Unhappy: at most this many stars...
    unhappy_at_most: int = Field(default=2, ge=1, le=5)
    # ... or (if set) no better than the rating the alert was about.
    unhappy_if_not_better: bool = False
    # The customer's email and phone on the card (off for teams that must not see them).
    show_contact: bool = True

    @field_validator("reasons")
    @classmethod
    def _reason_codes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one reason code is needed")
        for code in value:
            if not REASON_CODE.match(code):
                raise ValueError(
                    f"reason code {code!r}: lower-case letters, digits and _, starting with a "
                    "letter, at most 40"
                )
        if len(set(value)) != len(value):
            raise ValueError("a reason code is listed twice")
        return value


@dataclass(frozen=True)
class Settings:
    """The components' settings, read together from one environment."""

    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    web: WebSettings = field(default_factory=WebSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    events: EventSettings = field(default_factory=EventSettings)
    log: LogSettings = field(default_factory=LogSettings)
    followup: FollowupSettings = field(default_factory=FollowupSettings)
    slack: SlackSettings = field(default_factory=SlackSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    sendgrid: SendGridSettings = field(default_factory=SendGridSettings)
    signin: SigninSettings = field(default_factory=SigninSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    cases: CaseSettings = field(default_factory=CaseSettings)
