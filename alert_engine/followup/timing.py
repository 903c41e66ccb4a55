"""When a follow-up survey goes out: pure functions of the resolve time and the policy.

A survey is due at resolve time plus the policy's delay; if that falls in the customer's quiet
hours (their local wall-clock time), it moves to the end of the quiet hours. Across midnight and
daylight-saving changes the customer's zone decides: a quiet-hours end that does not exist on a
spring-forward day (02:30 in Europe/Berlin) is the first instant after the gap.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time

    def contains(self, local: time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        # Across midnight, e.g. 21:00-08:00.
        return local >= self.start or local < self.end


def customer_zone(name: object, default: str) -> tzinfo:
    """The customer's IANA zone; a missing or unknown one is the configured default."""
    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo(default)


def next_allowed(at: datetime, quiet: QuietHours, zone: tzinfo) -> datetime:
    """`at` itself if it is outside the quiet hours in `zone`, else the end of those quiet hours.

    Returned in UTC.
    """
    local = at.astimezone(zone)
    if not quiet.contains(local.time().replace(tzinfo=None)):
        return at.astimezone(UTC)
    end_day = local.date()
    if quiet.start > quiet.end and local.time() >= quiet.start:
        end_day += timedelta(days=1)
    # fold=0: on a fall-back day the first of two equal wall-clock times; in a spring-forward gap
    # the offset before the gap, which lands just after it once normalised through UTC.
    end = datetime.combine(end_day, quiet.end, tzinfo=zone)
    return end.astimezone(UTC)


def send_time(resolved_at: datetime, delay: timedelta, quiet: QuietHours, zone: tzinfo) -> datetime:
    """When the survey for a case resolved at `resolved_at` goes out (UTC)."""
    return next_allowed(resolved_at + delay, quiet, zone)


def is_holdout(alert_id: str, share: float) -> bool:
    """Whether an alert is held out of recovery contact: the same answer on every worker, always.

    The alert id's hash, read as a number in [0, 1), is compared with the share.
    """
    if share <= 0.0:
        return False
    digest = hashlib.sha256(f"holdout\x00{alert_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < share
