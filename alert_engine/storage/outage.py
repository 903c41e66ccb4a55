"""Riding out a Redis outage: one way for the whole engine (and the same loop for PostgreSQL's,
`history.database`).

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
class Reachability:
    """The worker's view of one service, from every call that waits on it."""

    # Attempts that found the service unreachable, by error type, since the process started.
    errors: Counter[str] = field(default_factory=Counter)
    # Calls waiting for it to answer now.
    waiting: int = 0

    @property
    def reachable(self) -> bool:
        return self.waiting == 0


@dataclass
class RedisReachability(Reachability):
    """Redis's view, in which a skipped timer tick counts too."""

    # Timers whose last tick found Redis unreachable (until one of their ticks gets through).
    skipping: set[str] = field(default_factory=set)

    @property
    def reachable(self) -> bool:
        return self.waiting == 0 and not self.skipping


@dataclass(frozen=True)
class Service:
    """A service whose outages are ridden out: its name in the log lines, the errors of reaching
    it (as opposed to errors about what was sent), where its waits are counted, the longest
    pause between attempts, the logger of its waits (the caller's module's, as the lines always
    named), and how an error reads there."""

    name: str
    outage_errors: tuple[type[BaseException], ...]
    reachability: Reachability
    max_delay: float
    log: logging.Logger
    describe: Callable[[BaseException], str] = str


async def until_answered(
    service: Service,
    call: Callable[[], Awaitable[T]],
    *,
    what: str,
    on_outage: Callable[[], Awaitable[None]] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """`call()`, tried again (backing off from `FIRST_DELAY` to every `service.max_delay` s)
    while the service is unreachable, after `on_outage()` (say, dropping a broken connection);
    counted in `service.reachability` meanwhile. Any other error is raised."""
    reachability = service.reachability
    waiting = False
    try:
        for attempt in itertools.count(1):
            try:
                return await call()
            except service.outage_errors as exc:
                reachability.errors[type(exc).__name__] += 1
                if not waiting:
                    waiting = True
                    reachability.waiting += 1
                if on_outage is not None:
                    await on_outage()
                delay = min(service.max_delay, FIRST_DELAY * 2.0 ** min(attempt - 1, 16))
                service.log.warning(
                    "%s unreachable for %s (attempt %d), retrying in %.1fs: %s",
                    service.name,
                    what,
                    attempt,
                    delay,
                    service.describe(exc),
                )
                await sleep(delay)
    finally:
        # Answered, or cancelled (the worker stopping): no longer waiting either way.
        if waiting:
            reachability.waiting -= 1
    raise AssertionError("unreachable: the loop only ends by returning")


# One per process, like the event loop it describes: what waits on Redis is spread over agents,
# timers and pages that share nothing else.
REDIS = RedisReachability()
_REDIS = Service("Redis", OUTAGE_ERRORS, REDIS, MAX_DELAY, log)


async def until_redis_answers(
    call: Callable[[], Awaitable[T]],
    *,
    what: str,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """`call()`, tried again (backing off to every `MAX_DELAY` s) while Redis is unreachable;
    counted in `REDIS` meanwhile."""
    return await until_answered(_REDIS, call, what=what, sleep=sleep)


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
