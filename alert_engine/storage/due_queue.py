"""Work that falls due at a time, shared by every worker through Redis: escalations, digests,
follow-up surveys.

A sorted set holds each item's due time (its score) and, optionally, a hash its payload. Taking
due items is one script: their score moves to a lease deadline, so no other worker takes them
while this one works, and a worker that dies leaves them to be taken again once the lease ends.
An item whose payload is gone (cancelled meanwhile) is dropped as it is met. Callers remove an
item once done; what they did must itself be idempotent (the delivery ledger, a settled marker),
since a lease can end before a slow worker finishes.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

# KEYS[1] the due set, KEYS[2] the payload hash (optional). ARGV: now, lease end, max count.
# Returns id, payload pairs (payload "" without a hash).
_TAKE_DUE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local taken = {}
for _, id in ipairs(ids) do
  local payload = ''
  if KEYS[2] then payload = redis.call('HGET', KEYS[2], id) end
  if payload then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[2], id)
    table.insert(taken, id)
    table.insert(taken, payload)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return taken
"""


@dataclass(frozen=True)
class Taken:
    id: str
    payload: str


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class DueQueue:
    def __init__(self, redis: Redis, due_key: str, payloads_key: str | None = None) -> None:
        self.redis = redis
        self.due_key = due_key
        self.payloads_key = payloads_key
        self._take_due = redis.register_script(_TAKE_DUE)

    def add_to(self, pipe: Pipeline, item_id: str, due: float, payload: str | bytes = "") -> None:
        """Queue on `pipe` (a transaction with the caller's own writes): the item falls due at
        `due` unless it is already queued, which keeps its first due time and payload."""
        if self.payloads_key is not None:
            pipe.hsetnx(self.payloads_key, item_id, payload)
        pipe.zadd(self.due_key, {item_id: due}, nx=True)

    async def add(self, item_id: str, due: float, payload: str | bytes = "") -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            self.add_to(pipe, item_id, due, payload)
            await pipe.execute()

    def remove_from(self, pipe: Pipeline, item_id: str) -> None:
        pipe.zrem(self.due_key, item_id)
        if self.payloads_key is not None:
            pipe.hdel(self.payloads_key, item_id)

    async def remove(self, item_id: str) -> bool:
        """False if the item was not queued."""
        async with self.redis.pipeline(transaction=True) as pipe:
            self.remove_from(pipe, item_id)
            removed, *_ = await pipe.execute()
        return bool(removed)

    async def take_due(self, now: float, *, lease_seconds: float, limit: int) -> list[Taken]:
        """Items due at `now`, each leased to this caller for `lease_seconds`, soonest first."""
        keys = [self.due_key] if self.payloads_key is None else [self.due_key, self.payloads_key]
        flat = await self._take_due(keys=keys, args=[now, now + lease_seconds, limit])
        return [Taken(text(flat[i]), text(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def due_at(self, item_id: str) -> float | None:
        score = await self.redis.zscore(self.due_key, item_id)
        return None if score is None else float(score)

    async def pending(self) -> int:
        return int(await self.redis.zcard(self.due_key))


async def claim(redis: Redis, key: str, holder: str, *, ttl_ms: int) -> bool:
    """True if `holder` holds `key` now: it was free and is now taken for `ttl_ms`, or `holder`
    took it before. One `SET … NX GET`: a key expiring between a `SET NX` and a `GET` cannot
    refuse a holder that should have it."""
    previous = await redis.set(key, holder, nx=True, px=max(1, ttl_ms), get=True)
    return previous is None or (isinstance(previous, bytes | str) and text(previous) == holder)
