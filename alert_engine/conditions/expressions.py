"""Rule conditions in the Common Expression Language (CEL), compiled once when rules load.

CEL is side-effect free, always terminates and has no access to Python: an ops-written condition
can read an event, never change or escape it. Per event the engine builds one `Activation` and runs
every compiled program against it; building the activation costs far more than running a program,
so it happens once per event, not once per rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import cel

from alert_engine.conditions.fastpaths import (
    PLAIN_VALUES,
    EqualityCondition,
    NumericCondition,
    conjuncts,
    equality_condition,
    field_path,
    numeric_condition,
    plain_number,
)
from alert_engine.conditions.functions import FUNCTIONS, NAMESPACES
from alert_engine.conditions.regexes import (
    MATCH_FUNCTION,
    RegexError,
    check_pattern,
    rewrite_matches,
)
from alert_engine.problems import AlertEngineError


class ExpressionError(AlertEngineError, ValueError):
    """A condition that does not compile; `message` is CEL's own explanation."""


class EvaluationError(AlertEngineError, RuntimeError):
    """A condition that could not be decided for one event, e.g. it reads a missing field."""


# What running a CEL program raises for an event it cannot decide: a missing map key is a
# KeyError.
CEL_ERRORS = (RuntimeError, TypeError, ValueError, LookupError)


class Activation:
    """The variables one event exposes to conditions, converted to CEL values once, when a
    condition first needs them: the Python forms of conditions and field paths read `fields`."""

    __slots__ = ("_context", "_functions", "_variables", "fields", "memo")

    def __init__(
        self,
        fields: Mapping[str, Any],
        functions: Mapping[str, Callable[..., Any]],
        variables: Iterable[str] | None = None,
    ) -> None:
        self.fields = fields
        # Values computed from the event, by what computed them: shared by the event's groups.
        self.memo: dict[Any, Any] = {}
        self._functions = functions
        self._variables = variables
        self._context: Any = None

    @property
    def context(self) -> Any:
        if self._context is None:
            # Only the functions some condition calls, and only the fields some condition reads
            # (`variables`, all of them if not given): the context converts every value it is
            # given to CEL up front (about 1.5 µs a string), more than running the conditions.
            fields, variables = self.fields, self._variables
            given = (
                dict(fields)
                if variables is None
                else {name: fields[name] for name in variables if name in fields}
            )
            functions = self._functions
            self._context = cel.Context(given, dict(functions) if functions else None)
        return self._context


@dataclass(frozen=True)
class _Compiled:
    """What a condition and an expression share: the CEL program, the variables it reads and the
    functions it calls, and the same program as a Python function if it only compares numbers
    (`rating <= 2`; see `NumericCondition`), None otherwise."""

    source: str
    program: Any = field(repr=False, compare=False)
    variables: tuple[str, ...]
    functions: tuple[str, ...]
    numeric: NumericCondition | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Condition(_Compiled):
    # Top-level `&&` operands that only compare numbers (`rating <= 2` in
    # `rating <= 2 && comment.contains('wait')`): when one is false, so is the condition (CEL's
    # `&&` is false if either side is, whatever the other side gives, even an error).
    guards: tuple[NumericCondition, ...] = field(default=(), repr=False, compare=False)
    # The same condition as a Python function, if it compares a field with a string or null
    # (`survey == 'initial'`, `nps != null`; see `EqualityCondition`); None otherwise.
    equality: EqualityCondition | None = field(default=None, repr=False, compare=False)

    def evaluate(self, activation: Activation) -> bool:
        equality = self.equality
        if equality is not None:
            decided = equality.test(activation.fields)
            if decided is not None:
                return decided
        # The fast path inline, here and in `Expression.value`: a shared method would cost a call
        # per rule per event.
        numeric = self.numeric
        if numeric is not None:
            fields = activation.fields
            # `all(plain_number(...))` without a generator: this runs per rule per event.
            for name in numeric.names:
                if not plain_number(fields.get(name)):
                    break
            else:
                return numeric.test(fields)
        try:
            result = self.program.execute(activation.context)
        except CEL_ERRORS as exc:
            raise EvaluationError(_cel_error(exc)) from None
        if not isinstance(result, bool):
            raise EvaluationError(f"condition gave {type(result).__name__}, not a boolean")
        return result

    def values(self, activation: Activation) -> dict[str, Any]:
        """The event values the condition read: what made it fire, for the alert."""
        return {
            name: activation.fields[name] for name in self.variables if name in activation.fields
        }


@dataclass(frozen=True)
class Expression(_Compiled):
    """A CEL expression giving any value: a grouping key (`agent.id`), an aggregate's argument."""

    # The field names, if the expression is a field path (`agent.id`, `team`).
    path: tuple[str, ...] | None = field(default=None, repr=False, compare=False)

    def value(self, activation: Activation) -> Any:
        fields = activation.fields
        path = self.path
        if path is not None:
            # What CEL would give, read from the fields directly when it can be: a path through
            # maps to a plain value. Anything else (a missing key, a null on the way, a
            # timestamp) is left to CEL, errors included.
            found: Any = fields
            for name in path:
                if found.__class__ is not dict or name not in found:
                    break
                found = found[name]
            else:
                if found is None or (
                    found.__class__ in PLAIN_VALUES
                    and (found.__class__ is not int or -(2**63) <= found < 2**63)
                ):
                    return found
        numeric = self.numeric
        if numeric is not None:
            for name in numeric.names:
                if not plain_number(fields.get(name)):
                    break
            else:
                return numeric.test(fields)
        try:
            return self.program.execute(activation.context)
        except CEL_ERRORS as exc:
            raise EvaluationError(_cel_error(exc)) from None


def compile_condition(source: str) -> Condition:
    program, names, called = _compile(source)
    numeric = numeric_condition(source)
    parts = conjuncts(source)
    return Condition(
        source=source,
        program=program,
        variables=names,
        functions=called,
        numeric=numeric,
        equality=equality_condition(source),
        # A condition that is one comparison guards itself.
        guards=tuple(
            guard for part in parts for guard in [numeric_condition(part)] if guard is not None
        )
        if parts is not None
        else (numeric,)
        if numeric is not None
        else (),
    )


def compile_expression(source: str) -> Expression:
    program, names, called = _compile(source)
    return Expression(
        source=source,
        program=program,
        variables=names,
        functions=called,
        numeric=numeric_condition(source),
        path=field_path(source),
    )


def _compile(source: str) -> tuple[Any, tuple[str, ...], tuple[str, ...]]:
    # `matches` runs on RE2, compiled once and bounded in size (see `conditions.regexes`).
    rewritten = rewrite_matches(source)
    try:
        program = cel.compile(rewritten.source)
    except (ValueError, RuntimeError) as exc:
        message = str(exc)
        try:
            # The error as the author's own text gives it: positions in what they wrote.
            cel.compile(source)
        except (ValueError, RuntimeError) as own:
            message = str(own)
        raise ExpressionError(_clean_cel_message(message)) from None
    # A literal pattern that RE2 refuses would only fail when an event reaches it: check it now.
    for literal in rewritten.literals:
        try:
            pattern = cel.compile(literal).execute(cel.Context({}, {}))
        except (ValueError, RuntimeError) as exc:
            raise ExpressionError(_clean_cel_message(str(exc))) from None
        if not isinstance(pattern, str):
            raise ExpressionError(f"matches takes a string pattern, not {literal}")
        try:
            check_pattern(pattern)
        except RegexError as exc:
            raise ExpressionError(f"invalid regular expression {literal}: {exc}") from None
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


def _cel_error(exc: Exception) -> str:
    # The author wrote `matches`: name it, not the function it was rewritten to.
    return str(exc).replace(MATCH_FUNCTION, "matches")


def functions_for(conditions: Iterable[Condition | Expression]) -> dict[str, Callable[..., Any]]:
    return {name: FUNCTIONS[name] for condition in conditions for name in condition.functions}


def _clean_cel_message(message: str) -> str:
    # cel-rust prefixes "Failed to parse expression '<source>': ERROR: <input>:"; the caller
    # already names the file and key, so keep only the position and the explanation.
    marker = "ERROR: <input>:"
    if marker in message:
        return "syntax error at " + message.split(marker, 1)[1].strip()
    return message
