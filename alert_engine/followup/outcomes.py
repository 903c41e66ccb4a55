"""The outcome of recovery: per alert facts kept in Redis, folded into figures per team, agent,
rule and week.

The facts come from the Kafka topics (alerts, cases, the survey answers); Redis holds one hash per
alert as their projection. `figures` is a pure function of those facts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from redis.asyncio import Redis

from alert_engine import redis_keys
from alert_engine.alerts import Alert
from alert_engine.cases import CaseEvent, CaseState
from alert_engine.followup.schedule import as_text

# Outcome facts are kept for a year: enough for week-over-week and year-ago figures.
FACTS_TTL_SECONDS = 366 * 24 * 3600


class OutcomeFacts:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    async def record(self, alert_id: str, fields: Mapping[str, str | int | float]) -> None:
        key = redis_keys.outcome(self.prefix, alert_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=cast(Any, dict(fields)))
            pipe.expire(key, FACTS_TTL_SECONDS)
            pipe.sadd(redis_keys.outcome_index(self.prefix), alert_id)
            await pipe.execute()

    async def _record_first(self, alert_id: str, fields: Mapping[str, str | int | float]) -> None:
        """Fields set only if not there yet: the first claim, the alert as first seen."""
        key = redis_keys.outcome(self.prefix, alert_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            for name, value in fields.items():
                pipe.hsetnx(key, name, value)
            pipe.expire(key, FACTS_TTL_SECONDS)
            pipe.sadd(redis_keys.outcome_index(self.prefix), alert_id)
            await pipe.execute()

    async def record_alert(self, alert: Alert, *, holdout: bool = False) -> None:
        event = alert.event
        agent = event.get("agent")
        facts: dict[str, str | int | float] = {
            "alert": alert.to_json().decode(),
            "rule": alert.rule,
            "team": str(event.get("team", "")),
            "agent": str(agent.get("name") or agent.get("id")) if isinstance(agent, dict) else "",
            "alert_at": alert.fired_at.isoformat(),
            "holdout": int(holdout),
        }
        if isinstance(event.get("rating"), int):
            facts["initial_rating"] = event["rating"]
        if isinstance(event.get("nps"), int):
            facts["initial_nps"] = event["nps"]
        await self._record_first(alert.id, facts)

    async def record_case(self, case: CaseEvent) -> None:
        await self.record_alert(case.alert)
        if case.state is CaseState.CLAIMED:
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
