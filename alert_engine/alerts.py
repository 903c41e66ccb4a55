"""The alert record: what a rule found, written to the `alerts` topic before any delivery."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict

from alert_engine.events import Stream
from alert_engine.rules.spec import Severity


def alert_id(rule: str, key: str) -> str:
    """Stable id: the same rule firing for the same key is the same alert, on any worker, at
    any time. Delivery keys its idempotency records on it, so a re-processed event never alerts
    twice."""
    digest = hashlib.blake2b(f"{rule}\x00{key}".encode(), digest_size=10).hexdigest()
    return f"al-{digest}"


def jsonable(value: object) -> object:
    """A value as an alert's `values` hold it: datetimes as ISO 8601 text."""
    return value.isoformat() if isinstance(value, datetime) else value


class AlertWindow(BaseModel):
    """What a windowed rule's alert is about: the group (`group_by` and its value), the window,
    the aggregates that fired it and the condition they met, and the events counted."""

    model_config = ConfigDict(frozen=True)

    group_by: str
    key: str
    start: AwareDatetime
    end: AwareDatetime
    condition: str
    aggregates: dict[str, Any]
    sample: int
    min_sample: int


class Throttle(BaseModel):
    """At most one delivered alert per rule and `key` every `seconds`."""

    model_config = ConfigDict(frozen=True)

    key: str
    seconds: float


class Sla(BaseModel):
    """When the alert's case should be claimed and resolved by, from its route's `sla`, counted
    in the route's working time (`business_hours`)."""

    model_config = ConfigDict(frozen=True)

    claim_by: AwareDatetime | None = None
    resolve_by: AwareDatetime | None = None


class Alert(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    rule: str
    severity: Severity
    route: str
    # What the alert is about: the event id for a single-event rule.
    key: str
    stream: Stream
    event: dict[str, Any]
    values: dict[str, Any]
    event_time: AwareDatetime
    fired_at: AwareDatetime
    ruleset_version: str
    labels: dict[str, str] = {}
    throttle: Throttle | None = None
    # A windowed rule's alert: its group and window. The event is the last one counted.
    window: AlertWindow | None = None
    # Set at delivery where the route has an `sla`.
    sla: Sla | None = None

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_json(cls, raw: bytes) -> Alert:
        return cls.model_validate_json(raw)

    def latency_seconds(self, now: datetime) -> float:
        return (now - self.event_time).total_seconds()
