"""Email through SendGrid's v3 API with the `sendgrid` library: a plain-text and an HTML part,
rendered from sandboxed templates, to the recipients of the destination.

SendGrid offers no way to look up a sent message by our id, so unlike Slack a crash between
SendGrid accepting an email and Redis recording it re-sends that email once; the alert id travels
in `custom_args` so such a duplicate can be recognised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import CustomArg, Mail

from alert_engine.alerts import Alert
from alert_engine.channels import DeliveryError, Digest, PermanentDeliveryError
from alert_engine.channels.presentation import AlertView, LinkTemplates
from alert_engine.channels.templates import EmailTemplates, TemplateError
from alert_engine.settings import SendGridSettings


def sendgrid_client(settings: SendGridSettings) -> SendGridAPIClient | None:
    """The SendGrid client for the configured account, or None when no API key is set."""
    if settings.api_key is None:
        return None
    return SendGridAPIClient(api_key=settings.api_key.get_secret_value(), host=settings.host)


async def send_mail(client: SendGridAPIClient, mail: Mail) -> None:
    """Send one email; raises `DeliveryError` (retry later) or `PermanentDeliveryError`."""
    try:
        response: Any = await asyncio.to_thread(client.send, mail)
    except HTTPError as exc:
        raise _delivery_error(exc) from exc
    if response.status_code != 202:
        raise DeliveryError(f"sendgrid answered {response.status_code}")


class EmailDestination:
    def __init__(
        self,
        name: str,
        recipients: Sequence[str],
        client: SendGridAPIClient,
        sender: str,
        *,
        templates: EmailTemplates | None = None,
        links: LinkTemplates | None = None,
        contact: bool = True,
    ) -> None:
        self.name = name
        self.recipients = list(recipients)
        self.client = client
        self.sender = sender
        self.templates = templates or EmailTemplates()
        self.links = links or LinkTemplates()
        # The customer's email and phone in the email (`ALERT_ENGINE_CASES_SHOW_CONTACT`).
        self.contact = contact

    def message(self, alert: Alert) -> Mail:
        view = AlertView.of(alert, self.links, contact=self.contact)
        try:
            subject = " ".join(self.templates.subject.render(view).split())[:900]
            text = self.templates.text.render(view)
            html = self.templates.html.render(view)
        except TemplateError as exc:
            raise PermanentDeliveryError(f"template of {self.name} failed: {exc}") from exc
        mail = Mail(
            from_email=self.sender,
            to_emails=self.recipients,
            subject=subject or view.title,
            plain_text_content=text,
            html_content=html,
        )
        # On the personalization: SendGrid's contract types the top-level `custom_args` a string.
        mail.custom_arg = CustomArg("alert_id", alert.id, p=0)
        return mail

    def digest_message(self, digest: Digest) -> Mail:
        views = [AlertView.of(alert, self.links, contact=self.contact) for alert in digest.alerts]
        try:
            texts = [self.templates.text.render(view) for view in views]
            htmls = [self.templates.html.render(view) for view in views]
        except TemplateError as exc:
            raise PermanentDeliveryError(f"template of {self.name} failed: {exc}") from exc
        group = ", ".join(f"{name}={value}" for name, value in digest.group.items())
        mail = Mail(
            from_email=self.sender,
            to_emails=self.recipients,
            subject=f"{len(views)} alerts: {group or digest.route}"[:900],
            plain_text_content="\n-----\n\n".join(texts),
            html_content="<hr>".join(htmls),
        )
        mail.custom_arg = CustomArg("digest_id", digest.id, p=0)
        return mail

    async def send_digest(self, digest: Digest) -> None:
        await self._send(self.digest_message(digest))

    async def send(self, alert: Alert) -> None:
        await self._send(self.message(alert))

    async def _send(self, mail: Mail) -> None:
        await send_mail(self.client, mail)


class SendGridRefused(PermanentDeliveryError):
    """SendGrid refused the request (4xx other than 429); `status` tells the account's problems
    (401, 403) from the email's own (400, 413)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _delivery_error(exc: HTTPError) -> Exception:
    status = exc.status_code
    body = exc.body.decode(errors="replace")[:300] if isinstance(exc.body, bytes) else exc.body
    if status == 429 or status >= 500:
        retry_after = exc.headers.get("Retry-After") if exc.headers else None
        seconds = float(retry_after) if retry_after and str(retry_after).isdigit() else None
        return DeliveryError(f"sendgrid: HTTP {status}", retry_after=seconds)
    return SendGridRefused(f"sendgrid: HTTP {status}: {body}", status)
