"""Valid events for tests, with the fields a test cares about overridden."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from alert_engine.alerts import Alert, alert_id
from alert_engine.events import Stream
from alert_engine.rules.spec import Severity


def rating(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "r-1",
        "rating": 1,
        "nps": 2,
        "comment": "Nobody called me back.",
        "customer": {"id": "c-1", "name": "Jordan Lee", "email": "jordan@example.com"},
        "agent": {"id": "a-7", "name": "Priya Nair"},
        "team": "orders",
        "channel": "chat",
        "interaction_id": "i-1",
        "time": datetime.now(UTC).isoformat(),
    }
    event.update(overrides)
    return event


def interaction(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "i-1",
        "agent": {"id": "a-7"},
        "team": "orders",
        "queue": "orders-en",
        "channel": "phone",
        "wait_seconds": 12.5,
        "handle_seconds": 300,
        "hold_seconds": 0,
        "time": datetime.now(UTC).isoformat(),
    }
    event.update(overrides)
    return event


def encode(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


def make_alert(
    key: str = "r-1",
    fired_at: datetime | None = None,
    *,
    severity: Severity = Severity.HIGH,
    route: str = "default",
    **event: Any,
) -> Alert:
    """The alert `negative-rating` raises for rating `key` (its fields overridden by `event`)."""
    fired_at = fired_at or datetime.now(UTC)
    source = rating(id=key, **event)
    return Alert(
        id=alert_id("negative-rating", key),
        rule="negative-rating",
        severity=severity,
        route=route,
        key=key,
        stream=Stream.RATINGS,
        event=source,
        values={"rating": source["rating"]},
        event_time=fired_at,
        fired_at=fired_at,
        ruleset_version="test",
    )
