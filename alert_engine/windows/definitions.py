"""Window shapes for windowed rules.

A window is tumbling (`size` only) or hopping (`size` and a smaller `step`). Event time comes from
the event's `time`; an event may arrive up to `grace` after its window ended and still count.
Window ranges are computed here in plain Python numbers (`window_ranges`), as Faust's window
classes place them, so the live tables and a replay place an event in exactly the same windows.
Durations are read as everywhere else (`alert_engine.durations`), then held to a window's bounds.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from faust.windows import HoppingWindow
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)

from alert_engine.durations import duration_of

# Beyond this, window state and the "already fired" marks would outlive any sensible question.
MAX_DURATION_SECONDS = 90 * 86400


def window_seconds(value: object) -> float:
    """A window's size, step or grace as a person writes it (`30s`, `15m`, `1h30m`, `7d`, `2w`,
    ISO 8601, seconds: `alert_engine.durations`) -> seconds, greater than zero and at most
    `MAX_DURATION_SECONDS`."""
    seconds = (value if isinstance(value, timedelta) else duration_of(value)).total_seconds()
    if seconds <= 0:
        raise ValueError("a duration must be greater than zero")
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError(f"a duration may be at most {MAX_DURATION_SECONDS // 86400} days")
    return seconds


def window_duration_name(seconds: float) -> str:
    """How a window's duration is written back (a rule's JSON, a window shape's name): the
    largest unit it is a whole number of. Not `durations.format_duration` (`90m` would become
    `1h30m`): rule state ids hash a rule's JSON and the state is stored by shape name, so a
    changed spelling would leave every running window's state behind."""
    for unit, size in (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


# Seconds, written as `15m` in YAML and in the JSON Schema (that of `durations.Duration`).
WindowDuration = Annotated[
    float,
    BeforeValidator(window_seconds),
    PlainSerializer(window_duration_name, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "minLength": 1},
                {"type": "number", "exclusiveMinimum": 0},
            ],
            "description": "a duration: 30s, 15m, 1h30m, 1d, 1w, seconds, or ISO 8601 (PT15M)",
        }
    ),
]


class WindowSpec(BaseModel):
    """`window: {size: 30m}` (tumbling) or `window: {size: 1h, step: 5m, grace: 2m}` (hopping)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: WindowDuration
    step: WindowDuration | None = None
    grace: WindowDuration = 60.0

    @model_validator(mode="after")
    def _step_fits(self) -> WindowSpec:
        if self.step is not None:
            if self.step > self.size:
                raise ValueError("step must not be larger than size")
            if self.size % self.step:
                raise ValueError("size must be a whole multiple of step")
            if self.size / self.step > 1000:
                raise ValueError("size/step gives more than 1000 windows per event")
        if self.size != int(self.size) or (self.step or 1) != int(self.step or 1):
            raise ValueError("size and step must be whole seconds")
        return self

    @property
    def hop(self) -> float:
        return self.step if self.step is not None else self.size

    @property
    def kind(self) -> str:
        return "tumbling" if self.hop == self.size else "hopping"

    @property
    def shape(self) -> str:
        """A name for windows of this size and step: one Faust table holds all of them."""
        name = window_duration_name(self.size)
        if self.kind == "tumbling":
            return name
        return f"{name}-every-{window_duration_name(self.hop)}"

    def faust_window(self, grace: float) -> HoppingWindow:
        # Faust drops a window's keys once its end is `expires` behind the clock; the window must
        # outlive the longest grace of the rules that share the table.
        return HoppingWindow(self.size, self.hop, expires=grace + max(60.0, self.hop))


WindowRange = tuple[float, float]


def window_ranges(window: HoppingWindow, timestamp: float) -> list[WindowRange]:
    """Every window containing `timestamp` (one when tumbling), oldest first: the ranges Faust's
    `HoppingWindow.ranges` gives (`start` to `start + size - 0.1`), computed here in Python
    floats. Faust's compiled version does its range maths in C ints: a rating dated in year 9999
    overflowed them into billions of windows and the worker ran out of memory."""
    size, step = float(window.size), float(window.step)
    last = timestamp - timestamp % step
    first = last - size + step
    return [(first + n * step, first + n * step + size - 0.1) for n in range(int(size // step))]
