"""Durations in the routing file read as Alertmanager reads them (Prometheus' `model.Duration`)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alert_engine.durations import format_duration, parse_duration
from alert_engine.routing import RoutingError, load_routing
from tests.routing.test_tree import write

bounded = settings(max_examples=300, deadline=None)
MS = timedelta(milliseconds=1)
UNITS = {
    "y": timedelta(days=365),
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
    "ms": MS,
}
# time.Duration is int64 nanoseconds: about 292 years.
LONGEST = timedelta(microseconds=(2**63 - 1) // 1000)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("0s", timedelta(0)),
        ("30s", timedelta(seconds=30)),
        ("1m", timedelta(minutes=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
        ("1y", timedelta(days=365)),
        ("500ms", timedelta(milliseconds=500)),
        ("1y2w3d4h5m6s7ms", timedelta(days=365 + 14 + 3, hours=4, minutes=5, seconds=6) + 7 * MS),
        ("090s", timedelta(seconds=90)),
    ],
)
def test_go_style_durations_parse_as_model_duration_parses_them(
    text: str, expected: timedelta
) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty duration string"),
        ("30m1h", "not a valid duration string"),  # units from the biggest to the smallest
        ("1h1h", "not a valid duration string"),
        ("1.5h", "unknown unit '.'"),
        ("1h 30m", "unknown unit"),
        ("5M", "unknown unit"),
        ("-1m", "not a valid duration string"),
        ("m", "not a valid duration string"),
        ("293y", "duration out of range"),
        ("99999999999999999999s", "not a valid duration string"),
    ],
)
def test_what_model_duration_refuses_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


def test_durations_print_as_model_duration_prints_them() -> None:
    assert format_duration(timedelta(0)) == "0s"
    assert format_duration(timedelta(hours=1, minutes=30)) == "1h30m"
    assert format_duration(timedelta(days=90)) == "90d"  # weeks and years only when exact
    assert format_duration(timedelta(days=14)) == "2w"
    assert format_duration(timedelta(days=730)) == "2y"
    assert format_duration(timedelta(seconds=1, microseconds=2500)) == "1s2ms"


@bounded
@given(st.integers(min_value=0, max_value=LONGEST // MS))
def test_a_duration_printed_parses_back_to_itself(milliseconds: int) -> None:
    duration = milliseconds * MS
    assert parse_duration(format_duration(duration)) == duration


@bounded
@given(st.dictionaries(st.sampled_from(list(UNITS)), st.integers(0, 10**6), min_size=1))
def test_units_in_order_add_up_and_print_to_the_same_duration(parts: dict[str, int]) -> None:
    text = "".join(f"{parts[unit]}{unit}" for unit in UNITS if unit in parts)
    expected = sum((count * UNITS[unit] for unit, count in parts.items()), timedelta(0))
    if expected > LONGEST:
        with pytest.raises(ValueError, match="out of range"):
            parse_duration(text)
        return
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@bounded
@given(st.text(st.sampled_from("0123456789ywdhms. -"), max_size=12) | st.text(max_size=12))
def test_any_text_is_a_duration_or_a_value_error(text: str) -> None:
    try:
        duration = parse_duration(text)
    except ValueError as exc:
        assert str(exc)
    else:
        assert timedelta(0) <= duration <= LONGEST


ROUTES = """\
destinations: {outbox: {type: outbox}}
route:
  destinations: [outbox]
  routes:
    - matchers: ["team = orders"]
      group_by: [team]
      group_wait: %s
      group_interval: %s
      repeat_interval: %s
inhibit_rules:
  - source_matchers: ["rule = spike"]
    target_matchers: ["rule = negative-rating"]
    active_for: %s
"""


def test_the_routing_file_takes_go_style_durations(tmp_path: Path) -> None:
    routing = load_routing(write(tmp_path, ROUTES % ("45s", "1h30m", "4h", "1d")))
    [route] = routing.root.children
    assert route.grouping is not None
    assert route.grouping.wait == timedelta(seconds=45)
    assert route.grouping.interval == timedelta(hours=1, minutes=30)
    assert route.repeat_interval == timedelta(hours=4)
    assert routing.inhibit_rules[0].active_for == timedelta(days=1)


def test_seconds_and_iso_8601_still_read_as_before(tmp_path: Path) -> None:
    routing = load_routing(write(tmp_path, ROUTES % ("30", "PT5M", "'600'", "1800")))
    [route] = routing.root.children
    assert route.grouping is not None
    assert (route.grouping.wait, route.grouping.interval) == (
        timedelta(seconds=30),
        timedelta(minutes=5),
    )
    assert route.repeat_interval == timedelta(minutes=10)
    assert routing.inhibit_rules[0].active_for == timedelta(minutes=30)


def test_a_bad_duration_is_reported_at_its_line_with_model_durations_reason(tmp_path: Path) -> None:
    path = write(tmp_path, ROUTES % ("30m1h", "0s", "0", "1h 30m"))
    with pytest.raises(RoutingError) as raised:
        load_routing(path)
    messages = [str(problem) for problem in raised.value.problems]
    assert any(m.startswith(f"{path}:7:") and "not a valid duration string" in m for m in messages)
    # Alertmanager: "group_interval cannot be zero", "repeat_interval cannot be zero".
    assert any(m.startswith(f"{path}:8:") and "group_interval" in m for m in messages)
    assert any(m.startswith(f"{path}:9:") and "repeat_interval" in m for m in messages)
    assert any(m.startswith(f"{path}:13:") and "unknown unit" in m for m in messages), messages


def test_repeat_interval_is_inherited_and_defaults_to_alertmanagers_4h(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
destinations: {outbox: {type: outbox}}
route:
  destinations: [outbox]
  repeat_interval: 1h
  routes:
    - matchers: ["team = orders"]
""",
    )
    routing = load_routing(path)
    assert routing.root.repeat_interval == timedelta(hours=1)
    assert routing.root.children[0].repeat_interval == timedelta(hours=1)
    bare = "destinations: {o: {type: outbox}}\nroute: {destinations: [o]}\n"
    default = load_routing(write(tmp_path, bare))
    assert default.root.repeat_interval == timedelta(hours=4)


def test_routes_test_shows_a_routes_grouping_in_go_style_durations(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from alert_engine.cli.main import main

    path = write(tmp_path, ROUTES % ("45s", "1h30m", "4h", "1d"))
    result = CliRunner().invoke(main, ["routes", "test", "--file", str(path), "team=orders"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        "root > root.0  (grouped by team: wait 45s, interval 1h30m)"
    )
