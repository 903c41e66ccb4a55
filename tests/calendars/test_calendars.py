"""Working hours, holidays and durations in them: the time maths escalations and SLAs rely on,
across weekends, holidays and daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alert_engine.calendars.business_time import BusinessCalendar
from alert_engine.calendars.intervals import CalendarError, NamedIntervalSpec, compile_intervals

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")

INTERVALS = compile_intervals(
    [
        NamedIntervalSpec.model_validate(spec)
        for spec in [
            {
                "name": "office",
                "time_intervals": [
                    {
                        "weekdays": ["monday:friday"],
                        "times": [{"start_time": "09:00", "end_time": "18:00"}],
                        "location": "Europe/London",
                    }
                ],
            },
            {
                "name": "christmas",
                "time_intervals": [
                    {
                        "months": ["december"],
                        "days_of_month": ["25:26"],
                        "location": "Europe/London",
                    }
                ],
            },
            {"name": "year-end", "time_intervals": [{"days_of_month": ["-1"], "months": [12]}]},
            {"name": "always", "time_intervals": [{"location": "Europe/London"}]},
            {
                "name": "new-york",
                "time_intervals": [
                    {
                        "weekdays": ["monday:friday"],
                        "times": [{"start_time": "09:00", "end_time": "17:00"}],
                        "location": "America/New_York",
                    }
                ],
            },
            {
                "name": "split-day",
                "time_intervals": [
                    {
                        "times": [
                            {"start_time": "13:00", "end_time": "17:00"},
                            {"start_time": "09:00", "end_time": "12:00"},
                        ],
                        "location": "Europe/London",
                    }
                ],
            },
        ]
    ]
)
OFFICE = BusinessCalendar.of(INTERVALS, ["office"], ["christmas"])


def london(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=LONDON)


ADDS = [
    # (calendar, start, working time, due): the escalation timer's question.
    (
        "Friday 18:55 waits for Monday",
        OFFICE,
        london(2026, 12, 4, 18, 55),
        30,
        london(2026, 12, 7, 9, 30),
    ),
    ("within the day", OFFICE, london(2026, 12, 2, 10, 0), 30, london(2026, 12, 2, 10, 30)),
    ("over a night", OFFICE, london(2026, 12, 23, 17, 0), 240, london(2026, 12, 24, 12, 0)),
    (
        "Christmas and a weekend",
        OFFICE,
        london(2026, 12, 24, 17, 30),
        60,
        london(2026, 12, 28, 9, 30),
    ),
    (
        "a Saturday starts on Monday",
        OFFICE,
        london(2026, 12, 5, 11, 0),
        15,
        london(2026, 12, 7, 9, 15),
    ),
    ("ends exactly at closing", OFFICE, london(2026, 12, 2, 17, 0), 60, london(2026, 12, 2, 18, 0)),
    (
        "the last day of the year is closed",
        BusinessCalendar.of(INTERVALS, ["office"], ["christmas", "year-end"]),
        london(2026, 12, 30, 17, 30),
        60,
        london(2027, 1, 1, 9, 30),
    ),
    (
        "clocks forward: 24 working hours end at 13:00",
        BusinessCalendar.of(INTERVALS, ["always"]),
        london(2027, 3, 27, 12, 0),
        24 * 60,
        london(2027, 3, 28, 13, 0),
    ),
    (
        "clocks back: 24 working hours end at 11:00",
        BusinessCalendar.of(INTERVALS, ["always"]),
        london(2026, 10, 24, 12, 0),
        24 * 60,
        london(2026, 10, 25, 11, 0),
    ),
    (
        "New York hours for an alert timed in UTC",
        BusinessCalendar.of(INTERVALS, ["new-york"]),
        datetime(2026, 12, 4, 22, 30, tzinfo=UTC),
        60,
        datetime(2026, 12, 7, 15, 0, tzinfo=UTC),
    ),
    (
        "office hours across the spring change in New York (EST to EDT)",
        BusinessCalendar.of(INTERVALS, ["new-york"]),
        datetime(2027, 3, 12, 16, 30, tzinfo=NEW_YORK),
        60,
        datetime(2027, 3, 15, 9, 30, tzinfo=NEW_YORK),
    ),
    (
        "a lunch break",
        BusinessCalendar.of(INTERVALS, ["split-day"]),
        london(2026, 12, 2, 11, 30),
        60,
        london(2026, 12, 2, 13, 30),
    ),
    ("zero is now", OFFICE, london(2026, 12, 5, 11, 0), 0, london(2026, 12, 5, 11, 0)),
]


@pytest.mark.parametrize(
    ("case", "calendar", "start", "minutes", "due"), ADDS, ids=[a[0] for a in ADDS]
)
def test_working_time_added_to_a_moment(
    case: str, calendar: BusinessCalendar, start: datetime, minutes: int, due: datetime
) -> None:
    assert calendar.add(start, timedelta(minutes=minutes)) == due


ELAPSED = [
    ("over a weekend", OFFICE, london(2026, 12, 4, 17, 0), london(2026, 12, 7, 10, 0), 120),
    ("all within closed time", OFFICE, london(2026, 12, 5, 8, 0), london(2026, 12, 6, 20, 0), 0),
    ("a holiday week", OFFICE, london(2026, 12, 24, 9, 0), london(2026, 12, 29, 9, 0), 2 * 9 * 60),
    (
        "the day clocks go forward is 23 hours",
        BusinessCalendar.of(INTERVALS, ["always"]),
        london(2027, 3, 28, 0, 0),
        london(2027, 3, 29, 0, 0),
        23 * 60,
    ),
    (
        "the day clocks go back is 25 hours",
        BusinessCalendar.of(INTERVALS, ["always"]),
        london(2026, 10, 25, 0, 0),
        london(2026, 10, 26, 0, 0),
        25 * 60,
    ),
    ("end before start", OFFICE, london(2026, 12, 7, 10, 0), london(2026, 12, 7, 9, 0), 0),
]


@pytest.mark.parametrize(
    ("case", "calendar", "start", "end", "minutes"), ELAPSED, ids=[e[0] for e in ELAPSED]
)
def test_working_time_between_two_moments(
    case: str, calendar: BusinessCalendar, start: datetime, end: datetime, minutes: int
) -> None:
    assert calendar.elapsed(start, end) == timedelta(minutes=minutes)


def test_open_and_closed_moments() -> None:
    assert OFFICE.is_open(london(2026, 12, 2, 9, 0))
    assert not OFFICE.is_open(london(2026, 12, 2, 18, 0))  # end_time is not in the range
    assert not OFFICE.is_open(london(2026, 12, 25, 10, 0))  # a holiday
    assert not OFFICE.is_open(london(2026, 12, 5, 10, 0))  # a Saturday
    assert OFFICE.is_open(datetime(2026, 12, 2, 9, 30, tzinfo=UTC))


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
    ),
    minutes=st.integers(min_value=0, max_value=60 * 24 * 10),
    calendar=st.sampled_from(
        [
            OFFICE,
            BusinessCalendar.of(INTERVALS, ["always"]),
            BusinessCalendar.of(INTERVALS, ["new-york", "split-day"], ["christmas"]),
        ]
    ),
)
def test_the_working_time_up_to_a_due_moment_is_the_time_added(
    start: datetime, minutes: int, calendar: BusinessCalendar
) -> None:
    due = calendar.add(start, timedelta(minutes=minutes))
    assert calendar.elapsed(start, due) == timedelta(minutes=minutes)
    # Due no later than needed: a working duration ends in working time (or at its edge).
    if minutes:
        assert calendar.is_open(due - timedelta(microseconds=1))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"weekdays": ["funday"]}, "'funday' is not a weekday"),
        ({"weekdays": ["friday:monday"]}, "a range ends after it starts"),
        ({"times": [{"start_time": "18:00", "end_time": "09:00"}]}, "a range over midnight"),
        ({"times": [{"start_time": "09:00", "end_time": "25:00"}]}, "from 00:00 to 24:00"),
        ({"location": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"days_of_month": ["0"]}, "is not 1 to 31 or -31 to -1"),
        ({"months": ["smarch"]}, "'smarch' is not a month"),
    ],
)
def test_an_interval_that_cannot_be_read_says_why(entry: dict[str, Any], message: str) -> None:
    with pytest.raises((CalendarError, ValueError), match=message):
        compile_intervals(
            [NamedIntervalSpec.model_validate({"name": "x", "time_intervals": [entry]})]
        )


def test_a_calendar_names_only_defined_intervals_and_a_closed_one_fails_to_add() -> None:
    with pytest.raises(CalendarError, match=r"unknown time interval\(s\) nope"):
        BusinessCalendar.of(INTERVALS, ["office"], ["nope"])
    never = BusinessCalendar.of(INTERVALS, ["always"], ["always"])
    with pytest.raises(CalendarError, match="no working time within 400 days"):
        never.add(london(2026, 12, 2, 9, 0), timedelta(minutes=1))
