"""Working time: a calendar of open hours (one or more named intervals) minus closed ones
(holidays), and durations measured in it.

`elapsed(start, end)` is how much of [start, end) was working time (time to claim, to resolve);
`add(start, duration)` is the instant (in UTC) `duration` of working time after `start` (when an
escalation falls due: an alert at 18:55 on a Friday, 30 minutes, office hours 09:00-18:00, is
due at 09:30 on Monday). Both work on instants, so daylight-saving changes count as the clock on
the wall shows them: a working day of 00:00-24:00 on the day clocks go forward is 23 hours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from alert_engine.calendars.intervals import CalendarError, TimeInterval
from alert_engine.spans import merged

# How far ahead `add` looks for working time before it calls the calendar closed for good.
HORIZON = timedelta(days=400)
# Working time is looked for a week at a time.
_CHUNK = timedelta(days=7)


def _minus(
    opened: list[tuple[datetime, datetime]], closed: list[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime]]:
    result = []
    for a, b in opened:
        cursor = a
        for c, d in closed:
            if d <= cursor or c >= b:
                continue
            if c > cursor:
                result.append((cursor, c))
            cursor = max(cursor, d)
        if cursor < b:
            result.append((cursor, b))
    return result


@dataclass(frozen=True)
class BusinessCalendar:
    """Open when some `open` interval holds and no `closed` one does."""

    open: tuple[TimeInterval, ...]
    closed: tuple[TimeInterval, ...] = ()
    name: str = "business hours"

    @staticmethod
    def of(
        named: Mapping[str, Sequence[TimeInterval]],
        open_names: Sequence[str],
        closed_names: Sequence[str] = (),
    ) -> BusinessCalendar:
        unknown = [name for name in (*open_names, *closed_names) if name not in named]
        if unknown:
            known = ", ".join(sorted(named)) or "none"
            raise CalendarError(f"unknown time interval(s) {', '.join(unknown)} (defined: {known})")
        if not open_names:
            raise CalendarError("business hours name at least one time interval")
        return BusinessCalendar(
            open=tuple(interval for name in open_names for interval in named[name]),
            closed=tuple(interval for name in closed_names for interval in named[name]),
            name=" + ".join(open_names) + "".join(f" - {name}" for name in closed_names),
        )

    def segments(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """The working time in [start, end), as ordered, disjoint [a, b) pairs."""
        opened = merged(pair for item in self.open for pair in item.segments(start, end))
        closed = merged(pair for item in self.closed for pair in item.segments(start, end))
        return _minus(opened, closed)

    def is_open(self, moment: datetime) -> bool:
        return any(moment in item for item in self.open) and not any(
            moment in item for item in self.closed
        )

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        if end <= start:
            return timedelta(0)
        return sum((b - a for a, b in self.segments(start, end)), timedelta(0))

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant at which `duration` of working time after `start` has passed. Zero
        stays at `start`. `CalendarError` if the calendar has no working time left within
        `HORIZON` (every day a holiday)."""
        remaining = duration
        if remaining <= timedelta(0):
            return start
        start = start.astimezone(UTC)
        cursor = start
        while cursor - start < HORIZON:
            chunk_end = cursor + _CHUNK
            for a, b in self.segments(cursor, chunk_end):
                if b - a >= remaining:
                    return a + remaining
                remaining -= b - a
            cursor = chunk_end
        raise CalendarError(
            f"{self.name} has no working time within {HORIZON.days} days of {start.isoformat()}"
        )
