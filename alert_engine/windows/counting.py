"""Counting events into windows: a batch's partial states per family (or pane group) and window,
the buckets of one group key a batch touches, and which fired windows raise an alert."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from alert_engine.alerts import Alert
from alert_engine.conditions.expressions import Activation, EvaluationError
from alert_engine.events import Event
from alert_engine.windows.definitions import WindowRange
from alert_engine.windows.families import Family, PaneGroup
from alert_engine.windows.hop import Inputs
from alert_engine.windows.state import Bucket, bucket_of
from alert_engine.windows.store import WindowStore

# An event validated and ready for conditions, or None when it is invalid.
Validated = tuple[Event, Activation] | None


class Partial(NamedTuple):
    """The count of a batch's events for one rule family in one window, or for a pane group in
    one pane: the aggregates' states over the events counted, and a reference to the event
    counted last (its position in the batch's record)."""

    counted: Family | PaneGroup
    start: float
    end: float
    events: int
    states: list[Any]
    ref: Any


class WindowPartial(NamedTuple):
    """A partial state of one family's window: what `merge` adds to the window's state."""

    family: Family
    start: float
    end: float
    events: int
    states: list[Any]
    ref: Any


@dataclass(slots=True)
class Counting:
    """A `Partial` while the batch is counted: changed in place, one event at a time."""

    counted: Family | PaneGroup
    start: float
    end: float
    events: int
    states: list[Any]
    ref: Any


# A batch's partials of one group key while they are counted, by family id and window start.
Partials = dict[tuple[str, float], Counting]

# Per rule, the windows that fired in one step (an event, or a batch of a key's events) with
# their alerts.
Fired = dict[str, list[tuple[WindowRange, Alert]]]


def raised_alerts(fired: list[tuple[WindowRange, Alert]]) -> list[Alert]:
    """The alerts a rule raises for the windows that fired in one step: one for every window,
    oldest first, except a window overlapping one already raised for (hopping windows that an
    event or a batch makes hold at once raise one alert, for the oldest). Tumbling windows never
    overlap: a batch spanning several of a key's windows raises every one of them."""
    raised: list[Alert] = []
    covered_until = -math.inf
    for (start, end), alert in sorted(fired, key=lambda item: item[0]):
        if start < covered_until:
            continue
        raised.append(alert)
        covered_until = end
    return raised


class KeyBuckets:
    """The buckets of one group key's windows that a batch touches, each read from the store
    once, changed in place and written back once.

    The state of all rules of one grouping, key, window shape and window is one bucket: a table
    write is a changelog message, and their number then grows with window shapes, not with
    rules or events."""

    __slots__ = ("key", "read", "store")

    def __init__(self, store: WindowStore, key: str) -> None:
        self.store = store
        self.key = key
        self.read: dict[tuple[str, WindowRange], Bucket] = {}

    def get(self, shape: str, window: WindowRange) -> Bucket:
        found = self.read.get((shape, window))
        if found is None:
            stored = self.store.get(shape, self.key, window)
            # Read as records: a window read back from the changelog holds JSON.
            found = self.read[(shape, window)] = bucket_of(stored) if stored is not None else {}
        return found

    def write_back(self) -> None:
        for (shape, window), bucket in self.read.items():
            self.store.set(shape, self.key, window, bucket)


# Per aggregate counting an event: its position, fold function and checked value.
Folds = list[tuple[int, Callable[[Any, Any], Any], Any]]


def folds_for(family: Family, values: list[Any]) -> Folds | EvaluationError:
    """`Aggregate.step` for the event's `values`, checked once for all windows, or the error of
    a value of the wrong type. A null argument value changes nothing."""
    try:
        return [
            (i, fold, check(value))
            for i, ((fold, check, takes), value) in enumerate(
                zip(family.steps, values, strict=True)
            )
            if value is not None or not takes
        ]
    except EvaluationError as exc:
        return exc


def later_ref(ref: Any, other: Any) -> Any:
    """Of two partials' last events, the later: references into a record's events are their
    positions in the batch."""
    if isinstance(ref, int) and isinstance(other, int):
        return max(ref, other)
    return other


def count_into(
    into: Partials,
    counted: Family | PaneGroup,
    start: float,
    end: float,
    folds: Folds,
    ref: Any,
) -> None:
    """One more event (`ref`) in the partial state of `counted` (a family's window, a pane
    group's pane) from `start` to `end`."""
    slot = into.get((counted.id, start))
    if slot is None:
        slot = into[(counted.id, start)] = Counting(counted, start, end, 0, counted.initial(), ref)
    states = slot.states
    for i, fold, value in folds:
        states[i] = fold(states[i], value)
    slot.events += 1
    slot.ref = ref


def family_values(family: Family, activation: Activation) -> list[Any] | bool | EvaluationError:
    """The family's argument values for the event (null for `count()`), False when its `where`
    is false, or the error that kept one from being computed. Each expression's value is kept in
    the activation's memo under its source, for the families that share it."""
    memo = activation.memo
    where = family.where
    if where is not None:
        holds = memo.get(family.where_key, _MISSING)
        if holds is _MISSING:
            try:
                holds = where.evaluate(activation)
            except EvaluationError as exc:
                holds = exc
            memo[family.where_key] = holds
        if holds is not True:
            return holds if isinstance(holds, EvaluationError) else False
    values: list[Any] = []
    for argument in family.arguments:
        if argument is None:
            values.append(None)
            continue
        value = memo.get(argument.source, _MISSING)
        if value is _MISSING:
            try:
                value = argument.value(activation)
            except EvaluationError as exc:
                value = exc
            memo[argument.source] = value
        if isinstance(value, EvaluationError):
            return value
        values.append(value)
    return values


def inputs_fit(families: tuple[Family, ...] | None, inputs: Inputs) -> bool:
    """Whether shipped inputs have the shape of these families' (a foreign record may not)."""
    if families is None or len(families) != len(inputs):
        return False
    for family, values in zip(families, inputs, strict=True):
        if values is not None and len(values) != len(family.aggregates):
            return False
    return True


_MISSING = object()
