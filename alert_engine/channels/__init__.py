"""Destinations: where alerts are delivered. A destination is anything with a name and an async
`send`; the delivery layer does retries and idempotency once for all of them."""

from __future__ import annotations

from typing import Protocol

from alert_engine.alerts import Alert


class Destination(Protocol):
    name: str

    async def send(self, alert: Alert) -> None:
        """Deliver or raise; raising `PermanentDeliveryError` means retrying cannot help."""


class DeliveryError(Exception):
    """A delivery that failed but may succeed later (network, rate limit, server error)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(Exception):
    """A delivery that will fail the same way every time (bad credentials, unknown channel)."""
