"""The worker's web pages for people: Slack's interactivity endpoint and the local outbox.

- `POST /slack/interactions`: Slack sends button clicks here. Only requests signed with the app's
  signing secret within the last five minutes are accepted; anything else gets 401. Each signed
  request is taken once: a replay of it is answered, and changes nothing.
- `GET /outbox`: the latest messages delivered to the local outbox, as they would look, with
  working Claim / Resolve buttons (`POST /outbox/act`), which act as the signed-in member. The
  form carries the session's CSRF token (checked by the web guard), and a cross-site request (a
  foreign Origin) is refused. The file's tail is read and the page rendered in a thread: the
  event loop goes on delivering alerts meanwhile.

Headers, the Host check, sign-in and Faust's own views are `webguard`'s.

Both go through the same `CaseStore`, so a case changes the same way whichever button was used.
An agent on the `cases` topic shows the customer's answer to the follow-up survey (`rerated`
records) on both: a reply in the alert's Slack thread, and a line on its outbox card.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import faust
import orjson
from faust.types import StreamT
from faust.web import Request, Response, View
from jinja2 import Environment
from pydantic import ValidationError
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier

from alert_engine.alerts import Alert
from alert_engine.cases import LABELS, CaseAction, CaseEvent, CaseState, CaseStore, allowed_actions
from alert_engine.channels.outbox import outbox_alerts, read_outbox_tail
from alert_engine.channels.presentation import AlertView, LinkTemplates
from alert_engine.channels.slack import BUTTONS, SlackCaseUpdates
from alert_engine.signin.csrf import FIELD as CSRF_FIELD
from alert_engine.signin.gate import signed_in_member, visitor_of
from alert_engine.storage import redis_keys
from alert_engine.storage.outage import until_redis_answers
from alert_engine.worker.webguard import parse_form, read_form

log = logging.getLogger(__name__)

PublishCase = Callable[[CaseEvent], Awaitable[None]]
OUTBOX_PAGE_LIMIT = 200
ALERT_ID = re.compile(r"^al-[0-9a-f]{1,64}$")
# Seconds since the epoch, as Slack sends them: ASCII digits (`int()` also reads "²", and raises
# on thousands of digits), a length that stays a time.
SLACK_TIMESTAMP = re.compile(r"[0-9]{1,12}")
# The verifier takes a request up to five minutes either side of its timestamp: a request first
# seen at t can be replayed until t + 10 min. A minute more for the clocks of several workers.
REPLAY_WINDOW_MS = 11 * 60 * 1000
# The pages' inline scripts, allowed by their hashes: none (who acts is the signed-in member).
PAGE_SCRIPTS: tuple[str, ...] = ()


def register_views(
    app: faust.App,
    cases: CaseStore,
    publish_case: PublishCase,
    *,
    signing_secret: str | None,
    slack_updates: SlackCaseUpdates | None,
    outbox_path: Path,
    links: LinkTemplates,
    cases_topic: faust.TopicT,
) -> None:
    verifier = SignatureVerifier(signing_secret) if signing_secret else None

    @app.page("/slack/interactions")
    class SlackInteractions(View):
        async def post(self, request: Request) -> Response:
            body = await request.read()
            timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
            signature = request.headers.get("X-Slack-Signature", "")
            if verifier is None or not _is_signed(verifier, body, timestamp, signature):
                return self.error(401, "invalid signature")
            if not await first_seen(signature):
                log.info("a signed Slack request was sent again (a replay): nothing changed")
                return self.text("This request was already taken: nothing changed.")
            form = parse_form(body) or {}
            try:
                payload = orjson.loads(form.get("payload", ""))
                if payload["type"] != "block_actions":
                    raise ValueError("not a button click")
                [action] = payload["actions"]
                alert_id = str(action["value"])
                case_action = CaseAction(action["action_id"])
                user = payload["user"]
                user_id = str(user.get("id", ""))
                user_name = str(user.get("name") or user.get("username") or user.get("id", ""))
                channel = payload["channel"]["id"]
                message = payload["message"]
                message_ts = str(message["ts"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
                return self.error(400, "not a block action this app sent")
            await cases.remember_slack_message(alert_id, channel, message_ts)
            change = await cases.apply(
                alert_id, case_action, user_id=user_id, user_name=user_name, source="slack"
            )
            if change is not None:
                await publish_case(change)
                if slack_updates is not None:
                    try:
                        await slack_updates.show(
                            channel, message["ts"], message.get("blocks") or [], change
                        )
                    except SlackApiError as exc:
                        # The case changed and is recorded; only its display in Slack lags.
                        log.warning("cannot update the Slack message of %s: %s", alert_id, exc)
            # Slack shows an error to the user unless it gets 200 within 3 seconds.
            return self.text("")

    async def first_seen(signature: str) -> bool:
        """Slack sends each click once: a request whose signature was seen is a replay. In
        Redis, so that a replay to another worker is one too."""
        key = redis_keys.slack_request(cases.prefix, signature)
        return bool(await cases.redis.set(key, "1", nx=True, px=REPLAY_WINDOW_MS))

    page = Environment(autoescape=True).from_string(OUTBOX_PAGE)

    @app.page("/outbox")
    class OutboxPage(View):
        async def get(self, request: Request) -> Response:
            shown = await asyncio.to_thread(outbox_views, outbox_path, links)
            cards = []
            for entry, view in shown:
                case = await cases.get(view.alert_id)
                cards.append(
                    {
                        "digest": entry.get("digest"),
                        "destination": entry.get("destination"),
                        "delivered_at": entry.get("delivered_at"),
                        "view": view,
                        "state": LABELS[case.state],
                        "case": case,
                        "buttons": [
                            (action.value, label)
                            for action, label, _ in BUTTONS
                            if action in allowed_actions(case.state)
                        ],
                    }
                )
            visitor = visitor_of(request)
            html = await asyncio.to_thread(
                page.render,
                cards=cards,
                csrf=visitor.csrf_token,
                csrf_field=CSRF_FIELD,
                member=signed_in_member(request),
                via_proxy=visitor.via_proxy,
            )
            return self.html(html)

    @app.page("/outbox/act")
    class OutboxAct(View):
        async def post(self, request: Request) -> Response:
            origin = request.headers.get("Origin")
            if origin and urlsplit(origin).netloc != request.headers.get("Host"):
                return self.error(403, "cross-site request")
            form = await read_form(request)
            if form is None:
                return self.error(400, "not a URL-encoded UTF-8 form")
            alert_id = str(form.get("alert_id", ""))
            try:
                action = CaseAction(str(form.get("action", "")))
            except ValueError:
                return self.error(400, "unknown action")
            if not ALERT_ID.match(alert_id):
                return self.error(400, "unknown alert")
            member = signed_in_member(request)
            change = await cases.apply(
                alert_id,
                action,
                user_id=member.user_id,
                user_name=member.shown_name,
                source="outbox",
            )
            if change is not None:
                await publish_case(change)
            return self.text("", status=303, headers={"Location": "/outbox"})

    async def show_rerating(raw: bytes) -> None:
        try:
            case = CaseEvent.from_json(raw)
        except ValidationError:
            return  # the follow-up agent dead-letters it
        rerating = case.rerating
        if case.state is not CaseState.RERATED or rerating is None:
            return
        await cases.record_rerating(case.alert_id, rerating)
        stored = await cases.get(case.alert_id)
        thread = stored.slack_thread
        if slack_updates is None or thread is None or stored.rerated_replied == rerating.rating_id:
            return
        try:
            await slack_updates.show_rerating(*thread, rerating)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("cannot reply the re-rating of %s in Slack: %s", case.alert_id, exc)
            return
        await cases.rerating_replied(case.alert_id, rerating)

    @app.agent(cases_topic, name="case-reratings")
    async def show_reratings(records: StreamT[bytes]) -> AsyncIterator[None]:
        async for raw in records:
            await until_redis_answers(partial(show_rerating, raw), what="a re-rating")
            yield None


def outbox_views(path: Path, links: LinkTemplates) -> list[tuple[dict[str, Any], AlertView]]:
    """The alerts of the page's latest entries, newest first, with their entries. Blocking: run
    in a thread. An alert the engine cannot read any more is passed over."""
    shown = []
    for entry in reversed(read_outbox_tail(path, OUTBOX_PAGE_LIMIT)):
        for raw in outbox_alerts(entry):
            try:
                alert = Alert.model_validate(raw)
            except ValidationError as exc:
                log.warning("an outbox entry is not an alert: %s", exc.errors()[0]["msg"])
                continue
            shown.append((entry, AlertView.of(alert, links)))
    return shown


def _is_signed(verifier: SignatureVerifier, body: bytes, timestamp: str, signature: str) -> bool:
    # The verifier raises instead of saying no on a timestamp int() cannot read, a signature
    # that is not ASCII and a body that is not UTF-8: none of them is Slack's.
    return (
        SLACK_TIMESTAMP.fullmatch(timestamp) is not None
        and signature.isascii()
        and _is_utf8(body)
        and verifier.is_valid(body, timestamp, signature)
    )


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


OUTBOX_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Outbox · alert-engine</title>
<meta http-equiv="refresh" content="10">
<style>
body{font-family:system-ui,sans-serif;background:#f4f4f6;margin:0;padding:1.5rem;color:#1d1c1d}
.card{background:#fff;border-radius:8px;padding:1rem 1.2rem;margin:0 0 1rem;max-width:46rem;
box-shadow:0 1px 3px #0002}
h2{font-size:1.05rem;margin:.2rem 0 .6rem}.meta{color:#616061;font-size:.8rem}
dl{display:grid;grid-template-columns:8rem 1fr;gap:.2rem .8rem;margin:.4rem 0}dt{color:#616061}
blockquote{border-left:4px solid #ddd;margin:.6rem 0;padding:.2rem .8rem;white-space:pre-wrap}
.state{font-weight:600}button{margin:.2rem .3rem 0 0;padding:.35rem .7rem;border-radius:4px;
border:1px solid #bbb;background:#fff;cursor:pointer}button.claim{background:#007a5a;color:#fff}
form.signout{display:inline}
</style></head><body>
<h1>Outbox</h1>
<p class="meta">Alerts delivered to destinations without a Slack or SendGrid account, newest
first, as they would look.</p>
<div class="meta">Signed in as <b class="member">{{ member.shown_name }}</b> ·
<a href="/console">Queue</a>{% if not via_proxy %}
<form method="post" action="/signout" class="signout">
<input type="hidden" name="{{ csrf_field }}" value="{{ csrf }}">
<button type="submit">Sign out</button></form>{% endif %}</div>
{% for card in cards %}
<div class="card">
<div class="meta">to <b>{{ card.destination }}</b> at {{ card.delivered_at }}
{% if card.digest %} · in a digest of {{ card.digest.route }}
{% for name, value in card.digest.group.items() %} {{ name }}={{ value }}{% endfor %}{% endif %}
</div>
<h2>{{ card.view.title }}</h2>
<dl>{% for label, value in card.view.facts() %}<dt>{{ label }}</dt><dd>{{ value }}</dd>{% endfor %}
</dl>
{% if card.view.comment %}<blockquote>{{ card.view.comment }}</blockquote>{% endif %}
{% if card.view.customer_url %}<a href="{{ card.view.customer_url }}">Customer</a>{% endif %}
{% if card.view.interaction_url %}
<a href="{{ card.view.interaction_url }}">Interaction</a>{% endif %}
<p class="state">{{ card.state }}{% if card.case.claimed_by %}
(claimed by {{ card.case.claimed_by.removeprefix("member:").removeprefix("outbox:") }})
{% endif %}</p>
{% if card.case.rerated %}<p class="rerated">{{ card.case.rerated }}</p>{% endif %}
{% if card.buttons %}
<form method="post" action="/outbox/act">
<input type="hidden" name="{{ csrf_field }}" value="{{ csrf }}">
<input type="hidden" name="alert_id" value="{{ card.view.alert_id }}">
{% for action, label in card.buttons %}
<button name="action" value="{{ action }}" class="{{ action }}">{{ label }}</button>
{% endfor %}
</form>{% endif %}
</div>
{% else %}<p>No alerts yet.</p>{% endfor %}
</body></html>
"""
