"""When a destination's sends may go: a circuit breaker and ordered admission, per destination.

Without it, every alert retried on its own timer: a dead destination kept every alert of it
failing, and when the destination answered again, each alert waited out what was left of its own
backoff (up to 30 s) in no particular order. Here each destination has a gate:

- closed: up to `max_in_flight` sends at once, the oldest alerts first;
- open (after `failures_to_open` transient failures in a row, or at once on a rate limit, until
  its Retry-After): no sends at all, so a dead destination costs one probe per cool-down instead
  of a failing send per alert;
- half-open, when the cool-down is over: one probe, the alert with the fewest failed attempts
  (so one alert that fails on its own cannot keep the gate shut), then, once a probe succeeds,
  a window that doubles with each success up to `max_in_flight` (slow start: the backlog goes
  out oldest first, at the pace the destination answers instead of all at once). A failure
  while half-open opens the gate again, for a longer cool-down.

An alert that fails while the others succeed (its own content is the problem) never opens the
gate: the successes in between reset the count. Gates of different destinations share nothing,
so a dead e-mail account does not slow Slack.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from bisect import insort
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from enum import Enum

from alert_engine.problems import AlertEngineError

log = logging.getLogger(__name__)


LINE_UP_SECONDS = 0.05


class HeldTooLong(AlertEngineError):
    """The send was not let through by its deadline: the destination kept failing."""


class Outcome(Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # Says nothing about the destination (a permanent error of the alert, a cancelled send).
    NEUTRAL = "neutral"


@dataclass
class Turn:
    """One admitted send; the sender says how it went."""

    # Admitted while the gate was tripped (a probe, or the slow start's window): only such a
    # send's outcome tells how the destination is now; one admitted before is old news.
    while_tripped: bool = False
    # The gate's recoveries when the send was let through (see `pause`).
    recoveries: int = 0
    outcome: Outcome = Outcome.NEUTRAL
    retry_after: float | None = None

    def succeeded(self) -> None:
        self.outcome = Outcome.SUCCEEDED

    def failed(self, retry_after: float | None = None) -> None:
        self.outcome = Outcome.FAILED
        self.retry_after = retry_after


@dataclass(order=True)
class _Waiter:
    age: float
    seq: int
    attempts: int = field(compare=False)
    admitted: asyncio.Future[None] = field(compare=False)
    while_tripped: bool = field(default=False, compare=False)


class DestinationGate:
    def __init__(
        self,
        name: str,
        *,
        max_in_flight: int,
        failures_to_open: int,
        cool_down: Callable[[int, float | None], float],
        on_open: Callable[[str], None] | None = None,
    ) -> None:
        """`cool_down(opens, retry_after)`: how long the gate stays open after opening `opens`
        times in a row (the delivery's retry policy: one backoff for everything)."""
        self.name = name
        self.max_in_flight = max_in_flight
        self.failures_to_open = failures_to_open
        self.cool_down = cool_down
        self.on_open = on_open
        self._waiting: list[_Waiter] = []
        self._seq = itertools.count()
        self._in_flight = 0
        self._failures = 0
        # Tripped: open until `_open_until`, then half-open; `_window` sends at once until the
        # slow start is back at `max_in_flight`.
        self._tripped = False
        self._probed = False
        self._opens = 0
        self._open_until = 0.0
        self._window = max_in_flight
        self._timer: asyncio.TimerHandle | None = None
        # The pauses of alerts that failed (`pause`), ended when the gate recovers.
        self._pausing: set[asyncio.Future[None]] = set()
        self._recoveries = 0
        # Right after a recovery, sends wait a moment for the paused alerts to line up again, so
        # that the oldest go first rather than those that happened to be waiting already.
        self._line_up_until = 0.0

    @property
    def is_open(self) -> bool:
        return self._tripped and self._loop().time() < self._open_until

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @asynccontextmanager
    async def turn(
        self, age: float, attempts: int, deadline: float | None = None
    ) -> AsyncIterator[Turn]:
        """Waits until this send may go (`age`: older first; `attempts`: its failures so far),
        then holds one of the destination's sends while the body runs. Raises `HeldTooLong`
        if not let through by `deadline` (event-loop time)."""
        waiter = _Waiter(age, next(self._seq), attempts, self._loop().create_future())
        insort(self._waiting, waiter)
        self._dispatch()
        try:
            async with asyncio.timeout_at(deadline):
                await waiter.admitted
        except (asyncio.CancelledError, TimeoutError) as exc:
            if waiter in self._waiting:
                self._waiting.remove(waiter)
            elif waiter.admitted.done() and not waiter.admitted.cancelled():
                self._in_flight -= 1
                self._dispatch()
            if isinstance(exc, TimeoutError):
                raise HeldTooLong(f"{self.name} kept failing") from exc
            raise
        turn = Turn(while_tripped=waiter.while_tripped, recoveries=self._recoveries)
        try:
            yield turn
        finally:
            self._in_flight -= 1
            self._settle(turn)
            self._dispatch()

    async def pause(
        self, turn: Turn, seconds: float, sleep: Callable[[float], Awaitable[None]]
    ) -> None:
        """An alert's own backoff after its failed `turn`, cut short when the gate next recovers
        (even if it opened after this failure), or skipped if it recovered while the send was
        under way: the failure was most likely the destination's, and the alert goes out with
        the others, in age order."""
        if self._recoveries > turn.recoveries:
            return
        recovered = self._loop().create_future()
        self._pausing.add(recovered)
        slept = asyncio.ensure_future(sleep(seconds))
        try:
            await asyncio.wait((recovered, slept), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._pausing.discard(recovered)
            recovered.cancel()
            slept.cancel()
            with suppress(asyncio.CancelledError):
                await slept

    def _settle(self, turn: Turn) -> None:
        if self._tripped and not turn.while_tripped:
            if turn.outcome is Outcome.FAILED and turn.retry_after is not None:
                self._open_until = max(self._open_until, self._loop().time() + turn.retry_after)
            return
        if turn.outcome is Outcome.SUCCEEDED:
            self._failures = 0
            if self._tripped:
                if not self._probed:
                    self._probed = True
                    self._opens = 0
                    log.info("%s answers again: sending what waited, oldest first", self.name)
                    self._recoveries += 1
                    self._line_up_until = self._loop().time() + LINE_UP_SECONDS
                    for pausing in self._pausing:
                        if not pausing.done():
                            pausing.set_result(None)
                self._window = min(self.max_in_flight, self._window * 2)
                if self._window >= self.max_in_flight:
                    self._tripped = False
        elif turn.outcome is Outcome.FAILED:
            self._failures += 1
            if (
                turn.retry_after is not None
                or self._tripped
                or self._failures >= self.failures_to_open
            ):
                self._trip(turn.retry_after)

    def _trip(self, retry_after: float | None) -> None:
        self._opens += 1
        seconds = self.cool_down(self._opens, retry_after)
        until = self._loop().time() + seconds
        if not self._tripped or until > self._open_until:
            log.warning(
                "%s failing (%d in a row): holding its sends for %.1fs",
                self.name,
                self._failures,
                seconds,
            )
        self._open_until = max(self._open_until, until)
        self._tripped = True
        self._probed = False
        self._window = 1
        if self.on_open is not None:
            self.on_open(self.name)

    def _dispatch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        loop = self._loop()
        if self._tripped and loop.time() < self._open_until:
            self._timer = loop.call_at(self._open_until, self._dispatch)
            return
        if loop.time() < self._line_up_until:
            self._timer = loop.call_at(self._line_up_until, self._dispatch)
            return
        limit = self._window if self._tripped else self.max_in_flight
        while self._waiting and self._in_flight < limit:
            if self._tripped and not self._probed:
                # The probe: an alert that fails on its own would otherwise be it every time.
                waiter = min(self._waiting, key=lambda w: (w.attempts, w.age, w.seq))
                self._waiting.remove(waiter)
            else:
                waiter = self._waiting.pop(0)
            if waiter.admitted.done():  # cancelled while waiting
                continue
            self._in_flight += 1
            waiter.while_tripped = self._tripped
            waiter.admitted.set_result(None)

    @staticmethod
    def _loop() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()
