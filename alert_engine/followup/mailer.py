"""Sending survey emails. A mailer is anything with an async `send(email)`.

With a SendGrid API key configured (`ALERT_ENGINE_SENDGRID_API_KEY`), surveys are sent through
SendGrid with the same client and error handling as alert emails; without one they go to a local
outbox (JSON lines), like alerts.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import orjson
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import CustomArg, Mail

from alert_engine.channels import DeliveryError, PermanentDeliveryError
from alert_engine.channels.email import SendGridRefused, send_mail, sendgrid_client
from alert_engine.settings import Settings


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
        """Send or raise; the survey is retried when its claim expires, except after a
        `PermanentDeliveryError` (the email can never be sent): it is settled as rejected."""


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


class SendGridMailer:
    def __init__(self, client: SendGridAPIClient) -> None:
        self.client = client

    def message(self, email: SurveyEmail) -> Mail:
        try:
            mail = Mail(
                from_email=email.sender,
                to_emails=email.to,
                subject=email.subject,
                plain_text_content=email.text,
                html_content=email.html,
            )
            mail.get()  # where the library parses the address
        except (KeyError, ValueError) as exc:
            # The library's address parser gives up on it: no request could ever be sent.
            raise PermanentDeliveryError("not an address SendGrid can send to") from exc
        # Which survey an email (or a bounce of it) belongs to; never the link's token.
        mail.custom_arg = CustomArg("alert_id", email.alert_id, p=0)
        mail.custom_arg = CustomArg("survey_id", email.survey_id, p=0)
        return mail

    async def send(self, email: SurveyEmail) -> None:
        """Raises `PermanentDeliveryError` only for an email SendGrid will never take (the
        survey is then settled as rejected); a problem of the account (a revoked key, 401 or
        403) is retried until someone fixes it, losing no survey."""
        try:
            await send_mail(self.client, self.message(email))
        except SendGridRefused as exc:
            if exc.status in (401, 403):
                raise DeliveryError(str(exc)) from exc
            raise


def survey_mailer(settings: Settings) -> SurveyMailer:
    """SendGrid when an API key is configured, else the local survey outbox."""
    client = sendgrid_client(settings.sendgrid)
    if client is None:
        return OutboxMailer(settings.followup.outbox_path)
    return SendGridMailer(client)
