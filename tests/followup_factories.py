"""Case records and alerts for the follow-up tests, shaped as the recovery workflow sends them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alert_engine.alerts import Alert, alert_id
from alert_engine.cases import CaseEvent, CaseState
from alert_engine.events import Stream
from alert_engine.rules import Severity
from tests.factories import rating


def make_alert(key: str = "r-1", fired_at: datetime | None = None, **event: Any) -> Alert:
    fired_at = fired_at or datetime.now(UTC)
    source = rating(id=key, **event)
    return Alert(
        id=alert_id("negative-rating", key),
        rule="negative-rating",
        severity=Severity.HIGH,
        route="default",
        key=key,
        stream=Stream.RATINGS,
        event=source,
        values={"rating": source["rating"]},
        event_time=fired_at,
        fired_at=fired_at,
        ruleset_version="test",
    )


def case(
    alert: Alert,
    state: CaseState,
    at: datetime | None = None,
    previous: CaseState = CaseState.CLAIMED,
    actor: str = "U123",
) -> CaseEvent:
    return CaseEvent(
        alert_id=alert.id,
        state=state,
        previous_state=previous,
        actor=actor,
        at=at or datetime.now(UTC),
        alert=alert,
    )
