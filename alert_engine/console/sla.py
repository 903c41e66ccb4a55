"""Where a case stands against its route's SLA: the deadlines to claim and to resolve it (the
alert's `sla`, worked out in business time at delivery), met, missed, or how much is left.

The deadlines are instants: what is left is wall-clock time until them (an SLA of 4 working
hours set at 16:00 on Friday has its deadline on Monday, and shows the weekend as left).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from alert_engine.alerts import Alert
from alert_engine.cases import Case


class Standing(StrEnum):
    PENDING = "pending"  # not done yet, the deadline ahead
    BREACHED = "breached"  # not done, the deadline passed
    MET = "met"  # done by the deadline
    LATE = "late"  # done after the deadline


@dataclass(frozen=True)
class Deadline:
    what: str  # "Claim" or "Resolve"
    due: datetime
    done_at: datetime | None
    now: datetime

    @property
    def standing(self) -> Standing:
        if self.done_at is not None:
            return Standing.MET if self.done_at <= self.due else Standing.LATE
        return Standing.BREACHED if self.now > self.due else Standing.PENDING

    @property
    def missed(self) -> bool:
        return self.standing in (Standing.BREACHED, Standing.LATE)

    def text(self) -> str:
        """`Claim: 12 min left`, `Resolve: overdue by 1 h 05 min`, `Claim: met`."""
        standing = self.standing
        if standing is Standing.PENDING:
            return f"{self.what}: {span_text((self.due - self.now).total_seconds())} left"
        if standing is Standing.BREACHED:
            return f"{self.what}: overdue by {span_text((self.now - self.due).total_seconds())}"
        if standing is Standing.MET:
            return f"{self.what}: met"
        assert self.done_at is not None
        return f"{self.what}: late by {span_text((self.done_at - self.due).total_seconds())}"


@dataclass(frozen=True)
class SlaStatus:
    claim: Deadline | None
    resolve: Deadline | None

    @property
    def breached(self) -> bool:
        """A deadline missed: passed with the case not claimed (or resolved) by it."""
        return any(deadline.missed for deadline in self.deadlines)

    @property
    def deadlines(self) -> tuple[Deadline, ...]:
        return tuple(deadline for deadline in (self.claim, self.resolve) if deadline is not None)

    def summary(self) -> str:
        """The queue's column: the deadline that matters now (the claim until it is done, then
        the resolution), or '' for a route without an SLA."""
        pending = [d for d in self.deadlines if d.done_at is None]
        shown = pending[0] if pending else (self.deadlines[-1] if self.deadlines else None)
        return shown.text() if shown is not None else ""


def sla_status(case: Case, alert: Alert, now: datetime) -> SlaStatus:
    sla = alert.sla
    if sla is None:
        return SlaStatus(None, None)
    closed = case.closed_at if case.is_closed else None
    # A case closed without a claim (not actionable) has dealt with its claim deadline too.
    claimed = case.first_claimed_at or closed
    return SlaStatus(
        claim=Deadline("Claim", sla.claim_by, claimed, now) if sla.claim_by else None,
        resolve=Deadline("Resolve", sla.resolve_by, closed, now) if sla.resolve_by else None,
    )


def span_text(seconds: float) -> str:
    minutes = max(0, int(seconds // 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    return f"{hours // 24} d {hours % 24} h"
