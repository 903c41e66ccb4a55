"""Valid events for tests, with the fields a test cares about overridden."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson


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
