"""Named aggregates of a windowed rule, compiled once at load and updated one event at a time.

    aggregates:
      responses: count()
      negatives: count_if(rating <= 2)
      average: avg(rating)
      customers: distinct(customer.id)
      score: nps(nps)

Each aggregate keeps a small JSON-able state (it travels through the Faust table's changelog) and
updates it in O(1) per event; `distinct` keeps the set of values it has seen. An event for which
the argument is null or missing leaves the aggregate as it was. Two states of the same aggregate
merge into the state of both their events (`Kind.merge`): the input agent counts a batch's events
per window and ships that, and the windowed agent merges it into the window's state.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from alert_engine.conditions.expressions import (
    Activation,
    EvaluationError,
    Expression,
    ExpressionError,
    compile_expression,
)

State = Any
# The most values `distinct` remembers per window: bounds memory; the count saturates there.
DISTINCT_LIMIT = 10_000


@dataclass(frozen=True)
class Kind:
    """One aggregate function: its empty state, how an event's value updates it, its result.

    An update is two steps: `check` refuses a value of the wrong type (`EvaluationError`) and
    gives the value to count, `fold` counts it (changing a list state in place). An event's
    value is checked once, then folded into each of its windows. `merge` adds a second state
    to a first (in place for a list state; the second is left as it was)."""

    initial: Callable[[], State]
    fold: Callable[[State, Any], State]
    result: Callable[[State], Any]
    merge: Callable[[State, State], State]
    check: Callable[[Any], Any] = field(default=lambda value: value)
    # Whether a value has the form of a state (one read from the windows topic).
    accepts: Callable[[Any], bool] = field(default=lambda state: _is_number(state))
    takes_argument: bool = True
    numeric: bool = True

    def add(self, state: State, value: Any) -> State:
        """The state after one more event with `value`."""
        return self.fold(state, self.check(value))


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EvaluationError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _is_number(value: Any) -> bool:
    return value.__class__ is float or value.__class__ is int


def _is_optional_number(state: Any) -> bool:
    return state is None or _is_number(state)


def _are_numbers(length: int) -> Callable[[Any], bool]:
    def accepts(state: Any) -> bool:
        return (
            state.__class__ is list
            and len(state) == length
            and all(value.__class__ is float or value.__class__ is int for value in state)
        )

    return accepts


def _are_values(state: Any) -> bool:
    return state.__class__ is list and len(state) <= DISTINCT_LIMIT


def _same(state: Any) -> Any:
    return state


def _count(count: int, _: Any) -> int:
    return count + 1


def _condition(hit: Any) -> bool:
    if not isinstance(hit, bool):
        raise EvaluationError(f"count_if needs a condition, got {type(hit).__name__}")
    return hit


def _fold_average(state: list[float], value: float) -> list[float]:
    state[0] += value
    state[1] += 1
    return state


def _fold_min(state: float | None, value: float) -> float:
    return value if state is None or value < state else state


def _fold_max(state: float | None, value: float) -> float:
    return value if state is None or value > state else state


def _fold_distinct(state: list[Any], value: Any) -> list[Any]:
    if value not in state and len(state) < DISTINCT_LIMIT:
        state.append(value)
    return state


def _merge_pairs(state: list[float], other: list[float]) -> list[float]:
    for i, value in enumerate(other):
        state[i] += value
    return state


def _merge_min(state: float | None, other: float | None) -> float | None:
    return state if other is None else _fold_min(state, other)


def _merge_max(state: float | None, other: float | None) -> float | None:
    return state if other is None else _fold_max(state, other)


def _merge_distinct(state: list[Any], other: list[Any]) -> list[Any]:
    for value in other:
        _fold_distinct(state, value)
    return state


def _nps_score(value: Any) -> float:
    score = _number(value)
    if not 0 <= score <= 10:
        raise EvaluationError(f"an NPS answer is 0-10, got {value!r}")
    return score


def _fold_nps(state: list[int], score: float) -> list[int]:
    state[0] += score >= 9
    state[1] += score <= 6
    state[2] += 1
    return state


KINDS: dict[str, Kind] = {
    "count": Kind(lambda: 0, _count, _same, operator.add, takes_argument=False),
    # A count plus a boolean is a count.
    "count_if": Kind(lambda: 0, operator.add, _same, operator.add, _condition, numeric=False),
    "sum": Kind(lambda: 0.0, operator.add, _same, operator.add, _number),
    "avg": Kind(
        lambda: [0.0, 0],
        _fold_average,
        lambda s: s[0] / s[1] if s[1] else None,
        _merge_pairs,
        _number,
        _are_numbers(2),
    ),
    "min": Kind(lambda: None, _fold_min, _same, _merge_min, _number, _is_optional_number),
    "max": Kind(lambda: None, _fold_max, _same, _merge_max, _number, _is_optional_number),
    "distinct": Kind(
        lambda: [], _fold_distinct, len, _merge_distinct, accepts=_are_values, numeric=False
    ),
    "nps": Kind(
        lambda: [0, 0, 0],
        _fold_nps,
        lambda s: (s[0] - s[1]) * 100.0 / s[2] if s[2] else None,
        _merge_pairs,
        _nps_score,
        _are_numbers(3),
    ),
}

_CALL = re.compile(r"^\s*([a-z_]+)\s*\((.*)\)\s*$", re.DOTALL)


class AggregateError(ValueError):
    pass


@dataclass(frozen=True)
class Aggregate:
    name: str
    function: str
    kind: Kind
    argument: Expression | None
    source: str

    def read(self, activation: Activation) -> Any:
        """The event's value for this aggregate; raises `EvaluationError` if it cannot be read."""
        return None if self.argument is None else self.argument.value(activation)

    def step(self, state: State, value: Any) -> State:
        """The state after one more event with `value`; a null value (an optional field left
        empty) changes nothing."""
        if value is None and self.argument is not None:
            return state
        return self.kind.add(state, value)

    def result(self, state: State) -> Any:
        return self.kind.result(state)


def compile_aggregate(name: str, source: str) -> Aggregate:
    match = _CALL.match(source)
    if match is None:
        raise AggregateError(
            f"expected a call such as count(), avg(rating) or count_if(rating <= 2), got {source!r}"
        )
    function, argument = match.group(1), match.group(2).strip()
    kind = KINDS.get(function)
    if kind is None:
        raise AggregateError(f"unknown aggregate {function!r} (known: {', '.join(sorted(KINDS))})")
    if not kind.takes_argument:
        if argument:
            raise AggregateError(f"{function}() takes no argument")
        return Aggregate(name, function, kind, None, source)
    if not argument:
        raise AggregateError(f"{function}(...) needs an argument, e.g. {function}(rating)")
    try:
        expression = compile_expression(argument)
    except ExpressionError as exc:
        raise AggregateError(f"argument of {function} does not compile: {exc}") from None
    return Aggregate(name, function, kind, expression, source)
