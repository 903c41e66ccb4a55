"""The follow-up loop in one place: case records in, surveys scheduled, sent and answered.

The Faust app calls it from the cases agent, a timer and the survey pages; Kafka sends stay in
the app (the service returns what to publish).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from redis.asyncio import Redis

from alert_engine.alerts import Alert
from alert_engine.cases import CaseAction, CaseEvent, CaseState, Rerating
from alert_engine.channels import PermanentDeliveryError
from alert_engine.followup import survey as pages
from alert_engine.followup.mailer import SurveyEmail, SurveyMailer
from alert_engine.followup.schedule import (
    FollowupSchedule,
    ScheduledSurvey,
    Settled,
    new_survey_id,
)
from alert_engine.followup.sends import FollowupSettled
from alert_engine.followup.timing import QuietHours, customer_zone, is_holdout, send_time
from alert_engine.followup.tokens import InvalidToken, sign, verify
from alert_engine.rules.spec import FollowupPolicy
from alert_engine.settings import FollowupSettings
from alert_engine.storage import redis_keys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Page:
    """An HTML page to answer with."""

    status: int
    html: str


@dataclass(frozen=True)
class Answered:
    """A recorded answer: the thank-you page, and the records to publish."""

    page: Page
    rating: dict[str, Any]
    case: CaseEvent
    survey_id: str


class FollowupService:
    def __init__(
        self,
        settings: FollowupSettings,
        redis: Redis,
        prefix: str,
        mailer: SurveyMailer,
        *,
        public_url: str,
        rule_policies: Mapping[str, FollowupPolicy] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        # Rule name -> the rule's own follow-up policy, where it has one.
        self.rule_policies = rule_policies or {}
        self.redis = redis
        self.prefix = prefix
        self.mailer = mailer
        self.public_url = public_url.rstrip("/")
        self.clock = clock
        self.schedule = FollowupSchedule(redis, prefix)
        self.quiet = QuietHours(settings.quiet_start, settings.quiet_end)
        self._secret: bytes | None = (
            settings.token_secret.get_secret_value().encode() if settings.token_secret else None
        )
        # Told of every settled survey once Redis has it (the worker publishes it to the
        # `followups` topic for the outcome history); until it returns the send is not done.
        self.on_settled: Callable[[FollowupSettled], Awaitable[None]] | None = None

    # ------------------------------------------------------------------ cases and alerts

    async def on_case(self, case: CaseEvent) -> None:
        # A note on a resolved case is no second resolution; an undo takes the survey back.
        if case.state is CaseState.RESOLVED_FOLLOWUP and case.action is not CaseAction.NOTE:
            await self._schedule(case.alert, resolved_at=case.at, holdout=False)
        elif (
            case.state in (CaseState.REOPENED, CaseState.NOT_ACTIONABLE)
            or case.undone is CaseAction.RESOLVED_FOLLOWUP
        ) and await self.schedule.cancel(case.alert_id):
            what = "undone" if case.undone else case.state.value
            log.info("follow-up for %s cancelled (%s)", case.alert_id, what)

    def is_holdout(self, alert: Alert) -> bool:
        return is_holdout(alert.id, self.settings.holdout_share)

    async def on_alert(self, alert: Alert) -> CaseEvent | None:
        """A held-out alert gets its survey scheduled as if resolved now, and a `holdout` case
        record to publish (it is not delivered for action); any other alert, nothing."""
        if not self.is_holdout(alert):
            return None
        await self._schedule(alert, resolved_at=alert.fired_at, holdout=True)
        return CaseEvent(
            alert_id=alert.id,
            state=CaseState.HOLDOUT,
            previous_state=CaseState.OPEN,
            actor="holdout",
            at=alert.fired_at,
            alert=alert,
        )

    async def _schedule(self, alert: Alert, *, resolved_at: datetime, holdout: bool) -> None:
        policy = self.rule_policies.get(alert.rule)
        if policy is not None and not policy.enabled:
            log.info("no follow-up for %s: rule %s has follow-up disabled", alert.id, alert.rule)
            return
        delay = timedelta(seconds=self.settings.delay_seconds)
        if policy is not None and policy.delay is not None:
            delay = policy.delay
        customer = alert.event.get("customer")
        zone_name = customer.get("timezone") if isinstance(customer, dict) else None
        due = send_time(
            resolved_at,
            delay,
            self.quiet,
            customer_zone(zone_name, self.settings.default_timezone),
        )
        survey = ScheduledSurvey(
            alert_id=alert.id,
            survey_id=new_survey_id(),
            due_at=due,
            resolved_at=resolved_at,
            rule=alert.rule,
            event=alert.event,
            holdout=holdout,
            alert=alert,
        )
        if await self.schedule.schedule(survey):
            log.info("follow-up for %s scheduled at %s", alert.id, due.isoformat())

    # ------------------------------------------------------------------ sending

    async def send_due(self) -> int:
        """Send every survey due now; returns how many were sent."""
        now = self.clock()
        claimed = await self.schedule.claim_due(now, lease_seconds=self.settings.lease_seconds)
        sent = 0
        for survey in claimed:
            try:
                sent += await self._send(survey, now)
            except Exception:
                # Left claimed: the claim expires and the survey is tried again.
                log.exception("sending the follow-up survey for %s failed", survey.alert_id)
        return sent

    async def _send(self, survey: ScheduledSurvey, now: datetime) -> int:
        customer = survey.customer
        email = customer.get("email")
        if not isinstance(email, str) or "@" not in email:
            await self.schedule.settle(survey.alert_id, Settled.NO_EMAIL)
            await self._settled(survey, Settled.NO_EMAIL, now)
            return 0
        customer_id = str(customer.get("id", email))
        if not await self.schedule.suppress_customer(
            customer_id, survey.alert_id, self.settings.suppression_seconds
        ):
            log.info("follow-up for %s suppressed: customer surveyed recently", survey.alert_id)
            await self.schedule.settle(survey.alert_id, Settled.SUPPRESSED)
            await self._settled(survey, Settled.SUPPRESSED, now)
            return 0
        expires = now + timedelta(seconds=self.settings.token_ttl_seconds)
        await self.redis.set(
            redis_keys.survey(self.prefix, survey.survey_id),
            survey.model_dump_json(),
            px=int(self.settings.token_ttl_seconds * 1000) + 60_000,
        )
        token = sign(await self.secret(), survey.survey_id, expires)
        link = f"{self.public_url}/survey/{token}"
        name = customer.get("name") if isinstance(customer.get("name"), str) else None
        team = str(survey.event.get("team", ""))
        text, html = pages.email_bodies(
            company=self.settings.company, customer_name=name, team=team, link=link, expires=expires
        )
        survey_email = SurveyEmail(
            to=email,
            sender=self.settings.sender,
            subject=f"How did we do? A quick question from {self.settings.company}",
            text=text,
            html=html,
            link=link,
            alert_id=survey.alert_id,
            survey_id=survey.survey_id,
        )
        try:
            await self.mailer.send(survey_email)
        except PermanentDeliveryError as exc:
            log.warning("follow-up survey for %s refused for good: %s", survey.alert_id, exc)
            await self.schedule.settle(survey.alert_id, Settled.REJECTED)
            await self._settled(survey, Settled.REJECTED, now)
            return 0
        await self.schedule.settle(survey.alert_id, Settled.SENT)
        await self._settled(survey, Settled.SENT, now)
        return 1

    async def _settled(self, survey: ScheduledSurvey, outcome: Settled, now: datetime) -> None:
        if self.on_settled is not None:
            await self.on_settled(
                FollowupSettled(
                    alert_id=survey.alert_id,
                    survey_id=survey.survey_id,
                    outcome=outcome,
                    at=now,
                    holdout=survey.holdout,
                    rule=survey.rule,
                )
            )

    async def secret(self) -> bytes:
        if self._secret is None:
            key = redis_keys.token_secret(self.prefix)
            await self.redis.set(key, secrets.token_urlsafe(32), nx=True)
            value = await self.redis.get(key)
            assert value is not None
            self._secret = value.encode() if isinstance(value, str) else bytes(value)
        return self._secret

    # ------------------------------------------------------------------ the survey pages

    def _refused(self, reason: str, status: int) -> Page:
        return Page(status, pages.refused_page(company=self.settings.company, reason=reason))

    async def _open(self, token: str) -> ScheduledSurvey | Page:
        try:
            checked = verify(await self.secret(), token, self.clock())
        except InvalidToken as exc:
            return self._refused(exc.problem.value, 404 if exc.problem.value == "forged" else 410)
        if await self.redis.exists(redis_keys.survey_answered(self.prefix, checked.survey_id)):
            return self._refused("used", 410)
        raw = await self.redis.get(redis_keys.survey(self.prefix, checked.survey_id))
        if raw is None:
            return self._refused("expired", 410)
        return ScheduledSurvey.model_validate_json(raw)

    def _form_page(
        self,
        survey: ScheduledSurvey,
        token: str,
        *,
        status: int = 200,
        error: str | None = None,
        form: Mapping[str, str] | None = None,
    ) -> Page:
        name = survey.customer.get("name")
        return Page(
            status,
            pages.survey_page(
                company=self.settings.company,
                customer_name=name if isinstance(name, str) else None,
                team=str(survey.event.get("team", "")),
                action=f"/survey/{token}",
                error=error,
                form=form,
            ),
        )

    async def survey_form(self, token: str) -> Page:
        opened = await self._open(token)
        return opened if isinstance(opened, Page) else self._form_page(opened, token)

    async def answer(self, token: str, form: Mapping[str, str]) -> Answered | Page:
        """Takes the answer once; the caller publishes it, or calls `release` if it cannot. The
        outcome history learns of it from the published `rerated` case record."""
        opened = await self._open(token)
        if isinstance(opened, Page):
            return opened
        try:
            answer = pages.parse_answer(form)
        except pages.InvalidAnswer as exc:
            return self._form_page(opened, token, status=400, error=str(exc), form=form)
        marker = redis_keys.survey_answered(self.prefix, opened.survey_id)
        ttl = int(self.settings.token_ttl_seconds * 1000) + 60_000
        if not await self.redis.set(marker, "1", nx=True, px=ttl):
            return self._refused("used", 410)
        now = self.clock()
        rating = follow_up_rating(opened, answer, now)
        initial = opened.event.get("rating")
        case = CaseEvent(
            alert_id=opened.alert_id,
            state=CaseState.RERATED,
            actor="customer",
            at=now,
            alert=alert_of(opened),
            rerating=Rerating(
                rating=answer.rating,
                previous_rating=initial if isinstance(initial, int) else None,
                nps=answer.nps,
                rating_id=str(rating["id"]),
                comment=answer.comment,
            ),
        )
        page = Page(200, pages.thanks_page(company=self.settings.company, answer=answer))
        return Answered(page=page, rating=rating, case=case, survey_id=opened.survey_id)

    async def release(self, survey_id: str) -> None:
        """The answer could not be published: the link works again."""
        await self.redis.delete(redis_keys.survey_answered(self.prefix, survey_id))

    def unavailable(self) -> Page:
        return self._refused("unavailable", 503)


def alert_of(survey: ScheduledSurvey) -> Alert:
    """The alert the survey is about, as it travelled with the survey. A survey scheduled by a
    release before carries only the event: the alert is rebuilt from what the survey knows (its
    severity and route are not among that)."""
    if survey.alert is not None:
        return survey.alert
    return Alert.model_validate(
        {
            "id": survey.alert_id,
            "rule": survey.rule,
            "severity": "info",
            "route": "default",
            "key": str(survey.event.get("id", "")),
            "stream": "ratings",
            "event": survey.event,
            "values": {},
            "event_time": survey.resolved_at,
            "fired_at": survey.resolved_at,
            "ruleset_version": "",
        }
    )


def follow_up_rating(
    survey: ScheduledSurvey, answer: pages.Answer, now: datetime
) -> dict[str, Any]:
    """The answer as a `ratings` event: same customer, agent, team and channel as the rating the
    alert was about, `survey: follow_up` and the alert it answers."""
    event = survey.event
    rating: dict[str, Any] = {
        "id": f"fu-{survey.alert_id}",
        "rating": answer.rating,
        "customer": event.get("customer"),
        "agent": event.get("agent"),
        "team": event.get("team"),
        "channel": event.get("channel"),
        "time": now.isoformat(),
        "survey": "follow_up",
        "alert_id": survey.alert_id,
    }
    if answer.nps is not None:
        rating["nps"] = answer.nps
    if answer.comment:
        rating["comment"] = answer.comment
    if event.get("interaction_id"):
        rating["interaction_id"] = event["interaction_id"]
    return rating


def encode(record: Mapping[str, Any]) -> bytes:
    return orjson.dumps(record)
