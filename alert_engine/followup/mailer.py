"""Sending survey emails. A mailer is anything with an async `send(email)`.

Without an email service configured, surveys go to a local outbox (JSON lines), like alerts.
TODO(issue 4): a SendGrid-backed `SurveyMailer`, sharing the alert emails' SendGrid client and
its contract test; it only has to map `SurveyEmail` onto a v3 mail/send request.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import orjson


@dataclass(frozen=True)
class SurveyEmail:
    to: str
    sender: str
    subject: str
    text: str
    html: str
    link: str
    alert_id: str
    survey_id: str


class SurveyMailer(Protocol):
    async def send(self, email: SurveyEmail) -> None:
        """Send or raise; the survey is retried when its claim expires."""


class OutboxMailer:
    def __init__(self, path: Path) -> None:
        self.path = path

    async def send(self, email: SurveyEmail) -> None:
        line = orjson.dumps({"sent_at": datetime.now(UTC).isoformat(), **asdict(email)})
        await asyncio.to_thread(self._append, line + b"\n")

    def _append(self, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as out:
            out.write(line)
