"""Waiting out a Redis outage: the record in hand is retried, never skipped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import RedisError

log = logging.getLogger(__name__)

T = TypeVar("T")

# While Redis is unreachable, the record in hand is retried at this pace.
REDIS_RETRY_SECONDS = 1.0


async def until_done(action: Callable[[], Awaitable[T]]) -> T:
    """`action()`, retried while Redis is unreachable: the record waits, nothing is skipped."""
    while True:
        try:
            return await action()
        except (RedisError, OSError) as exc:
            log.warning("Redis unavailable, retrying in %.0f s: %s", REDIS_RETRY_SECONDS, exc)
            await asyncio.sleep(REDIS_RETRY_SECONDS)
