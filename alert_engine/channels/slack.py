"""Slack: alerts posted with slack_sdk's async client, as Block Kit messages built from its models
(so Slack's size limits are checked before sending) with Claim / Resolve buttons.

Customer text is data, never markup: it goes into `plain_text` objects (never parsed for mentions,
links or formatting) with control characters removed, and `&`, `<`, `>` escaped as Slack requires.
The only mrkdwn in a message is what the engine writes itself (links from configured templates).

Each post carries the alert id in its message metadata, so that after a crash between posting and
recording the delivery, `already_sent` finds the message in the channel instead of posting again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.metadata import Metadata
from slack_sdk.web.async_client import AsyncWebClient

from alert_engine.alerts import Alert
from alert_engine.cases import (
    LABELS,
    CaseAction,
    CaseEvent,
    CaseState,
    CaseStore,
    Rerating,
    allowed_actions,
)
from alert_engine.channels import DeliveryError, Digest, PermanentDeliveryError
from alert_engine.channels.presentation import AlertView, LinkTemplates, clean_text
from alert_engine.channels.templates import MessageTemplate, TemplateError
from alert_engine.delivery.escalation import is_escalated

METADATA_EVENT = "alert_engine_alert"
# Block ids carry the alert id: a digest message holds the buttons of several alerts.
ACTIONS_BLOCK = "actions:"
# Errors that the same request will always get: retrying cannot help.
PERMANENT_ERRORS = {
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "missing_scope",
    "invalid_blocks",
    "invalid_metadata_format",
    "msg_too_long",
    "no_permission",
}


def slack_text(text: str) -> str:
    """Slack's three control characters escaped; the rest is shown as is."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plain(text: str) -> PlainTextObject:
    return PlainTextObject(text=slack_text(text), emoji=False)


BUTTONS = (
    (CaseAction.CLAIM, "Claim", "primary"),
    (CaseAction.RESOLVED_FOLLOWUP, "Resolved \u2013 send follow-up", None),
    (CaseAction.RESOLVED_NO_FOLLOWUP, "Resolved \u2013 no follow-up", None),
    (CaseAction.NOT_ACTIONABLE, "Not actionable", "danger"),
)
STATUS_BLOCK = "status:"
DIGEST_SHOWN = 10
SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")


def action_buttons(alert_id: str, allowed: set[CaseAction] | None = None) -> ActionsBlock:
    return ActionsBlock(
        block_id=ACTIONS_BLOCK + alert_id,
        elements=[
            ButtonElement(text=label, action_id=action.value, value=alert_id, style=style)
            for action, label, style in BUTTONS
            if allowed is None or action in allowed
        ],
    )


def status_line(change: CaseEvent) -> str:
    line = f"{LABELS[change.state]} by {change.user_name or change.actor} at {change.at:%H:%M} UTC"
    if change.claimed_by and change.state is not CaseState.CLAIMED:
        line += f" (claimed by {change.claimed_by})"
    return line


def updated_blocks(
    blocks: list[dict[str, Any]], alert_id: str, change: CaseEvent
) -> list[dict[str, Any]]:
    """The original message's blocks with the alert's status and the buttons still allowed, in
    place of its buttons (or its earlier status)."""
    allowed = allowed_actions(change.state)
    status = ContextBlock(
        block_id=STATUS_BLOCK + alert_id, elements=[plain(status_line(change))]
    ).to_dict()
    updated = []
    for block in blocks:
        block_id = block.get("block_id")
        if block_id == STATUS_BLOCK + alert_id:
            continue
        if block_id == ACTIONS_BLOCK + alert_id:
            updated.append(status)
            if allowed:
                updated.append(action_buttons(alert_id, allowed).to_dict())
        else:
            updated.append(block)
    return updated


class SlackCaseUpdates:
    """Shows a case change in Slack: the original message updated, and a reply in its thread."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    async def show(
        self, channel: str, ts: str, blocks: list[dict[str, Any]], change: CaseEvent
    ) -> None:
        new_blocks = updated_blocks(blocks, change.alert_id, change)
        await self.client.chat_update(
            channel=channel, ts=ts, blocks=new_blocks, text=slack_text(status_line(change))
        )
        who = (
            f"<@{change.user_id}>"
            if change.user_id and SLACK_USER_ID.match(change.user_id)
            else slack_text(change.user_name or change.actor)
        )
        await self.client.chat_postMessage(
            channel=channel, thread_ts=ts, text=f"{LABELS[change.state]} by {who}"
        )

    async def show_rerating(self, channel: str, ts: str, rerating: Rerating) -> None:
        """`Customer re-rated 4★ (was 1★)` in the alert's thread."""
        await self.client.chat_postMessage(
            channel=channel, thread_ts=ts, text=slack_text(rerating.summary())
        )


def alert_blocks(view: AlertView, note: str | None = None) -> list[Block]:
    blocks: list[Block] = [HeaderBlock(text=plain(view.title))]
    if note:
        blocks.append(SectionBlock(text=plain(note)))
    facts = view.facts()
    # A section holds at most 10 fields.
    for start in range(0, len(facts), 10):
        blocks.append(
            SectionBlock(
                fields=[plain(f"{label}: {value}") for label, value in facts[start : start + 10]]
            )
        )
    if view.comment:
        blocks.append(SectionBlock(text=plain(f"“{view.comment}”")))
    links = [
        f"<{url}|{label}>"
        for url, label in ((view.customer_url, "Customer"), (view.interaction_url, "Interaction"))
        if url
    ]
    if links:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text="  ·  ".join(links))]))
    blocks.append(DividerBlock())
    blocks.append(action_buttons(view.alert_id))
    return blocks


def digest_blocks(digest: Digest, views: list[AlertView]) -> list[Block]:
    group = ", ".join(f"{name}={value}" for name, value in digest.group.items())
    blocks: list[Block] = [
        HeaderBlock(text=plain(f"{len(views)} alerts · {group or digest.route}"[:150]))
    ]
    for view in views[:DIGEST_SHOWN]:
        facts = " · ".join(value for _, value in view.facts()[:6])
        text = f"{view.title}\n{facts}"
        if view.comment:
            text += f"\n“{view.comment[:500]}”"
        blocks.append(SectionBlock(text=plain(text[:3000])))
        blocks.append(action_buttons(view.alert_id))
    if len(views) > DIGEST_SHOWN:
        blocks.append(
            ContextBlock(elements=[plain(f"and {len(views) - DIGEST_SHOWN} more in this group")])
        )
    return blocks


def fallback_text(view: AlertView) -> str:
    """The notification text (and what screen readers read)."""
    parts = [view.title, view.customer, view.comment]
    return slack_text(" · ".join(part for part in parts if part))[:3000]


def retry_handlers(max_retries: int) -> list[Any]:
    return [
        AsyncRateLimitErrorRetryHandler(max_retry_count=max_retries),
        AsyncServerErrorRetryHandler(max_retry_count=max_retries),
        AsyncConnectionErrorRetryHandler(max_retry_count=max_retries),
    ]


def make_client(token: str, base_url: str, max_retries: int = 0) -> AsyncWebClient:
    """A client for alert posts has no retry handlers (`max_retries=0`): the delivery layer is
    the one that retries them, with its backoff, Retry-After and per-destination circuit
    breaker; slack_sdk retrying inside each of its attempts multiplied the posts of one alert.
    Calls with no retry layer of their own (case updates after a click) get slack_sdk's."""
    return AsyncWebClient(
        token=token,
        base_url=base_url,
        timeout=15,
        retry_handlers=retry_handlers(max_retries) if max_retries else [],
    )


def delivery_error(exc: SlackApiError) -> Exception:
    """A Slack error as the delivery layer's: retry later (with Retry-After) or give up."""
    status = exc.response.status_code
    code = exc.response.get("error") if isinstance(exc.response.data, dict) else None
    if status == 429:
        retry_after = exc.response.headers.get("retry-after") or exc.response.headers.get(
            "Retry-After"
        )
        seconds = float(retry_after[0] if isinstance(retry_after, list) else retry_after or 1)
        # Slack refuses a rate-limited call before acting on it: nothing was posted.
        return DeliveryError(
            f"slack rate limited (429), retry after {seconds}s", retry_after=seconds, not_sent=True
        )
    if code in PERMANENT_ERRORS:
        return PermanentDeliveryError(f"slack: {code}")
    return DeliveryError(f"slack: HTTP {status} {code or ''}".strip())


class SlackDestination:
    def __init__(
        self,
        name: str,
        channel: str,
        client: AsyncWebClient,
        links: LinkTemplates | None = None,
        template: MessageTemplate | None = None,
        cases: CaseStore | None = None,
    ) -> None:
        self.name = name
        self.channel = channel
        self.client = client
        self.links = links or LinkTemplates()
        self.template = template
        # Where each alert's message is kept, for replies in its thread (`SlackCaseUpdates`).
        self.cases = cases

    def message(self, alert: Alert) -> dict[str, Any]:
        view = AlertView.of(alert, self.links)
        note = None
        if self.template is not None:
            try:
                note = clean_text(self.template.render(view), 2000).strip() or None
            except TemplateError as exc:
                raise PermanentDeliveryError(f"template of {self.name} failed: {exc}") from exc
        return {
            "channel": self.channel,
            "text": slack_text(note)[:3000] if note else fallback_text(view),
            "blocks": alert_blocks(view, note),
            "metadata": Metadata(
                event_type=METADATA_EVENT,
                event_payload={"alert_id": alert.id, "escalated": is_escalated(alert)},
            ),
            "unfurl_links": False,
            "unfurl_media": False,
        }

    async def send(self, alert: Alert) -> None:
        response = await self._call(self.client.chat_postMessage(**self.message(alert)))
        await self._remember(response, [alert])

    async def _remember(self, response: Any, alerts: Sequence[Alert]) -> None:
        channel, ts = response.get("channel"), response.get("ts")
        if self.cases is not None and channel and ts:
            for alert in alerts:
                # An escalation is posted elsewhere; the case's thread stays on the original.
                if not is_escalated(alert):
                    await self.cases.remember_slack_message(alert.id, channel, ts)

    async def send_digest(self, digest: Digest) -> None:
        views = [AlertView.of(alert, self.links) for alert in digest.alerts]
        response = await self._call(
            self.client.chat_postMessage(
                channel=self.channel,
                text=slack_text(f"{len(views)} alerts: " + "; ".join(v.title for v in views))[
                    :3000
                ],
                blocks=digest_blocks(digest, views),
                metadata=Metadata(
                    event_type=METADATA_EVENT, event_payload={"digest_id": digest.id}
                ),
                unfurl_links=False,
                unfurl_media=False,
            )
        )
        await self._remember(response, digest.alerts)

    async def digest_sent(self, digest: Digest) -> bool:
        return await self._find(
            digest.alerts[0], lambda payload: payload.get("digest_id") == digest.id
        )

    async def already_sent(self, alert: Alert) -> bool:
        """Whether the channel holds a message for this alert (posted before a crash)."""
        return await self._find(
            alert,
            lambda payload: (
                payload.get("alert_id") == alert.id
                and bool(payload.get("escalated")) == is_escalated(alert)
            ),
        )

    async def _find(self, alert: Alert, wanted: Callable[[dict[str, Any]], bool]) -> bool:
        oldest = (alert.fired_at - timedelta(minutes=1)).timestamp()
        cursor = None
        while True:
            response = await self._call(
                self.client.conversations_history(
                    channel=self.channel,
                    oldest=f"{oldest:.6f}",
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
            )
            for message in response.get("messages") or []:
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if metadata.get("event_type") == METADATA_EVENT and wanted(payload):
                    return True
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return False

    async def _call(self, request: Any) -> Any:
        try:
            return await request
        except SlackApiError as exc:
            raise delivery_error(exc) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(f"slack: {type(exc).__name__}: {exc}") from exc
