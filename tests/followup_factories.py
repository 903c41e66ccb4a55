"""Case records and alerts for the follow-up tests, shaped as the recovery workflow sends them."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path

from alert_engine.alerts import Alert
from alert_engine.cases import CaseEvent, CaseState
from devstack.stack import Endpoints
from tests.engine import Engine


def legacy_survey_token(secret: bytes, survey_id: str, expires_at: datetime) -> str:
    """A survey link as the engine signed them before itsdangerous; some are still in inboxes."""
    message = f"{survey_id}.{int(expires_at.timestamp())}"
    digest = hmac.new(secret, message.encode(), hashlib.sha256).digest()
    return f"{message}.{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"


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


def followup_engine(stack: Endpoints, unique: str, tmp_path: Path) -> Engine:
    """A worker environment whose surveys are due a second after resolve, at any hour."""
    engine = Engine(stack, unique, tmp_path)
    engine.env.update(
        {
            "ALERT_ENGINE_FOLLOWUP_DELAY_SECONDS": "1",
            "ALERT_ENGINE_FOLLOWUP_QUIET_START": "00:00",
            "ALERT_ENGINE_FOLLOWUP_QUIET_END": "00:00",
            "ALERT_ENGINE_FOLLOWUP_POLL_SECONDS": "0.2",
            "ALERT_ENGINE_FOLLOWUP_OUTBOX_PATH": str(engine.surveys),
            "ALERT_ENGINE_FOLLOWUP_TOKEN_SECRET": "browser-test-secret",
        }
    )
    return engine
