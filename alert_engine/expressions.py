"""Rule conditions in the Common Expression Language (CEL), compiled once when rules load.

CEL is side-effect free, always terminates and has no access to Python: an ops-written condition
can read an event, never change or escape it. Per event the engine builds one `Activation` and runs
every compiled program against it; building the activation costs far more than running a program,
so it happens once per event, not once per rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import cel
from cel.stdlib import STDLIB_FUNCTIONS

from alert_engine.sentiment import sentiment

# Functions available to conditions beyond CEL's built-ins, by the name a condition calls them
# with: cel-go's string, math, list and set extensions (`lowerAscii`, `split`, `math.abs`, ...),
# and `sentiment(text)`, VADER's compound score from -1 (negative) to 1 (positive).
FUNCTIONS: dict[str, Callable[..., Any]] = {**STDLIB_FUNCTIONS, "sentiment": sentiment}
# The prefixes of namespaced functions (`math`, `sets`, `base64`, ...).
NAMESPACES = frozenset(name.split(".", 1)[0] for name in FUNCTIONS if "." in name)


class ExpressionError(ValueError):
    """A condition that does not compile; `message` is CEL's own explanation."""


class EvaluationError(RuntimeError):
    """A condition that could not be decided for one event, e.g. it reads a missing field."""


class Activation:
    """The variables one event exposes to conditions, converted to CEL values once."""

    __slots__ = ("context", "fields")

    def __init__(
        self,
        fields: Mapping[str, Any],
        functions: Mapping[str, Callable[..., Any]],
        variables: Iterable[str] | None = None,
    ) -> None:
        self.fields = fields
        # Only the functions some condition calls, and only the fields some condition reads
        # (`variables`, all of them if not given): the context converts every value it is given
        # to CEL up front, which costs more per event than running the conditions.
        given = (
            dict(fields)
            if variables is None
            else {name: fields[name] for name in variables if name in fields}
        )
        self.context = cel.Context(given, dict(functions) if functions else None)


@dataclass(frozen=True)
class Condition:
    source: str
    program: Any = field(repr=False, compare=False)
    variables: tuple[str, ...]
    functions: tuple[str, ...]

    def evaluate(self, activation: Activation) -> bool:
        try:
            result = self.program.execute(activation.context)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise EvaluationError(str(exc)) from None
        if not isinstance(result, bool):
            raise EvaluationError(f"condition gave {type(result).__name__}, not a boolean")
        return result

    def values(self, activation: Activation) -> dict[str, Any]:
        """The event values the condition read: what made it fire, for the alert."""
        return {
            name: activation.fields[name] for name in self.variables if name in activation.fields
        }


@dataclass(frozen=True)
class Expression:
    """A CEL expression giving any value: a grouping key (`agent.id`), an aggregate's argument."""

    source: str
    program: Any = field(repr=False, compare=False)
    variables: tuple[str, ...]
    functions: tuple[str, ...]

    def value(self, activation: Activation) -> Any:
        try:
            return self.program.execute(activation.context)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise EvaluationError(str(exc)) from None


def compile_condition(source: str) -> Condition:
    program, names, called = _compile(source)
    return Condition(source=source, program=program, variables=names, functions=called)


def compile_expression(source: str) -> Expression:
    program, names, called = _compile(source)
    return Expression(source=source, program=program, variables=names, functions=called)


# A regular expression given as a literal: `comment.matches('...')`.
_REGEX_LITERAL = re.compile(r"""matches\(\s*('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\s*\)""")


def _compile(source: str) -> tuple[Any, tuple[str, ...], tuple[str, ...]]:
    try:
        program = cel.compile(source)
    except (ValueError, RuntimeError) as exc:
        raise ExpressionError(_clean_cel_message(str(exc))) from None
    # CEL's regular expressions are RE2-style (linear time, no catastrophic backtracking), but an
    # invalid one only fails when an event reaches it: try each literal now.
    for literal in _REGEX_LITERAL.findall(source):
        try:
            cel.compile(f"''.matches({literal})").execute(cel.Context({}, {}))
        except (ValueError, RuntimeError) as exc:
            detail = str(exc).split("regex parse error:", 1)[-1].strip()
            detail = " ".join(detail.split()).removesuffix(
                " Check function arguments and their types."
            )
            raise ExpressionError(f"invalid regular expression {literal}: {detail}") from None
    # CEL reports `math.abs(x)` as the variable `math` and the function `abs`: a namespace used
    # by a call is no variable, and the function is registered under its dotted name.
    used_namespaces = {name for name in program.variables() if name in NAMESPACES}
    names = tuple(
        name for name in program.variables() if name not in FUNCTIONS and name not in NAMESPACES
    )
    called = tuple(
        dotted
        for function in program.functions()
        for dotted in (function, *(f"{space}.{function}" for space in used_namespaces))
        if dotted in FUNCTIONS
    )
    return program, names, called


def functions_for(conditions: Iterable[Condition | Expression]) -> dict[str, Callable[..., Any]]:
    return {name: FUNCTIONS[name] for condition in conditions for name in condition.functions}


def _clean_cel_message(message: str) -> str:
    # cel-rust prefixes "Failed to parse expression '<source>': ERROR: <input>:"; the caller
    # already names the file and key, so keep only the position and the explanation.
    marker = "ERROR: <input>:"
    if marker in message:
        return "syntax error at " + message.split(marker, 1)[1].strip()
    return message
