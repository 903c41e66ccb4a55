"""Where a click on a case lands: Slack's interactivity endpoint (and the outbox page's, in
`worker.outbox_page`), and the agent that shows follow-up answers on the case.

- `POST /slack/interactions`: Slack sends button clicks here. Only requests signed with the app's
  signing secret within the last five minutes are accepted; anything else gets 401. Each signed
  request is taken once: a replay of it is answered, and changes nothing.
  A click asks for a case action (`slack_cases.read_click`); the change is published, the card
  updated and a line added to the alert's thread, and a click that changes nothing is explained
  to the clicker alone. Add a note (and a resolution with the reason "other") opens a modal;
  its submission (`view_submission`) makes the change.
- `GET /outbox`: the latest messages delivered to the local outbox, as they would look, with
  the case's history and working actions (`POST /outbox/act`; final actions through a confirm
  step), which act as the signed-in member (`outbox_actor`). The form carries the session's CSRF
  token (checked by the web guard), and a cross-site request (a foreign Origin) is refused. The
  file's tail is read and the page rendered in a thread: the event loop goes on delivering alerts
  meanwhile.

Headers, the Host check, sign-in and Faust's own views are `webguard`'s.

Both go through the same `CaseStore`, so a case changes the same way whichever button was used.
An agent on the `cases` topic shows the customer's answer to the follow-up survey (`rerated`
records) on both: a reply in the alert's Slack thread, and a line on its card; an answer still
unhappy (`CasePolicy.is_unhappy`) reopens the closed case.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import faust
import orjson
from faust.types import StreamT
from faust.web import Request, Response, View
from pydantic import ValidationError
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier

from alert_engine.cases import (
    Actor,
    CaseAction,
    CaseEvent,
    CaseRequest,
    CaseState,
    CaseStore,
    Refusal,
    Rerating,
)
from alert_engine.channels.presentation import LinkTemplates
from alert_engine.channels.slack import SlackCaseUpdates
from alert_engine.channels.slack_cases import (
    NOTE_BLOCK,
    NOTE_BUTTON,
    REASON_SELECT,
    Click,
    NoteSubmission,
    read_click,
    read_note_submission,
)
from alert_engine.signin.members import Member
from alert_engine.storage import redis_keys
from alert_engine.storage.outage import until_redis_answers
from alert_engine.worker.outbox_page import (
    PublishCase,
    WebActor,
    register_outbox,
)
from alert_engine.worker.webguard import parse_form

log = logging.getLogger(__name__)

# Seconds since the epoch, as Slack sends them: ASCII digits (`int()` also reads "²", and raises
# on thousands of digits), a length that stays a time.
SLACK_TIMESTAMP = re.compile(r"[0-9]{1,12}")
# The verifier takes a request up to five minutes either side of its timestamp: a request first
# seen at t can be replayed until t + 10 min. A minute more for the clocks of several workers.
REPLAY_WINDOW_MS = 11 * 60 * 1000
# The member a Slack user id is mapped to, if any.
SlackMember = Callable[[str], Member | None]


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
    show_contact: bool = True,
    web_actor: WebActor | None = None,
    slack_member: SlackMember | None = None,
) -> PublishCase:
    """Returns `show_in_slack`, for the other pages that change cases (the console).
    `slack_member`: the member a Slack user is mapped to (the members file's `slack_user`),
    who acts for their clicks."""
    verifier = SignatureVerifier(signing_secret) if signing_secret else None

    def as_member(request: CaseRequest) -> CaseRequest:
        """A click by a mapped Slack user acts as the member (as on the console: `mine`, the
        name); reassigning to a mapped user assigns the member."""
        if slack_member is None:
            return request
        member = slack_member(request.actor.id)
        if member is not None:
            actor = Actor(id=member.user_id, name=member.shown_name, source=request.actor.source)
            request = replace(request, actor=actor)
        assignee = slack_member(request.assignee) if request.assignee else None
        if assignee is not None:
            request = replace(request, assignee=assignee.user_id, assignee_name=assignee.shown_name)
        return request

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
                if payload["type"] == "view_submission":
                    submission = read_note_submission(payload)
                else:
                    click = read_click(payload)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
                return self.error(400, "not an interaction this app sent")
            if payload["type"] == "view_submission":
                refused = await note_submitted(submission)
                if refused is not None:
                    # The modal stays open with the reason under the note.
                    return self.json(
                        {"response_action": "errors", "errors": {NOTE_BLOCK: refused.message}}
                    )
                return self.text("")
            await cases.remember_slack_message(click.alert_id, click.channel, click.ts)
            await clicked(click)
            # Slack shows an error to the user unless it gets 200 within 3 seconds.
            return self.text("")

    async def clicked(click: Click) -> None:
        if click.control == REASON_SELECT:
            return  # a reason picked: read from the message's state when Resolve is clicked
        if click.needs_note:
            if slack_updates is not None and click.trigger_id:
                await slack_call(slack_updates.open_note(click.trigger_id, click), click.alert_id)
                return
            if click.control == NOTE_BUTTON:
                return
        result = await cases.attempt(click.alert_id, as_member(click.request()))
        await report(result, click.actor, click.channel, click.ts, click.blocks)

    async def note_submitted(submission: NoteSubmission) -> Refusal | None:
        result = await cases.attempt(submission.alert_id, as_member(submission.request()))
        if isinstance(result, Refusal):
            return result
        await report(result, submission.actor, submission.channel, submission.ts, None)
        return None

    async def report(
        result: CaseEvent | Refusal,
        actor: Actor,
        channel: str,
        ts: str,
        blocks: list[dict[str, Any]] | None,
    ) -> None:
        """A change published, shown on the card and in the thread; a refusal to the clicker."""
        if isinstance(result, Refusal):
            log.info("a click on a case changed nothing: %s", result.message)
            if slack_updates is not None:
                await slack_call(slack_updates.refuse(channel, actor.id, result.message), "")
            return
        await publish_case(result)
        if slack_updates is not None:
            case = await cases.get(result.alert_id)
            await slack_call(
                slack_updates.show(case, result, channel=channel, ts=ts, blocks=blocks),
                result.alert_id,
            )

    async def show_in_slack(change: CaseEvent) -> None:
        """A change made elsewhere (the outbox page) on the alert's Slack card and thread too,
        where it was posted there."""
        if slack_updates is None:
            return
        case = await cases.get(change.alert_id)
        if case.slack_thread is not None:
            channel, ts = case.slack_thread
            await slack_call(
                slack_updates.show(case, change, channel=channel, ts=ts), change.alert_id
            )

    async def slack_call(call: Awaitable[None], alert_id: str) -> None:
        try:
            await call
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            # The case changed and is recorded; only its display in Slack lags.
            log.warning("cannot show the case of %s in Slack: %s", alert_id or "-", exc)

    async def first_seen(signature: str) -> bool:
        """Slack sends each click once: a request whose signature was seen is a replay. In
        Redis, so that a replay to another worker is one too."""
        key = redis_keys.slack_request(cases.prefix, signature)
        return bool(await cases.redis.set(key, "1", nx=True, px=REPLAY_WINDOW_MS))

    register_outbox(
        app,
        cases,
        publish_case,
        show_in_slack,
        outbox_path=outbox_path,
        links=links,
        show_contact=show_contact,
        web_actor=web_actor,
    )

    async def show_rerating(raw: bytes) -> None:
        try:
            case = CaseEvent.from_json(raw)
        except ValidationError:
            return  # the follow-up agent dead-letters it
        rerating = case.rerating
        if case.state is not CaseState.RERATED or rerating is None:
            return
        await cases.record_rerating(case.alert_id, rerating)
        reopened = await reopen_if_unhappy(case.alert_id, rerating)
        stored = await cases.get(case.alert_id)
        thread = stored.slack_thread
        if slack_updates is None or thread is None:
            return
        if stored.rerated_replied != rerating.rating_id:
            try:
                await slack_updates.show_rerating(*thread, rerating)
            except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
                log.warning("cannot reply the re-rating of %s in Slack: %s", case.alert_id, exc)
                return
            await cases.rerating_replied(case.alert_id, rerating)
        # The card shows the answer (and the case reopened, with its line in the thread).
        channel, ts = thread
        await slack_call(
            slack_updates.show(stored, reopened, channel=channel, ts=ts), case.alert_id
        )

    async def reopen_if_unhappy(alert_id: str, rerating: Rerating) -> CaseEvent | None:
        """A closed case whose customer is still unhappy after the follow-up is open again."""
        policy = cases.policy
        if not (policy.reopen_when_unhappy and policy.is_unhappy(rerating)):
            return None
        if not (await cases.get(alert_id)).is_closed:
            return None
        result = await cases.attempt(
            alert_id,
            CaseRequest.of(CaseAction.REOPEN, FOLLOWUP_ACTOR),
            # However long after the close the answer comes.
            reopen_limit=False,
        )
        if isinstance(result, Refusal):
            return None
        await publish_case(result)
        return result

    @app.agent(cases_topic, name="case-reratings")
    async def show_reratings(records: StreamT[bytes]) -> AsyncIterator[None]:
        async for raw in records:
            await until_redis_answers(partial(show_rerating, raw), what="a re-rating")
            yield None

    return show_in_slack


FOLLOWUP_ACTOR = Actor(id="followup", name="the follow-up survey", source="followup")


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
