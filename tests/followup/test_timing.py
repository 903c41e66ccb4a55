"""When a survey goes out: resolve time + delay, moved out of the customer's quiet hours."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from alert_engine.followup.timing import QuietHours, customer_zone, is_holdout, send_time

NIGHT = QuietHours(time(21, 0), time(8, 0))
LUNCH = QuietHours(time(12, 0), time(13, 0))
NONE = QuietHours(time(0, 0), time(0, 0))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize(
    ("resolved", "delay_h", "quiet", "zone", "expected"),
    [
        # Outside quiet hours: resolve time + delay, unchanged.
        ("2026-03-10T10:00+00:00", 24, NIGHT, "UTC", "2026-03-11T10:00+00:00"),
        # Lands at 22:00 local: moved to 08:00 the next morning.
        ("2026-03-10T22:00+00:00", 0, NIGHT, "UTC", "2026-03-11T08:00+00:00"),
        # Lands at 03:00 local, after midnight: 08:00 the same day.
        ("2026-03-10T03:00+00:00", 0, NIGHT, "UTC", "2026-03-10T08:00+00:00"),
        # Quiet hours start and end exactly: start is quiet, end is allowed.
        ("2026-03-10T21:00+00:00", 0, NIGHT, "UTC", "2026-03-11T08:00+00:00"),
        ("2026-03-10T08:00+00:00", 0, NIGHT, "UTC", "2026-03-10T08:00+00:00"),
        ("2026-03-10T20:59:59+00:00", 0, NIGHT, "UTC", "2026-03-10T20:59:59+00:00"),
        # The customer's zone decides: 10:00 UTC is 02:00 in Los Angeles (PST, -8).
        ("2026-01-15T10:00+00:00", 0, NIGHT, "America/Los_Angeles", "2026-01-15T16:00+00:00"),
        # 23:00 UTC is 08:00 the next day in Tokyo: allowed.
        ("2026-01-15T23:00+00:00", 0, NIGHT, "Asia/Tokyo", "2026-01-15T23:00+00:00"),
        # A window within one day.
        ("2026-01-15T12:30+00:00", 0, LUNCH, "UTC", "2026-01-15T13:00+00:00"),
        ("2026-01-15T11:59+00:00", 0, LUNCH, "UTC", "2026-01-15T11:59+00:00"),
        # No quiet hours.
        ("2026-01-15T03:00+00:00", 0, NONE, "UTC", "2026-01-15T03:00+00:00"),
        # Seconds of delay, as in the demo.
        ("2026-01-15T12:00:00+00:00", 2 / 3600, NIGHT, "UTC", "2026-01-15T12:00:02+00:00"),
        # DST: Berlin springs forward on 2026-03-29 (02:00 -> 03:00). 01:30 local is quiet; the
        # end 08:00 is CEST (+02:00).
        ("2026-03-29T01:30+01:00", 0, NIGHT, "Europe/Berlin", "2026-03-29T08:00+02:00"),
        # Falls back on 2026-10-25: 22:00 CEST the day before -> 08:00 CET (+01:00).
        ("2026-10-24T22:00+02:00", 0, NIGHT, "Europe/Berlin", "2026-10-25T08:00+01:00"),
        # 24 h after 10:00 CET on 28 March is 11:00 CEST on 29 March: a day of 23 hours.
        ("2026-03-28T10:00+01:00", 24, NIGHT, "Europe/Berlin", "2026-03-29T11:00+02:00"),
    ],
)
def test_send_time(
    resolved: str, delay_h: float, quiet: QuietHours, zone: str, expected: str
) -> None:
    got = send_time(utc(resolved), timedelta(hours=delay_h), quiet, ZoneInfo(zone))
    assert got == utc(expected)
    assert got.tzinfo is UTC


@pytest.mark.parametrize(
    ("resolved", "quiet_end", "expected"),
    [
        # A quiet-hours end inside the spring-forward gap (02:30 does not exist on 29 March in
        # Berlin) is the first instant after the gap.
        ("2026-03-29T01:00+01:00", time(2, 30), "2026-03-29T03:30+02:00"),
        # An end that occurs twice on the fall-back day (02:30 on 25 October) is the first one.
        ("2026-10-25T01:00+02:00", time(2, 30), "2026-10-25T02:30+02:00"),
    ],
)
def test_send_time_in_dst_gaps_and_overlaps(resolved: str, quiet_end: time, expected: str) -> None:
    quiet = QuietHours(time(0, 0), quiet_end)
    got = send_time(utc(resolved), timedelta(0), quiet, ZoneInfo("Europe/Berlin"))
    assert got == utc(expected)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Europe/Berlin", "Europe/Berlin"),
        ("Mars/Olympus_Mons", "America/New_York"),
        ("", "America/New_York"),
        (None, "America/New_York"),
        (42, "America/New_York"),
        ("../../etc/passwd", "America/New_York"),
    ],
)
def test_unknown_or_missing_zones_fall_back_to_the_default(
    name: str | int | None, expected: str
) -> None:
    assert str(customer_zone(name, "America/New_York")) == expected


def test_holdout_is_deterministic_and_close_to_the_share() -> None:
    ids = [f"al-{n:05d}" for n in range(4000)]
    held = [alert for alert in ids if is_holdout(alert, 0.1)]
    assert held == [alert for alert in ids if is_holdout(alert, 0.1)]
    assert 300 < len(held) < 500
    assert not any(is_holdout(alert, 0.0) for alert in ids)
    assert all(is_holdout(alert, 1.0) for alert in ids)
    # A larger share holds out a superset: raising it never releases a held-out case.
    assert set(held) <= {alert for alert in ids if is_holdout(alert, 0.3)}
