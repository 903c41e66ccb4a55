"""Delivering alerts: idempotency records and retries, done once here for every destination.

Alerts are durable in Kafka before this runs, and the delivering agent commits an alert's offset
only after `deliver` returns, so every alert is delivered at least once. A record per alert and
destination in Redis turns that into once: a re-consumed alert (after a crash or a rebalance) that
is already recorded is skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis

from alert_engine import redis_keys
from alert_engine.alerts import Alert
from alert_engine.channels import DeliveryError, Destination, PermanentDeliveryError
from alert_engine.stats import Stats

log = logging.getLogger(__name__)

# Long enough to outlive any redelivery of the alert from Kafka (topic retention is 7 days).
LEDGER_TTL_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8
    first_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        backoff = min(self.max_delay, self.first_delay * 2.0 ** (attempt - 1))
        return max(backoff, retry_after or 0.0)


class DeliveryLedger:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    async def is_delivered(self, alert_id: str, destination: str) -> bool:
        return bool(
            await self.redis.exists(redis_keys.delivered(self.prefix, alert_id, destination))
        )

    async def claim_throttle(self, alert: Alert) -> bool:
        """True if `alert` may be delivered: it is the first of its rule and throttle key in the
        period (the claim is atomic across workers), or it is that first alert again."""
        if alert.throttle is None:
            return True
        key = redis_keys.throttle(self.prefix, alert.rule, alert.throttle.key)
        claimed = await self.redis.set(
            key, alert.id, nx=True, px=max(1, int(alert.throttle.seconds * 1000))
        )
        if claimed:
            return True
        holder = await self.redis.get(key)
        if holder is None:
            # Expired between the two calls: the period is over, so this alert may claim it.
            return await self.claim_throttle(alert)
        held_by = holder.decode() if isinstance(holder, bytes) else str(holder)
        return held_by == alert.id

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
    ) -> None:
        self.destinations = destinations
        self.ledger = ledger
        self.stats = stats or Stats()
        self.retry = retry or RetryPolicy()
        self.sleep = sleep

    def destinations_for(self, alert: Alert) -> list[Destination]:
        destination = self.destinations.get(alert.route)
        return [destination] if destination is not None else []

    async def deliver(self, alert: Alert) -> list[Failure]:
        """Deliver to every destination of the alert's route; returns those that failed for good."""
        if not await self.ledger.claim_throttle(alert):
            self.stats.alerts_throttled[alert.rule] += 1
            log.info("throttled %s: %s already alerted for %s", alert.id, alert.rule, alert.key)
            return []
        targets = self.destinations_for(alert)
        if not targets:
            return [self._failed(alert, alert.route, f"no destination named {alert.route!r}")]
        failures = []
        for destination in targets:
            failure = await self._deliver_to(alert, destination)
            if failure is not None:
                failures.append(failure)
        return failures

    async def _deliver_to(self, alert: Alert, destination: Destination) -> Failure | None:
        if await self.ledger.is_delivered(alert.id, destination.name):
            self.stats.alerts_duplicate[destination.name] += 1
            return None
        for attempt in range(1, self.retry.attempts + 1):
            try:
                await destination.send(alert)
            except PermanentDeliveryError as exc:
                return self._failed(alert, destination.name, f"permanent: {exc}")
            except (DeliveryError, OSError, TimeoutError) as exc:
                retry_after = exc.retry_after if isinstance(exc, DeliveryError) else None
                if attempt == self.retry.attempts:
                    return self._failed(alert, destination.name, f"after {attempt} attempts: {exc}")
                delay = self.retry.delay(attempt, retry_after)
                log.warning(
                    "delivery of %s to %s failed (attempt %d), retrying in %.1fs: %s",
                    alert.id,
                    destination.name,
                    attempt,
                    delay,
                    exc,
                )
                await self.sleep(delay)
            else:
                await self.ledger.record(alert.id, destination.name)
                self.stats.alerts_delivered[destination.name] += 1
                return None
        raise AssertionError("unreachable: the last attempt returns")

    def _failed(self, alert: Alert, destination: str, reason: str) -> Failure:
        self.stats.alerts_failed[destination] += 1
        log.error("giving up delivery of %s to %s: %s", alert.id, destination, reason)
        return Failure(destination, reason)
