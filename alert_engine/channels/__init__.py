"""Destinations: where alerts are delivered. A destination is anything with a name and an async
`send`; the delivery layer does retries and idempotency once for all of them."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from alert_engine.alerts import Alert


class Destination(Protocol):
    name: str

    async def send(self, alert: Alert) -> None:
        """Deliver or raise; raising `PermanentDeliveryError` means retrying cannot help."""


@runtime_checkable
class Reconcilable(Protocol):
    """A destination that can tell whether it already holds an alert, for the case where a worker
    died after sending and before recording the delivery: asked only then, before a resend."""

    async def already_sent(self, alert: Alert) -> bool: ...


class DeliveryError(Exception):
    """A delivery that failed but may succeed later (network, rate limit, server error)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(Exception):
    """A delivery that will fail the same way every time (bad credentials, unknown channel)."""
