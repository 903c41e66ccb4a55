"""Time intervals as Alertmanager writes them (`time_intervals` in its configuration):

    - name: office-hours
      time_intervals:
        - weekdays: ['monday:friday']
          times: [{start_time: '09:00', end_time: '18:00'}]
          location: Europe/London
    - name: holidays
      time_intervals:
        - months: ['december']
          days_of_month: ['25:26']

A time is in an interval when every field given matches it, in the interval's `location` (UTC
by default); a field left out matches every time. Ranges are inclusive (`monday:friday`,
`1:5`); `end_time` is not (`18:00` ends at 17:59:59.999...), and may be `24:00`. A negative day
of the month counts from the month's end (`-1` is its last day). A named interval holds when any
of its entries does.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from alert_engine.problems import AlertEngineError

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)


class CalendarError(AlertEngineError, ValueError):
    """A time interval that cannot be read."""


@dataclass(frozen=True)
class Span:
    """An inclusive range of ordinal values (weekday 0-6, day of month, month 1-12, year)."""

    first: int
    last: int

    def __contains__(self, value: int) -> bool:
        return self.first <= value <= self.last


def _ordinal(text: str, names: Sequence[str], what: str, low: int, high: int) -> int:
    word = text.strip().lower()
    if word in names:
        return names.index(word) + low
    try:
        value = int(word)
    except ValueError:
        raise ValueError(f"{text!r} is not a {what}") from None
    if not low <= value <= high:
        raise ValueError(f"{what} {value} is not between {low} and {high}")
    return value


def _spans(values: Any, names: Sequence[str], what: str, low: int, high: int) -> tuple[Span, ...]:
    if values is None:
        return ()
    if not isinstance(values, list):
        raise ValueError(f"{what}s are a list, e.g. ['{names[0] if names else low}']")
    spans = []
    for value in values:
        first, _, last = str(value).partition(":")
        start = _ordinal(first, names, what, low, high)
        end = _ordinal(last, names, what, low, high) if last else start
        if end < start:
            raise ValueError(f"{value!r}: a range ends after it starts")
        spans.append(Span(start, end))
    return tuple(spans)


def _days_of_month(values: Any) -> tuple[Span, ...]:
    if values is None:
        return ()
    if not isinstance(values, list):
        raise ValueError("days_of_month are a list, e.g. ['1:5', '-1']")
    spans = []
    for value in values:
        # "-3:-1": a leading minus belongs to the number, so split on the colon between.
        text = str(value).strip()
        head, sep, tail = text.partition(":")
        if head == "" and sep:  # ":5" is not a range
            raise ValueError(f"{value!r} is not a day of the month")
        try:
            first = int(head)
            last = int(tail) if sep else first
        except ValueError:
            raise ValueError(
                f"{value!r} is not a day of the month (1 to 31, or -31 to -1)"
            ) from None
        for day in (first, last):
            if day == 0 or not -31 <= day <= 31:
                raise ValueError(f"day of the month {day} is not 1 to 31 or -31 to -1")
        if (first > 0) == (last > 0) and last < first:
            raise ValueError(f"{value!r}: a range ends after it starts")
        spans.append(Span(first, last))
    return tuple(spans)


def _clock(text: str) -> int:
    """'09:30' -> minutes since midnight; '24:00' is the end of the day."""
    hours, sep, minutes = text.strip().partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2:
        raise ValueError(f"{text!r} is not a time of day HH:MM")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or value > 24 * 60:
        raise ValueError(f"{text!r} is not a time of day from 00:00 to 24:00")
    return value


class TimeRangeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    start_time: str
    end_time: str

    @property
    def minutes(self) -> tuple[int, int]:
        return _clock(self.start_time), _clock(self.end_time)

    @field_validator("start_time", "end_time")
    @classmethod
    def _is_clock(cls, value: str) -> str:
        _clock(value)
        return value


def _zone(value: Any) -> ZoneInfo:
    if isinstance(value, ZoneInfo):
        return value
    if value is None:
        return ZoneInfo("UTC")
    name = str(value)
    if name == "Local":
        raise ValueError(
            "location: name the zone (e.g. Europe/London); 'Local' depends on the host"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (an IANA name such as Europe/London)"
        ) from None


Zone = Annotated[ZoneInfo, BeforeValidator(_zone)]


class TimeIntervalSpec(BaseModel):
    """One entry of a named interval, as Alertmanager's `time_interval`."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    times: list[TimeRangeSpec] | None = None
    weekdays: list[str] | None = None
    days_of_month: list[str | int] | None = None
    months: list[str | int] | None = None
    years: list[str | int] | None = None
    location: Zone = Field(default_factory=lambda: ZoneInfo("UTC"))

    @field_validator("times")
    @classmethod
    def _ranges_run_forward(cls, times: list[TimeRangeSpec] | None) -> list[TimeRangeSpec] | None:
        for item in times or []:
            start, end = item.minutes
            if end <= start:
                raise ValueError(
                    f"end_time {item.end_time} is not after start_time {item.start_time} "
                    "(a range over midnight is two ranges: ... to 24:00 and 00:00 to ...)"
                )
        return times

    @model_validator(mode="after")
    def _fields_read(self) -> TimeIntervalSpec:
        self.compiled()  # weekday, month, day names and ranges: refused here, with a location
        return self

    def compiled(self) -> TimeInterval:
        return TimeInterval(
            times=tuple(item.minutes for item in self.times or ()),
            weekdays=_spans(self.weekdays, WEEKDAYS, "weekday", 0, 6),
            days_of_month=_days_of_month(self.days_of_month),
            months=_spans(self.months, MONTHS, "month", 1, 12),
            years=_spans(self.years, (), "year", 1, 9999),
            location=self.location,
        )


class NamedIntervalSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=100)]
    time_intervals: list[TimeIntervalSpec] = Field(min_length=1)


@dataclass(frozen=True)
class TimeInterval:
    times: tuple[tuple[int, int], ...]
    weekdays: tuple[Span, ...]
    days_of_month: tuple[Span, ...]
    months: tuple[Span, ...]
    years: tuple[Span, ...]
    location: ZoneInfo

    def holds_on(self, day: date) -> bool:
        """Whether the interval's date fields (all but `times`) match this local date."""
        if self.weekdays and not any(day.weekday() in span for span in self.weekdays):
            return False
        if self.months and not any(day.month in span for span in self.months):
            return False
        if self.years and not any(day.year in span for span in self.years):
            return False
        if self.days_of_month:
            length = calendar.monthrange(day.year, day.month)[1]
            if not any(_day_in(day.day, span, length) for span in self.days_of_month):
                return False
        return True

    def segments(self, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The instants of [start, end) in the interval, as aware UTC-comparable pairs, in
        order. Local times are converted with the zone's rules for each date: a range across a
        daylight-saving change is that much shorter or longer. Pairs are in UTC: Python
        subtracts and compares two datetimes of one zone by their wall clocks."""
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        day = start.astimezone(self.location).date() - timedelta(days=1)
        last = end.astimezone(self.location).date()
        while day <= last:
            if self.holds_on(day):
                for begin_minute, end_minute in self.times or ((0, 24 * 60),):
                    begin = _local(day, begin_minute, self.location)
                    finish = _local(day, end_minute, self.location)
                    a, b = max(begin, start), min(finish, end)
                    if a < b:
                        yield a, b
            day += timedelta(days=1)

    def __contains__(self, moment: datetime) -> bool:
        local = moment.astimezone(self.location)
        if not self.holds_on(local.date()):
            return False
        if not self.times:
            return True
        minute = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
        return any(begin <= minute < finish for begin, finish in self.times)


def _day_in(day: int, span: Span, length: int) -> bool:
    first = span.first if span.first > 0 else length + 1 + span.first
    last = span.last if span.last > 0 else length + 1 + span.last
    return first <= day <= min(last, length)


def _local(day: date, minute: int, zone: ZoneInfo) -> datetime:
    """The instant of `minute` past local midnight of `day` (24:00: the next midnight). A local
    time the clocks skip is read with the offset before the change, as zoneinfo does."""
    if minute >= 24 * 60:
        return datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC)
    return datetime.combine(day, time(minute // 60, minute % 60), zone).astimezone(UTC)


def compile_intervals(specs: Sequence[NamedIntervalSpec]) -> dict[str, tuple[TimeInterval, ...]]:
    named: dict[str, tuple[TimeInterval, ...]] = {}
    for spec in specs:
        if spec.name in named:
            raise CalendarError(f"time interval {spec.name!r} is defined twice")
        try:
            named[spec.name] = tuple(entry.compiled() for entry in spec.time_intervals)
        except ValueError as exc:
            raise CalendarError(f"time interval {spec.name!r}: {exc}") from None
    return named
