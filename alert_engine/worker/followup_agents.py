"""The follow-up loop's agents, timer and pages on the Faust app (added by `create_app` when a
`FollowupService` is given): case records schedule surveys, a timer sends the due ones, the survey
pages take answers. Without a history database, `/dashboard` says what the figures need."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import faust
import faust.web
import orjson
from faust.types import EventT, StreamT
from pydantic import ValidationError
from redis.exceptions import RedisError

from alert_engine.cases import CaseEvent
from alert_engine.deadletters import DeadLetter
from alert_engine.events import describe_validation_error
from alert_engine.followup.service import Answered, FollowupService
from alert_engine.followup.survey import templates
from alert_engine.settings import Settings
from alert_engine.stats import Stats
from alert_engine.storage.outage import tick_skipped_on_outage, until_redis_answers
from alert_engine.worker.outputs import Outputs
from alert_engine.worker.webguard import read_form

log = logging.getLogger(__name__)


def add_followup(
    app: faust.App,
    settings: Settings,
    followup: FollowupService,
    cases_topic: faust.TopicT,
    publish: Callable[[Outputs], Awaitable[None]],
    stats: Stats,
) -> None:
    """The closed loop: case records schedule surveys, a timer sends them, pages take answers."""
    kafka = settings.kafka

    @app.agent(cases_topic, name="followup-cases", sink=[publish])
    async def follow_up_cases(events: StreamT[bytes]) -> AsyncIterator[Outputs]:
        event: EventT[bytes]
        async for event in events.events():
            try:
                case = CaseEvent.from_json(event.value)
            except ValidationError as exc:
                yield [
                    DeadLetter.of(
                        event,
                        kafka.deadletter_topic,
                        reason="invalid",
                        detail=describe_validation_error(exc),
                    )
                ]
                continue
            await until_redis_answers(
                partial(followup.on_case, case), what=f"the case of {case.alert_id}"
            )
            stats.cases_in[case.state.value] += 1
            yield []

    @app.timer(settings.followup.poll_seconds, name="followup-send")  # type: ignore[untyped-decorator]
    async def send_followups() -> None:
        with tick_skipped_on_outage("due follow-ups"):
            stats.surveys_sent["email"] += await followup.send_due()

    async def publish_answer(answered: Answered) -> None:
        producer = app.producer
        await producer.send_and_wait(
            kafka.ratings_topic,
            str(answered.rating["id"]).encode(),
            orjson.dumps(answered.rating),
            None,
            None,
            None,
        )
        await producer.send_and_wait(
            kafka.cases_topic,
            answered.case.alert_id.encode(),
            answered.case.to_json(),
            None,
            None,
            None,
        )

    @app.page("/survey/{token}")
    class SurveyPage(faust.web.View):
        async def get(self, request: Any, token: str) -> Any:
            try:
                page = await followup.survey_form(token)
            except (RedisError, OSError):
                page = followup.unavailable()
            return self.html(page.html, status=page.status)

        async def post(self, request: Any, token: str) -> Any:
            # A body that is not a UTF-8 form is no answer: the form again, or the link's refusal.
            form = await read_form(request) or {}
            try:
                result = await followup.answer(token, form)
            except (RedisError, OSError):
                result = followup.unavailable()
            if isinstance(result, Answered):
                try:
                    await publish_answer(result)
                except Exception:
                    log.exception("cannot publish the answer to survey %s", result.survey_id)
                    await followup.release(result.survey_id)
                    result = followup.unavailable()
                else:
                    stats.surveys_answered[str(result.rating["rating"])] += 1
                    result = result.page
            return self.html(result.html, status=result.status)

    if settings.database.enabled:
        # The history in PostgreSQL has the dashboard (`alert_engine.dashboard`, by `add_history`).
        return

    # The outcome figures are computed from the history alone: without it the page says how to
    # set it up (200: the page works, and is what a member opening it should read).
    page = templates.get_template("history_needed.html").render(company=settings.followup.company)

    @app.page("/dashboard")
    async def dashboard(web: Any, request: Any) -> Any:
        return web.html(page)
