"""Delivering alerts: idempotency records and retries, done once here for every destination.

Alerts are durable in Kafka before this runs, and the delivering agent commits an alert's offset
only after `deliver` returns, so every alert is delivered at least once. A record per alert and
destination in Redis turns that into once: a re-consumed alert (after a crash or a rebalance) that
is already recorded is skipped.

Retries are this module's alone (slack_sdk's own are off for posts): each alert keeps its own
attempts and jittered backoff, and each destination's sends pass its gate (`gates`), a circuit
breaker that holds them while the destination keeps failing and lets them out oldest first when
it answers again. An alert that keeps failing waits on its own; the others go.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypeVar

from redis.asyncio import Redis

from alert_engine.alerts import Alert, Sla
from alert_engine.calendars.intervals import CalendarError
from alert_engine.cases import CaseStore
from alert_engine.channels import (
    DeliveryError,
    Destination,
    Digest,
    DigestDestination,
    PermanentDeliveryError,
    Reconcilable,
    ReconcilableDigest,
)
from alert_engine.delivery.digests import Groups
from alert_engine.delivery.escalation import Escalations, is_escalated
from alert_engine.delivery.gates import DestinationGate, HeldTooLong
from alert_engine.delivery.inhibition import Inhibitor
from alert_engine.delivery.silences import SilenceStore
from alert_engine.routing import Routing
from alert_engine.settings import DeliverySettings
from alert_engine.stats import Stats
from alert_engine.storage import redis_keys
from alert_engine.storage.due_queue import claim
from alert_engine.storage.outage import until_redis_answers

log = logging.getLogger(__name__)

# Long enough to outlive any redelivery of the alert from Kafka (topic retention is 7 days).
LEDGER_TTL_SECONDS = 30 * 24 * 3600

_T = TypeVar("_T")


@dataclass(frozen=True)
class RetryPolicy:
    """The one retry layer: see `DeliverySettings` for what each value means."""

    attempts: int = 8
    first_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.2
    give_up_after: float = 600.0
    failures_to_open: int = 5
    max_cool_down: float = 5.0
    uniform: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    @staticmethod
    def of(settings: DeliverySettings) -> RetryPolicy:
        return RetryPolicy(
            attempts=settings.attempts,
            first_delay=settings.first_delay,
            max_delay=settings.max_delay,
            jitter=settings.jitter,
            give_up_after=settings.give_up_after,
            failures_to_open=settings.failures_to_open,
            max_cool_down=settings.max_cool_down,
        )

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based): the backoff spread
        by the jitter, never shorter than the destination's Retry-After."""
        backoff = min(self.max_delay, self.first_delay * 2.0 ** min(attempt - 1, 30))
        spread = backoff * self.jitter * (2.0 * self.uniform() - 1.0)
        return max(min(self.max_delay, backoff + spread), retry_after or 0.0)

    def cool_down(self, opens: int, retry_after: float | None = None) -> float:
        """How long a destination's circuit stays open after opening `opens` times in a row."""
        return max(min(self.max_cool_down, self.delay(opens)), retry_after or 0.0)


# KEYS[1] the delivered record, KEYS[2] the attempt record; ARGV[1] now, ARGV[2] the TTL.
# Returns {1} if delivered already, else {0, the previous attempt or false}.
_BEGIN = """
if redis.call('EXISTS', KEYS[1]) == 1 then
    return {1}
end
local previous = redis.call('GET', KEYS[2])
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
return {0, previous}
"""


class DeliveryLedger:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._begin = redis.register_script(_BEGIN)

    async def begin(self, alert_id: str, destination: str) -> tuple[bool, bool]:
        """Whether the alert was delivered to `destination` already; if not, notes that a send
        is starting (`mark_attempt`) and whether one was started before (and not recorded).
        One call instead of two: it is on every delivery's path."""
        answer = await self._begin(
            keys=[
                redis_keys.delivered(self.prefix, alert_id, destination),
                redis_keys.attempted(self.prefix, alert_id, destination),
            ],
            args=[datetime.now(UTC).isoformat(), LEDGER_TTL_SECONDS],
            client=self.redis,
        )
        if answer[0] == 1:
            return True, False
        return False, answer[1] is not None

    async def is_delivered(self, alert_id: str, destination: str) -> bool:
        return bool(
            await self.redis.exists(redis_keys.delivered(self.prefix, alert_id, destination))
        )

    async def mark_attempt(self, alert_id: str, destination: str) -> bool:
        """Note that a send is starting; True if one was started before (and not recorded)."""
        previous = await self.redis.set(
            redis_keys.attempted(self.prefix, alert_id, destination),
            datetime.now(UTC).isoformat(),
            ex=LEDGER_TTL_SECONDS,
            get=True,
        )
        return previous is not None

    async def claim_throttle(self, alert: Alert) -> bool:
        """True if `alert` may be delivered: it is the first of its rule and throttle key in the
        period (the claim is atomic across workers), or it is that first alert again."""
        if alert.throttle is None:
            return True
        key = redis_keys.throttle(self.prefix, alert.rule, alert.throttle.key)
        return await claim(self.redis, key, alert.id, ttl_ms=int(alert.throttle.seconds * 1000))

    async def record(self, alert_id: str, destination: str) -> None:
        await self.redis.set(
            redis_keys.delivered(self.prefix, alert_id, destination),
            datetime.now(UTC).isoformat(),
            ex=LEDGER_TTL_SECONDS,
        )


@dataclass(frozen=True)
class Failure:
    """A delivery given up on: the caller dead-letters it, to be replayed later."""

    destination: str
    reason: str


class Deliverer:
    def __init__(
        self,
        destinations: Mapping[str, Destination],
        ledger: DeliveryLedger,
        *,
        stats: Stats | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        routing: Routing | None = None,
        escalations: Escalations | None = None,
        escalate_after: Callable[[Alert], timedelta | None] | None = None,
        silences: SilenceStore | None = None,
        inhibitor: Inhibitor | None = None,
        groups: Groups | None = None,
        cases: CaseStore | None = None,
        max_in_flight: int = 32,
    ) -> None:
        self.destinations = destinations
        # Without a routing tree, a rule's `route:` names its one destination.
        self.routing = routing
        self.escalations = escalations
        self.escalate_after = escalate_after
        self.silences = silences
        self.inhibitor = inhibitor
        self.groups = groups
        self.cases = cases
        self.ledger = ledger
        self.stats = stats or Stats()
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.max_in_flight = max_in_flight
        self._gates: dict[str, DestinationGate] = {}

    def gate(self, name: str) -> DestinationGate:
        """The destination's gate (see `gates`), one per destination for the worker's life."""
        gate = self._gates.get(name)
        if gate is None:
            gate = DestinationGate(
                name,
                max_in_flight=self.max_in_flight,
                failures_to_open=self.retry.failures_to_open,
                cool_down=self.retry.cool_down,
                on_open=self._count_open,
            )
            self._gates[name] = gate
        return gate

    def _count_open(self, name: str) -> None:
        self.stats.destination_held[name] += 1

    def destination_names(self, alert: Alert) -> list[str]:
        if self.routing is None:
            return [alert.route]
        return self.routing.destinations_for(alert)

    async def _route(self, alert: Alert) -> tuple[list[str], bool]:
        """The destinations to deliver to now, and whether the alert joined a group (to go out
        in a digest later)."""
        if self.routing is None:
            return [alert.route], False
        names: dict[str, None] = {}
        grouped = False
        for match in self.routing.match(alert):
            if match.grouping is not None and self.groups is not None:
                await self.groups.add(alert, match, datetime.now(UTC))
                grouped = True
            else:
                names.update(dict.fromkeys(match.destinations))
        return list(names), grouped

    async def deliver(self, alert: Alert, only: str | None = None) -> list[Failure]:
        """Deliver to every destination the alert routes to (or just `only`, for a replay);
        returns those that failed for good."""
        # Every Redis step waits out an outage: an error escaping here would crash the agent
        # with the alert unacknowledged behind it.
        if only is None and await self._redis_answer(lambda: self._muted(alert), alert.id):
            return []
        if not await self._redis_answer(lambda: self.ledger.claim_throttle(alert), alert.id):
            self.stats.alerts_throttled[alert.rule] += 1
            log.info("throttled %s: %s already alerted for %s", alert.id, alert.rule, alert.key)
            return []
        alert = self._with_sla(alert)
        names, grouped = (
            ([only], False)
            if only is not None
            else await self._redis_answer(lambda: self._route(alert), alert.id)
        )
        if self.cases is not None and not is_escalated(alert):
            cases = self.cases
            await self._redis_answer(lambda: cases.remember(alert), alert.id)
        await self._redis_answer(lambda: self._schedule_escalation(alert), alert.id)
        if not names and not grouped:
            return [self._failed(alert, alert.route, "the route has no destinations")]
        # All destinations at once: one that keeps failing does not delay the others.
        outcomes = await asyncio.gather(*(self._deliver_named(alert, name) for name in names))
        return [failure for failure in outcomes if failure is not None]

    async def _deliver_named(self, alert: Alert, name: str) -> Failure | None:
        destination = self.destinations.get(name)
        if destination is None:
            return self._failed(alert, name, f"no destination named {name!r}")
        return await self._deliver_to(alert, destination)

    async def _muted(self, alert: Alert) -> bool:
        if self.silences is not None:
            silence = await self.silences.silencing(alert)
            if silence is not None:
                self.stats.alerts_silenced[silence.id] += 1
                log.info("%s silenced by %s", alert.id, silence.id)
                return True
        if self.inhibitor is not None:
            rule = await self.inhibitor.inhibiting_rule(alert)
            if rule is not None:
                self.stats.alerts_inhibited[f"inhibit_rules[{rule}]"] += 1
                log.info("%s inhibited by inhibit_rules[%d]", alert.id, rule)
                return True
        return False

    def _with_sla(self, alert: Alert) -> Alert:
        """The alert with its route's claim and resolve deadlines, in the route's working time."""
        if self.routing is None or alert.sla is not None:
            return alert
        calendar, sla = self.routing.working_time(alert)
        if sla is None or (sla.claim is None and sla.resolve is None):
            return alert

        def deadline(within: timedelta | None) -> datetime | None:
            if within is None:
                return None
            if calendar is None:
                return alert.fired_at + within
            try:
                return calendar.add(alert.fired_at, within)
            except CalendarError:
                return alert.fired_at + within

        due = Sla(claim_by=deadline(sla.claim), resolve_by=deadline(sla.resolve))
        return alert.model_copy(update={"sla": due})

    async def _schedule_escalation(self, alert: Alert) -> None:
        if self.escalations is None or self.escalate_after is None or is_escalated(alert):
            return
        after = self.escalate_after(alert)
        if after is None:
            return
        calendar = self.routing.working_time(alert)[0] if self.routing is not None else None
        if calendar is None:
            due = alert.fired_at + after
        else:
            try:
                due = calendar.add(alert.fired_at, after)
            except CalendarError as exc:
                # Working hours that never open again: escalate as if around the clock, and say so.
                log.warning("%s: %s; escalating %s after %s", alert.id, exc, alert.id, after)
                due = alert.fired_at + after
        await self.escalations.schedule(alert, due)

    async def _deliver_to(self, alert: Alert, destination: Destination) -> Failure | None:
        # An escalation of an alert is a delivery of its own, even to the same destination.
        record_as = f"{destination.name}:escalated" if is_escalated(alert) else destination.name
        check = destination.already_sent if isinstance(destination, Reconcilable) else None
        return await self._attempt(
            alert.id, record_as, destination.name, lambda: destination.send(alert), check, alert
        )

    async def deliver_digest(self, digest: Digest) -> list[Failure]:
        """Deliver one message for a group of alerts to each destination of their route; a
        destination that cannot show digests gets the alerts one by one."""
        failures = []
        for name in digest.destinations:
            destination = self.destinations.get(name)
            failure: Failure | None
            if destination is None:
                failure = Failure(name, f"no destination named {name!r}")
            elif isinstance(destination, DigestDestination):
                failure = await self._attempt(
                    digest.id,
                    name,
                    name,
                    partial(destination.send_digest, digest),
                    _digest_check(destination, digest),
                    digest.alerts[0],
                )
            else:
                failure = None
                for alert in digest.alerts:
                    failure = await self._deliver_to(alert, destination) or failure
            if failure is not None:
                failures.append(failure)
        return failures

    async def _attempt(
        self,
        item_id: str,
        record_as: str,
        name: str,
        send: Callable[[], Awaitable[None]],
        already_sent: Callable[[Alert], Awaitable[bool]] | None,
        alert: Alert,
    ) -> Failure | None:
        # `maybe_sent` when an earlier send may have gone through unrecorded (its worker died,
        # or it timed out): a destination that can look is asked before sending again.
        delivered, maybe_sent = await self._redis_answer(
            lambda: self.ledger.begin(item_id, record_as), item_id
        )
        if delivered:
            self.stats.alerts_duplicate[name] += 1
            return None
        gate = self.gate(name)
        age = alert.fired_at.timestamp()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry.give_up_after
        error: Exception | None = None
        for attempt in range(1, self.retry.attempts + 1):
            try:
                async with gate.turn(age, attempt - 1, deadline) as turn:
                    last_turn = turn
                    error, found = await self._send_once(
                        send, already_sent, alert, name, maybe_sent
                    )
                    if error is None:
                        turn.succeeded()
                    elif not isinstance(error, PermanentDeliveryError):
                        turn.failed(error.retry_after if isinstance(error, DeliveryError) else None)
            except HeldTooLong:
                return self._failed(
                    item_id,
                    name,
                    f"not delivered within {self.retry.give_up_after:g} s, {name} kept failing"
                    + (f": {error}" if error is not None else ""),
                )
            if error is None:
                await self._redis_answer(lambda: self.ledger.record(item_id, record_as), item_id)
                if found:
                    self.stats.alerts_duplicate[name] += 1
                else:
                    self.stats.observe_delivery(name, alert.latency_seconds(datetime.now(UTC)))
                return None
            if isinstance(error, PermanentDeliveryError):
                return self._failed(item_id, name, f"permanent: {error}")
            # A send that may have reached the destination is looked for before the next one;
            # one the destination refused unread (a rate limit) is not.
            maybe_sent = not (isinstance(error, DeliveryError) and error.not_sent)
            if attempt == self.retry.attempts:
                return self._failed(item_id, name, f"after {attempt} attempts: {error}")
            retry_after = error.retry_after if isinstance(error, DeliveryError) else None
            delay = self.retry.delay(attempt, retry_after)
            log.warning(
                "delivery of %s to %s failed (attempt %d), retrying in %.1fs: %s",
                item_id,
                name,
                attempt,
                delay,
                error,
            )
            await gate.pause(last_turn, max(0.0, min(delay, deadline - loop.time())), self.sleep)
        raise AssertionError("unreachable: the last attempt returns")

    async def _send_once(
        self,
        send: Callable[[], Awaitable[None]],
        already_sent: Callable[[Alert], Awaitable[bool]] | None,
        alert: Alert,
        name: str,
        maybe_sent: bool,
    ) -> tuple[Exception | None, bool]:
        """One attempt: the error it met (None: delivered), and whether the destination was
        found to hold it already."""
        if maybe_sent and await self._found(already_sent, alert, name):
            return None, True
        try:
            await send()
        except (PermanentDeliveryError, DeliveryError, OSError, TimeoutError) as exc:
            return exc, False
        return None, False

    async def _found(
        self,
        already_sent: Callable[[Alert], Awaitable[bool]] | None,
        alert: Alert,
        name: str,
    ) -> bool:
        """Whether the destination already holds what an earlier send may have delivered. A
        look-up that fails (a missing `channels:history` scope, the method refused, the API
        down) is never why a delivery fails: the alert is sent, at worst once more."""
        if already_sent is None:
            return False
        try:
            return await already_sent(alert)
        except (DeliveryError, PermanentDeliveryError, OSError, TimeoutError) as exc:
            self.stats.lookups_failed[name] += 1
            log.warning(
                "could not look for an earlier send of %s in %s, sending it: %s",
                alert.id,
                name,
                exc,
            )
            return False

    async def _redis_answer(self, call: Callable[[], Awaitable[_T]], item_id: str) -> _T:
        """Redis's answer to `call` (the ledger, silences, cases...), waiting out an outage as long
        as it takes (see `redis_outage`, which also counts it for `/metrics` and `/ready`)."""
        return await until_redis_answers(call, what=f"the delivery of {item_id}", sleep=self.sleep)

    def _failed(self, item: Alert | str, destination: str, reason: str) -> Failure:
        self.stats.alerts_failed[destination] += 1
        item_id = item.id if isinstance(item, Alert) else item
        log.error("giving up delivery of %s to %s: %s", item_id, destination, reason)
        return Failure(destination, reason)


def _digest_check(
    destination: Destination, digest: Digest
) -> Callable[[Alert], Awaitable[bool]] | None:
    if not isinstance(destination, ReconcilableDigest):
        return None

    async def check(_: Alert) -> bool:
        return await destination.digest_sent(digest)

    return check
