"""Durations, read one way wherever a person writes one (rules, routing, settings, the CLI):
Prometheus' `model.Duration` as Alertmanager reads it (`30s`, `15m`, `1h30m`, `7d`, `2w`, `1y`,
`500ms`), a number of seconds, or ISO 8601 (`PT15M`, `P1D`); one error message for all."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, TypeAdapter, ValidationError, WithJsonSchema

# model.Duration's units, biggest first; a year is 365 days, a week 7, a day 24 hours.
_UNITS_NS = {
    "y": 365 * 24 * 3600 * 10**9,
    "w": 7 * 24 * 3600 * 10**9,
    "d": 24 * 3600 * 10**9,
    "h": 3600 * 10**9,
    "m": 60 * 10**9,
    "s": 10**9,
    "ms": 10**6,
}
_ORDER = {unit: position for position, unit in enumerate(_UNITS_NS, start=1)}
_MAX_NS = 2**63 - 1  # Go's time.Duration
_TOKEN = re.compile(r"([0-9]*)([^0-9]*)")
# Besides Go's form: seconds as text ("90", "1.5"), and ISO 8601 ("PT5M") that pydantic reads.
_SECONDS = re.compile(r"\A[0-9]+(\.[0-9]+)?\Z")
_ISO_8601 = re.compile(r"\A[+-]?P", re.IGNORECASE)


def parse_duration(text: str) -> timedelta:
    """As `model.ParseDuration`: units in order from the biggest, each at most once; "0" alone
    needs no unit; no sign, no fraction, no spaces; at most time.Duration's ~292 years."""
    if text == "0":
        return timedelta(0)
    if text == "":
        raise ValueError("empty duration string")
    total = 0
    last = 0
    rest = text
    while rest:
        found = _TOKEN.match(rest)
        assert found is not None  # both parts may be empty: it always matches
        digits, unit = found.groups()
        # Go's ParseUint: at most 2**64 - 1.
        if not digits or not unit or int(digits) >= 2**64:
            raise ValueError(f"not a valid duration string: {text!r}")
        if unit not in _UNITS_NS:
            raise ValueError(f"unknown unit {unit!r} in duration {text!r}")
        if _ORDER[unit] <= last:
            raise ValueError(f"not a valid duration string: {text!r}")
        last = _ORDER[unit]
        total += int(digits) * _UNITS_NS[unit]
        if total > _MAX_NS:
            raise ValueError("duration out of range")
        rest = rest[found.end() :]
    # Whole milliseconds at least, so microseconds hold it exactly.
    return timedelta(microseconds=total // 1000)


def format_duration(duration: timedelta) -> str:
    """As `model.Duration.String`: milliseconds and up; weeks and years only when exact."""
    ms = duration // timedelta(milliseconds=1)
    if ms <= 0:
        return "0s"
    parts = []
    for unit, ns in _UNITS_NS.items():
        unit_ms = ns // 10**6
        if unit in ("y", "w") and ms % unit_ms:
            continue
        if count := ms // unit_ms:
            parts.append(f"{count}{unit}")
            ms -= count * unit_ms
    return "".join(parts)


_HINT = "(write durations as 30s, 5m, 1h30m, 1d, 1w)"


def _read(value: Any) -> Any:
    if isinstance(value, str) and _SECONDS.match(value):
        return timedelta(seconds=float(value))
    if isinstance(value, str) and not _ISO_8601.match(value):
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ValueError(f"{exc} {_HINT}") from None
    return value


# A duration as a person writes it: Go-style text, or what pydantic reads (seconds, ISO 8601).
Duration = Annotated[
    timedelta,
    BeforeValidator(_read),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "minLength": 1}, {"type": "number", "minimum": 0}],
            "description": "a duration: 30s, 15m, 1h30m, 1d, 1w, seconds, or ISO 8601 (PT15M)",
        }
    ),
]


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("a duration cannot be negative")
    return value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("a duration must be greater than zero")
    return value


NonNegativeDuration = Annotated[Duration, AfterValidator(_not_negative)]
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]

_DURATION = TypeAdapter(Duration)


def read_duration(text: str) -> timedelta:
    """A duration as a person writes it (see the module's docstring); `ValueError` otherwise."""
    return duration_of(text.strip())


def duration_of(value: object) -> timedelta:
    """`read_duration` for any value a file may hold (text, a number of seconds, a timedelta);
    `ValueError` with the one message otherwise."""
    if isinstance(value, bool):
        # pydantic reads true as one second.
        raise ValueError(f"not a valid duration: {value!r} {_HINT}")
    try:
        return _DURATION.validate_python(value)
    except ValidationError as exc:
        message = exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
        raise ValueError(message) from None
