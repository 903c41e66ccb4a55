"""Slack: alerts posted with slack_sdk's async client, as Block Kit messages built from its models
(so Slack's size limits are checked before sending): the card (who rated whom how, the facts as
bold labels over values, the comment, links) and its case's status and controls
(`slack_cases`).

Customer text is data, never markup: the comment and the headline go into `plain_text` objects
(never parsed for mentions, links or formatting); values inside the engine's mrkdwn (the facts,
the notification text, thread lines) are made safe by `slack_text.mrkdwn_text`. Control
characters are removed from all of it.

Each post carries the alert id in its message metadata, so that after a crash between posting and
recording the delivery, `already_sent` finds the message in the channel instead of posting again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.models.metadata import Metadata
from slack_sdk.web.async_client import AsyncWebClient

from alert_engine.alerts import Alert
from alert_engine.cases import LABELS, Case, CaseEvent, CasePolicy, CaseStore, Rerating
from alert_engine.channels import DeliveryError, Digest, PermanentDeliveryError
from alert_engine.channels.presentation import (
    CLAIM_BY,
    RATED,
    RESOLVE_BY,
    AlertView,
    LinkTemplates,
    clean_text,
)
from alert_engine.channels.slack_cases import (
    Click,
    case_blocks,
    note_modal,
    thread_text,
    updated_blocks,
)
from alert_engine.channels.slack_text import mrkdwn_text, plain, slack_date
from alert_engine.channels.templates import MessageTemplate, TemplateError
from alert_engine.delivery.escalation import is_escalated

METADATA_EVENT = "alert_engine_alert"
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


DIGEST_SHOWN = 10


def open_case(alert: Alert) -> Case:
    """The case of an alert being posted: open since now."""
    return Case(alert_id=alert.id, delivered_at=datetime.now(UTC))


class SlackCaseUpdates:
    """Shows a case in Slack: its card updated (`chat.update`), each change a line in the
    alert's thread, a refusal to the clicker alone (`chat.postEphemeral`), the note modal
    (`views.open`)."""

    def __init__(self, client: AsyncWebClient, policy: CasePolicy | None = None) -> None:
        self.client = client
        self.policy = policy or CasePolicy()

    async def show(
        self,
        case: Case,
        change: CaseEvent | None,
        *,
        channel: str,
        ts: str,
        blocks: list[dict[str, Any]] | None = None,
    ) -> None:
        """The card updated to the case; the change (if any) in the thread. Without the
        message's blocks (not a click on it), they are read from the channel."""
        if blocks is None:
            blocks = await self.message_blocks(channel, ts)
        if blocks is not None:
            alert = case.parsed_alert()
            title = AlertView.of(alert).title if alert is not None else case.alert_id
            await self.client.chat_update(
                channel=channel,
                ts=ts,
                blocks=updated_blocks(blocks, case, self.policy),
                text=mrkdwn_text(f"{title} \u00b7 {LABELS[case.state]}")[:3000],
            )
        if change is not None:
            await self.client.chat_postMessage(
                channel=channel, thread_ts=ts, text=thread_text(change)
            )

    async def refuse(self, channel: str, user: str, text: str) -> None:
        """Why a click changed nothing, shown to the one who clicked."""
        await self.client.chat_postEphemeral(channel=channel, user=user, text=mrkdwn_text(text))

    async def open_note(self, trigger_id: str, click: Click) -> None:
        await self.client.views_open(trigger_id=trigger_id, view=note_modal(click))

    async def message_blocks(self, channel: str, ts: str) -> list[dict[str, Any]] | None:
        """The blocks of the message at `ts`, or None if the channel no longer has it."""
        response = await self.client.conversations_history(
            channel=channel, latest=ts, inclusive=True, limit=1
        )
        for message in response.get("messages") or []:
            if message.get("ts") == ts:
                return list(message.get("blocks") or [])
        return None

    async def show_rerating(self, channel: str, ts: str, rerating: Rerating) -> None:
        """`Customer re-rated 4★ (was 1★): “…”` in the alert's thread."""
        await self.client.chat_postMessage(
            channel=channel, thread_ts=ts, text=mrkdwn_text(rerating.summary())[:3000]
        )


def fact_text(label: str, value: str, view: AlertView) -> MarkdownTextObject:
    """`*Label*` over the value: the engine's mrkdwn around the data made safe; the rating's time
    and the SLA's deadlines as each reader's own."""
    epochs = {
        RATED: view.rated_epoch,
        CLAIM_BY: view.claim_by_epoch,
        RESOLVE_BY: view.resolve_by_epoch,
    }
    epoch = epochs.get(label)
    if epoch is not None:
        shown = slack_date(datetime.fromtimestamp(epoch, UTC))
    else:
        shown = mrkdwn_text(value)
    return MarkdownTextObject(text=f"*{mrkdwn_text(label)}*\n{shown}"[:2000], verbatim=True)


def alert_blocks(
    view: AlertView,
    note: str | None = None,
    case: Case | None = None,
    policy: CasePolicy | None = None,
) -> list[Block]:
    blocks: list[Block] = [HeaderBlock(text=plain(view.title))]
    if note:
        blocks.append(SectionBlock(text=plain(note)))
    facts = view.facts()
    # A section holds at most 10 fields.
    for start in range(0, len(facts), 10):
        blocks.append(
            SectionBlock(
                fields=[fact_text(label, value, view) for label, value in facts[start : start + 10]]
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
    blocks.extend(case_blocks(case or Case(alert_id=view.alert_id), policy or CasePolicy()))
    return blocks


def digest_blocks(
    digest: Digest, views: list[AlertView], policy: CasePolicy | None = None
) -> list[Block]:
    group = ", ".join(f"{name}={value}" for name, value in digest.group.items())
    blocks: list[Block] = [
        HeaderBlock(text=plain(f"{len(views)} alerts · {group or digest.route}"[:150]))
    ]
    now = datetime.now(UTC)
    for view in views[:DIGEST_SHOWN]:
        facts = " · ".join(value for _, value in view.facts()[:6])
        text = f"{view.title}\n{facts}"
        if view.comment:
            text += f"\n“{view.comment[:500]}”"
        blocks.append(SectionBlock(text=plain(text[:3000])))
        blocks.extend(
            case_blocks(Case(alert_id=view.alert_id, delivered_at=now), policy or CasePolicy())
        )
    if len(views) > DIGEST_SHOWN:
        blocks.append(
            ContextBlock(elements=[plain(f"and {len(views) - DIGEST_SHOWN} more in this group")])
        )
    return blocks


def fallback_text(view: AlertView) -> str:
    """The notification text (and what screen readers read)."""
    parts = [view.title, view.comment]
    return mrkdwn_text(" · ".join(part for part in parts if part))[:3000]


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
        *,
        contact: bool = True,
    ) -> None:
        self.name = name
        self.channel = channel
        self.client = client
        self.links = links or LinkTemplates()
        self.template = template
        # Where each alert's message is kept, for replies in its thread (`SlackCaseUpdates`).
        self.cases = cases
        self.policy = cases.policy if cases is not None else CasePolicy()
        # The customer's email and phone on the card (`ALERT_ENGINE_CASES_SHOW_CONTACT`).
        self.contact = contact

    def message(self, alert: Alert) -> dict[str, Any]:
        view = AlertView.of(alert, self.links, contact=self.contact)
        note = None
        if self.template is not None:
            try:
                note = clean_text(self.template.render(view), 2000).strip() or None
            except TemplateError as exc:
                raise PermanentDeliveryError(f"template of {self.name} failed: {exc}") from exc
        return {
            "channel": self.channel,
            "text": mrkdwn_text(note)[:3000] if note else fallback_text(view),
            "blocks": alert_blocks(view, note, open_case(alert), self.policy),
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
        views = [AlertView.of(alert, self.links, contact=self.contact) for alert in digest.alerts]
        response = await self._call(
            self.client.chat_postMessage(
                channel=self.channel,
                text=mrkdwn_text(f"{len(views)} alerts: " + "; ".join(v.title for v in views))[
                    :3000
                ],
                blocks=digest_blocks(digest, views, self.policy),
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
