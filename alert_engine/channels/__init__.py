"""Destinations: where alerts are delivered. A destination is anything with a name and an async
`send`; the delivery layer does retries and idempotency once for all of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from alert_engine.alerts import Alert
from alert_engine.problems import AlertEngineError


class Destination(Protocol):
    name: str

    async def send(self, alert: Alert) -> None:
        """Deliver or raise; raising `PermanentDeliveryError` means retrying cannot help."""


@dataclass(frozen=True)
class Digest:
    """Several alerts of one group (same route, same `group_by` values), sent as one message."""

    id: str
    group_id: str
    route: str
    group: dict[str, str]
    destinations: tuple[str, ...]
    alerts: tuple[Alert, ...]


@runtime_checkable
class DigestDestination(Protocol):
    """A destination that can show a group of alerts as one message."""

    name: str

    async def send_digest(self, digest: Digest) -> None: ...


@runtime_checkable
class Reconcilable(Protocol):
    """A destination that can tell whether it already holds an alert, for the case where a worker
    died after sending and before recording the delivery: asked only then, before a resend."""

    async def already_sent(self, alert: Alert) -> bool: ...


@runtime_checkable
class ReconcilableDigest(Protocol):
    """As `Reconcilable`, for digests."""

    async def digest_sent(self, digest: Digest) -> bool: ...


class DeliveryError(AlertEngineError):
    """A delivery that failed but may succeed later (network, rate limit, server error)."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, not_sent: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        # The destination certainly did not take it (a rate limit refuses before acting): no
        # need to look for it before sending again.
        self.not_sent = not_sent


class PermanentDeliveryError(AlertEngineError):
    """A delivery that will fail the same way every time (bad credentials, unknown channel)."""
