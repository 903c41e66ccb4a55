"""Silences: alerts matching a silence's matchers are not delivered until the silence ends.

Silences live in Redis (one hash), so every worker sees one as soon as it is added; each is parsed
once per worker and cached by id. The matchers are the routing tree's (`team = orders`,
`severity =~ low|info`, `labels.product != legacy`).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from alert_engine.alerts import Alert
from alert_engine.routing import Matcher
from alert_engine.storage import redis_keys


class Silence(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    matchers: list[str] = Field(min_length=1)
    ends_at: AwareDatetime
    created_by: str
    comment: str = ""
    created_at: AwareDatetime

    def is_active(self, now: datetime) -> bool:
        return self.ends_at > now


class SilenceStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.key = redis_keys.silences(prefix)
        self._parsed: dict[str, tuple[Silence, tuple[Matcher, ...]]] = {}

    async def add(
        self, matchers: list[str], ends_at: datetime, *, created_by: str, comment: str = ""
    ) -> Silence:
        """Raises ValueError for a matcher that does not parse."""
        for text in matchers:
            Matcher.parse(text)
        silence = Silence(
            id=f"si-{secrets.token_hex(4)}",
            matchers=matchers,
            ends_at=ends_at,
            created_by=created_by,
            comment=comment,
            created_at=datetime.now(UTC),
        )
        await self.redis.hset(self.key, silence.id, silence.model_dump_json())
        return silence

    async def all(self) -> list[Silence]:
        raw = await self.redis.hgetall(self.key)
        silences = [Silence.model_validate_json(value) for value in raw.values()]
        return sorted(silences, key=lambda silence: silence.ends_at)

    async def expire(self, silence_id: str) -> bool:
        """End a silence now; False if there is none with that id."""
        raw = await self.redis.hget(self.key, silence_id)
        if raw is None:
            return False
        silence = Silence.model_validate_json(raw)
        ended = silence.model_copy(update={"ends_at": datetime.now(UTC)})
        await self.redis.hset(self.key, silence_id, ended.model_dump_json())
        return True

    async def silencing(self, alert: Alert, now: datetime | None = None) -> Silence | None:
        """The active silence that mutes this alert, if any."""
        now = now or datetime.now(UTC)
        raw = await self.redis.hgetall(self.key)
        for key, value in raw.items():
            silence_id = key.decode() if isinstance(key, bytes) else key
            cached = self._parsed.get(silence_id)
            if cached is None or cached[0].model_dump_json() != _text(value):
                silence = Silence.model_validate_json(value)
                cached = (silence, tuple(Matcher.parse(text) for text in silence.matchers))
                self._parsed[silence_id] = cached
            silence, matchers = cached
            if silence.is_active(now) and all(m.matches(alert) for m in matchers):
                return silence
        return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
