"""Riding out a Redis outage: one way for the whole engine.

Work in hand (a record consumed from Kafka, a delivery under way) waits for Redis rather than
guessing or being skipped: taking an error for "not delivered" would send twice, and letting it
escape an agent would ack the record's offset and lose it. Meanwhile later records wait in Kafka,
which keeps them. A timer's tick, which has nothing in hand, is simply skipped.

Only errors of reaching Redis count; a Redis error about the command itself (a bad script, a
wrong type) is a bug and is raised, not retried forever.

Every wait and every skipped tick is accounted in `REDIS`, whoever the caller (the delivery
ledger, the holdout look-up, the follow-up cases, a timer): `/ready` answers 503 while anything
waits on Redis, and `alert_engine_ledger_unavailable_total` counts each attempt that found it
unreachable. A caller cannot forget to report an outage, so an operator's alert on Redis fires.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

T = TypeVar("T")

OUTAGE_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
FIRST_DELAY = 0.1
MAX_DELAY = 2.0


@dataclass
class RedisReachability:
    """The worker's view of Redis, from every call that waits on it and every skipped tick."""

    # Attempts that found Redis unreachable, by error type, since the process started.
    errors: Counter[str] = field(default_factory=Counter)
    # Calls waiting for Redis to answer now.
    waiting: int = 0
    # Timers whose last tick found Redis unreachable (until one of their ticks gets through).
    skipping: set[str] = field(default_factory=set)

    @property
    def reachable(self) -> bool:
        return self.waiting == 0 and not self.skipping


# One per process, like the event loop it describes: what waits on Redis is spread over agents,
# timers and pages that share nothing else.
REDIS = RedisReachability()


async def until_redis_answers(
    call: Callable[[], Awaitable[T]],
    *,
    what: str,
    on_outage: Callable[[BaseException], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """`call()`, tried again (backing off to every `MAX_DELAY` s) while Redis is unreachable;
    counted in `REDIS` meanwhile."""
    waiting = False
    try:
        for attempt in itertools.count(1):
            try:
                return await call()
            except OUTAGE_ERRORS as exc:
                REDIS.errors[type(exc).__name__] += 1
                if not waiting:
                    waiting = True
                    REDIS.waiting += 1
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
    finally:
        # Answered, or cancelled (the worker stopping): no longer waiting either way.
        if waiting:
            REDIS.waiting -= 1
    raise AssertionError("unreachable: the loop only ends by returning")


@contextmanager
def tick_skipped_on_outage(what: str) -> Iterator[None]:
    """A timer's tick that finds Redis unreachable is skipped, not the worker crashed: Faust stops
    the whole app when a timer raises. The next tick tries again."""
    try:
        yield
    except OUTAGE_ERRORS as exc:
        REDIS.errors[type(exc).__name__] += 1
        REDIS.skipping.add(what)
        log.warning("cannot check %s, Redis unreachable: %s", what, exc)
    else:
        REDIS.skipping.discard(what)
