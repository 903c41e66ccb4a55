"""The outcome of recovery: per alert facts kept in Redis, folded into figures per team, agent,
rule and week.

The facts come from the Kafka topics (alerts, cases, the survey answers); Redis holds one hash per
alert as their projection. `figures` is a pure function of those facts.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from redis.asyncio import Redis

from alert_engine.alerts import Alert
from alert_engine.cases import CaseAction, CaseEvent, CaseState
from alert_engine.settings import RedisSettings
from alert_engine.storage import redis_keys
from alert_engine.storage.due_queue import text as as_text
from alert_engine.storage.first_write import FirstWrites

# Outcome facts are kept for a year: enough for week-over-week and year-ago figures.
FACTS_TTL_SECONDS = 366 * 24 * 3600


class OutcomeFacts:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._first_writes = FirstWrites(redis)

    async def record(self, alert_id: str, fields: Mapping[str, str | int | float]) -> None:
        key = redis_keys.outcome(self.prefix, alert_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=cast(Any, dict(fields)))
            pipe.expire(key, FACTS_TTL_SECONDS)
            pipe.sadd(redis_keys.outcome_index(self.prefix), alert_id)
            await pipe.execute()

    async def _record_first(self, alert_id: str, fields: Mapping[str, str | int | float]) -> None:
        """Fields set only if not there yet: the first claim, the alert as first seen."""
        await self._first_writes.write(
            redis_keys.outcome(self.prefix, alert_id),
            fields,
            ttl_seconds=FACTS_TTL_SECONDS,
            index=(redis_keys.outcome_index(self.prefix), alert_id),
        )

    async def record_alert(self, alert: Alert, *, holdout: bool = False) -> None:
        event = alert.event
        agent = event.get("agent")
        facts: dict[str, str | int | float] = {
            "alert": alert.to_json().decode(),
            "rule": alert.rule,
            "team": str(event.get("team", "")),
            "agent": str(agent.get("name") or agent.get("id")) if isinstance(agent, dict) else "",
            "alert_at": alert.fired_at.isoformat(),
        }
        if isinstance(event.get("rating"), int):
            facts["initial_rating"] = event["rating"]
        if isinstance(event.get("nps"), int):
            facts["initial_nps"] = event["nps"]
        await self._record_first(alert.id, facts)
        if holdout:
            await self.record(alert.id, {"holdout": 1})

    async def record_case(self, case: CaseEvent) -> None:
        await self.record_alert(case.alert)
        if case.action is CaseAction.NOTE:
            return
        if case.undone is not None:
            # The resolution taken back: the case counts as not resolved (a claim stays).
            await self.record(case.alert_id, {"resolution": "", "resolved_at": ""})
        elif case.state is CaseState.CLAIMED:
            await self._record_first(case.alert_id, {"claimed_at": case.at.isoformat()})
        elif case.state in (
            CaseState.RESOLVED_FOLLOWUP,
            CaseState.RESOLVED_NO_FOLLOWUP,
            CaseState.NOT_ACTIONABLE,
        ):
            await self.record(
                case.alert_id, {"resolution": case.state.value, "resolved_at": case.at.isoformat()}
            )
        elif case.state is CaseState.REOPENED:
            await self.record(case.alert_id, {"resolution": "", "resolved_at": ""})
        elif case.state is CaseState.HOLDOUT:
            await self.record(case.alert_id, {"holdout": 1})
        elif case.state is CaseState.RERATED and case.rerating is not None:
            answer: dict[str, str | int | float] = {
                "followup_rating": case.rerating.rating,
                "answered_at": case.at.isoformat(),
            }
            if case.rerating.nps is not None:
                answer["followup_nps"] = case.rerating.nps
            await self.record(case.alert_id, answer)

    async def alert_json(self, alert_id: str) -> bytes | None:
        value = await self.redis.hget(redis_keys.outcome(self.prefix, alert_id), "alert")
        return None if value is None else as_text(value).encode()

    async def all(self) -> list[dict[str, str]]:
        ids = sorted(
            as_text(member)
            for member in await self.redis.smembers(redis_keys.outcome_index(self.prefix))
        )
        async with self.redis.pipeline(transaction=False) as pipe:
            for alert_id in ids:
                pipe.hgetall(redis_keys.outcome(self.prefix, alert_id))
            rows = await pipe.execute()
        return [
            {key.decode(): value.decode() for key, value in row.items() if key != b"alert"}
            for row in rows
            if row
        ]


async def load_cases(settings: RedisSettings) -> list[CaseFacts]:
    """Every case with facts in the Redis `settings` name."""
    redis = Redis.from_url(settings.url)
    try:
        rows = await OutcomeFacts(redis, settings.key_prefix).all()
    finally:
        await redis.aclose()
    return [case for case in map(CaseFacts.parse, rows) if case is not None]


# --------------------------------------------------------------------------- the figures

DIMENSIONS = ("team", "agent", "rule", "week")
RESOLVED = ("resolved_followup", "resolved_no_followup")


@dataclass(frozen=True)
class CaseFacts:
    """One alert's case, parsed from its stored facts."""

    team: str
    agent: str
    rule: str
    alert_at: datetime
    holdout: bool = False
    initial_rating: int | None = None
    initial_nps: int | None = None
    claimed_at: datetime | None = None
    resolution: str = ""
    followup: str = ""
    followup_rating: int | None = None
    followup_nps: int | None = None

    @property
    def week(self) -> str:
        year, week, _ = self.alert_at.isocalendar()
        return f"{year}-W{week:02d}"

    @property
    def answered(self) -> bool:
        return self.followup_rating is not None

    @classmethod
    def parse(cls, facts: Mapping[str, str]) -> CaseFacts | None:
        """None for facts without an alert time (a stray answer whose alert was never seen)."""
        alert_at = _time(facts.get("alert_at"))
        if alert_at is None:
            return None
        return cls(
            team=facts.get("team", "") or "-",
            agent=facts.get("agent", "") or "-",
            rule=facts.get("rule", "") or "-",
            alert_at=alert_at,
            holdout=facts.get("holdout") == "1",
            initial_rating=_int(facts.get("initial_rating")),
            initial_nps=_int(facts.get("initial_nps")),
            claimed_at=_time(facts.get("claimed_at")),
            resolution=facts.get("resolution", ""),
            followup=facts.get("followup", ""),
            followup_rating=_int(facts.get("followup_rating")),
            followup_nps=_int(facts.get("followup_nps")),
        )

    def key(self, dimension: str) -> str:
        value: str = getattr(self, dimension)
        return value


@dataclass(frozen=True)
class Cohort:
    """Follow-up answers of one cohort: recovered cases, or cases held out of recovery."""

    sent: int
    answered: int
    avg_initial: float | None
    avg_followup: float | None
    nps_before: float | None
    nps_after: float | None

    @property
    def response_rate(self) -> float | None:
        return self.answered / self.sent if self.sent else None

    @property
    def uplift(self) -> float | None:
        """Average follow-up rating over average initial rating, of the same answered cases."""
        if self.avg_initial is None or self.avg_followup is None or not self.avg_initial:
            return None
        return self.avg_followup / self.avg_initial


@dataclass(frozen=True)
class Figures:
    key: str
    alerts: int
    claimed: int
    median_claim_seconds: float | None
    resolved: int
    recovered: Cohort
    holdout: Cohort

    @property
    def recovery_lift(self) -> float | None:
        """How much more recovered customers rated up than held-out ones: the lift that is the
        recovery's own, not customers rating higher the second time anyway."""
        if self.recovered.uplift is None or not self.holdout.uplift:
            return None
        return self.recovered.uplift / self.holdout.uplift


def figures(cases: Iterable[CaseFacts], by: str) -> list[Figures]:
    """Figures per value of `by` (team, agent, rule or week), sorted by that value."""
    if by not in DIMENSIONS:
        raise ValueError(f"cannot group by {by!r} (one of: {', '.join(DIMENSIONS)})")
    groups: dict[str, list[CaseFacts]] = {}
    for case in cases:
        groups.setdefault(case.key(by), []).append(case)
    return [_figures(key, groups[key]) for key in sorted(groups)]


def total(cases: Iterable[CaseFacts]) -> Figures:
    return _figures("all", list(cases))


def _figures(key: str, cases: list[CaseFacts]) -> Figures:
    claim_seconds = [
        (case.claimed_at - case.alert_at).total_seconds()
        for case in cases
        if case.claimed_at is not None
    ]
    return Figures(
        key=key,
        alerts=len(cases),
        claimed=len(claim_seconds),
        median_claim_seconds=statistics.median(claim_seconds) if claim_seconds else None,
        resolved=sum(case.resolution in RESOLVED for case in cases),
        recovered=_cohort([case for case in cases if not case.holdout]),
        holdout=_cohort([case for case in cases if case.holdout]),
    )


def _cohort(cases: list[CaseFacts]) -> Cohort:
    paired = [case for case in cases if case.answered and case.initial_rating is not None]
    nps_paired = [
        case for case in paired if case.initial_nps is not None and case.followup_nps is not None
    ]
    return Cohort(
        sent=sum(case.followup == "sent" for case in cases),
        answered=sum(case.answered for case in cases),
        avg_initial=_mean(case.initial_rating for case in paired),
        avg_followup=_mean(case.followup_rating for case in paired),
        nps_before=nps([case.initial_nps for case in nps_paired]),
        nps_after=nps([case.followup_nps for case in nps_paired]),
    )


def nps(scores: Sequence[int | None]) -> float | None:
    """Net Promoter Score: % of 9-10 minus % of 0-6, from -100 to 100."""
    given = [score for score in scores if score is not None]
    if not given:
        return None
    promoters = sum(score >= 9 for score in given)
    detractors = sum(score <= 6 for score in given)
    return 100.0 * (promoters - detractors) / len(given)


def _mean(values: Iterable[int | None]) -> float | None:
    numbers = [value for value in values if value is not None]
    return statistics.fmean(numbers) if numbers else None


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.lstrip("-").isdigit() else None


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
