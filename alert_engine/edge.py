"""The input agents' bounds beyond the schema: how deep an event nests, and when it says it
happened, judged against the broker's timestamp of the record that carried it.

`decode_event` knows only the bytes; these bounds need the record and the operator's settings
(`EventSettings`). An event outside them is dead-lettered as `invalid` before it is evaluated:
one event dated in year 9999 made the window maths build billions of ranges, or moved the
windowed rules' watermark so far ahead that every later event counted as late.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from alert_engine.events import EventRejected, EventTime, field_too_deep
from alert_engine.settings import EventSettings
from alert_engine.stats import Stats

_EVENT_TIME: TypeAdapter[datetime] = TypeAdapter(EventTime)


class Edge:
    """Checks a consumed record's event against the bounds; counts what it refuses."""

    def __init__(self, settings: EventSettings, stats: Stats) -> None:
        self.max_depth = settings.max_depth
        self.max_future_skew = settings.max_future_skew
        self.earliest = settings.earliest_time
        self._earliest_seconds = settings.earliest_time.timestamp()
        self.stats = stats

    def check(self, stream: str, raw: bytes | None, record_time: float | None) -> None:
        """Raises `EventRejected` for an event `raw` out of bounds, `record_time` being its
        record's timestamp in epoch seconds (None or 0: unknown, the time is not compared).
        Whatever else is wrong with it (not JSON, no valid time) is left to `decode_event`,
        which says so in its own words."""
        try:
            problem = self._problem(raw, record_time)
        except orjson.JSONDecodeError:
            return
        if problem is not None:
            self.stats.events_in[stream] += 1
            self.stats.events_rejected["invalid"] += 1
            raise EventRejected("invalid", problem)

    def _problem(self, raw: bytes | None, record_time: float | None) -> str | None:
        data: Any = orjson.loads(raw or b"")
        if not isinstance(data, dict):
            return None
        too_deep = field_too_deep(raw or b"", data, self.max_depth)
        if too_deep is not None:
            return f"{too_deep}: nested deeper than {self.max_depth} levels, the limit"
        value = data.get("time")
        seconds = event_seconds(value)
        if seconds is None:
            return None
        if record_time and seconds - record_time > self.max_future_skew:
            return (
                f"time {_shown(value)} is {_span(seconds - record_time)} ahead of the broker's "
                f"timestamp {_iso(datetime.fromtimestamp(record_time, UTC))} "
                f"(the limit is {_span(self.max_future_skew)})"
            )
        if seconds < self._earliest_seconds:
            return f"time {_shown(value)} is before {_iso(self.earliest)}, the earliest accepted"
        return None


def event_seconds(value: Any) -> float | None:
    """The event time `value` (the event's `time` field) in epoch seconds, as `decode_event`
    reads it; None if it reads no time there. Seconds, not datetimes: a time such as
    `9999-12-31T23:59:59-14:00` is past what a UTC datetime can hold."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            # To the microsecond, as the schema's datetime holds it.
            return datetime.fromtimestamp(value, UTC).timestamp()
        except (OverflowError, OSError, ValueError):
            return None  # refused by the schema
    if not isinstance(value, str):
        return None
    try:
        # Some twenty times faster than Pydantic's validator, and the same time for every text
        # both read (a property test says so); the validator decides the others.
        time = datetime.fromisoformat(value)
    except ValueError:
        try:
            time = _EVENT_TIME.validate_python(value)
        except ValidationError:
            return None
    return None if time.tzinfo is None else time.timestamp()


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return value[:64]
    return repr(value)


def _iso(time: datetime) -> str:
    text = time.isoformat(timespec="seconds" if not time.microsecond else "auto")
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


# A Gregorian year on average.
_UNITS = (("year", 365.2425 * 86400), ("day", 86400.0), ("hour", 3600.0), ("minute", 60.0))


def _span(seconds: float) -> str:
    """`7973 years`, `10 minutes`, `90 seconds`: whole units, two of them at least."""
    for unit, size in _UNITS:
        if seconds >= 2 * size:
            return f"{int(seconds // size)} {unit}s"
    whole = int(seconds)
    return f"{whole} second" if whole == 1 else f"{whole} seconds"
