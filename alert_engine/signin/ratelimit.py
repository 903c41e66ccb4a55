"""How many sign-ins may fail: `max_failures` per client address and per member name within
`failure_window_seconds`, then 429 with `Retry-After` until the window ends, whatever the
password. Counted in Redis, so that trying the workers in turn gains nothing.

Per name as well as per address: guessing one member's password from many addresses is held
too. A successful sign-in clears its name's count (not its address's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis.asyncio import Redis

from alert_engine.storage import redis_keys


@dataclass(frozen=True)
class FailureLimit:
    max_failures: int
    window_seconds: float


class SigninLimiter:
    def __init__(self, redis: Redis, prefix: str, limit: FailureLimit) -> None:
        self.redis = redis
        self.prefix = prefix
        self.limit = limit

    def _keys(self, address: str, name: str) -> list[str]:
        return [
            redis_keys.signin_failures(self.prefix, "address", address),
            redis_keys.signin_failures(self.prefix, "member", name.strip().lower()[:64]),
        ]

    async def retry_after(self, address: str, name: str) -> int | None:
        """Seconds until another try is taken, or None when it is taken now."""
        waits = []
        for key in self._keys(address, name):
            count = await self.redis.get(key)
            if count is not None and int(count) >= self.limit.max_failures:
                remaining_ms = await self.redis.pttl(key)
                waits.append(max(1, math.ceil(remaining_ms / 1000)) if remaining_ms > 0 else 1)
        return max(waits) if waits else None

    async def failed(self, address: str, name: str) -> None:
        window_ms = int(self.limit.window_seconds * 1000)
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in self._keys(address, name):
                # The window starts at the first failure: NX leaves a running one alone.
                pipe.incr(key)
                pipe.pexpire(key, window_ms, nx=True)
            await pipe.execute()

    async def succeeded(self, name: str) -> None:
        await self.redis.delete(self._keys("", name)[1])
