"""Riding out a Redis outage: one way for the whole engine.

Work in hand (a record consumed from Kafka, a delivery under way) waits for Redis rather than
guessing or being skipped: taking an error for "not delivered" would send twice, and letting it
escape an agent would ack the record's offset and lose it. Meanwhile later records wait in Kafka,
which keeps them. A timer's tick, which has nothing in hand, is simply skipped.

Only errors of reaching Redis count; a Redis error about the command itself (a bad script, a
wrong type) is a bug and is raised, not retried forever.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

T = TypeVar("T")

OUTAGE_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
FIRST_DELAY = 0.1
MAX_DELAY = 2.0


async def until_redis_answers(
    call: Callable[[], Awaitable[T]],
    *,
    what: str,
    on_outage: Callable[[BaseException], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """`call()`, tried again (backing off to every `MAX_DELAY` s) while Redis is unreachable."""
    for attempt in itertools.count(1):
        try:
            return await call()
        except OUTAGE_ERRORS as exc:
            if on_outage is not None:
                on_outage(exc)
            delay = min(MAX_DELAY, FIRST_DELAY * 2.0 ** min(attempt - 1, 16))
            log.warning(
                "Redis unreachable for %s (attempt %d), retrying in %.1fs: %s",
                what,
                attempt,
                delay,
                exc,
            )
            await sleep(delay)
    raise AssertionError("unreachable: the loop only ends by returning")


@contextmanager
def tick_skipped_on_outage(what: str) -> Iterator[None]:
    """A timer's tick that finds Redis unreachable is skipped, not the worker crashed: Faust stops
    the whole app when a timer raises. The next tick tries again."""
    try:
        yield
    except OUTAGE_ERRORS as exc:
        log.warning("cannot check %s, Redis unreachable: %s", what, exc)
