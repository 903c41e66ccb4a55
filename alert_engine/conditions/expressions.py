"""Rule conditions in the Common Expression Language (CEL), compiled once when rules load.

CEL is side-effect free, always terminates and has no access to Python: an ops-written condition
can read an event, never change or escape it. Per event the engine builds one `Activation` and runs
every compiled program against it; building the activation costs far more than running a program,
so it happens once per event, not once per rule.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import cel
from cel.stdlib import STDLIB_FUNCTIONS

from alert_engine.conditions.regexes import (
    MATCH_FUNCTION,
    RegexError,
    check_pattern,
    matches,
    rewrite_matches,
)
from alert_engine.conditions.sentiment import sentiment
from alert_engine.problems import AlertEngineError

# Functions available to conditions beyond CEL's built-ins, by the name a condition calls them
# with: cel-go's string, math, list and set extensions (`lowerAscii`, `split`, `math.abs`, ...),
# and `sentiment(text)`, VADER's compound score from -1 (negative) to 1 (positive).
FUNCTIONS: dict[str, Callable[..., Any]] = {
    **STDLIB_FUNCTIONS,
    "sentiment": sentiment,
    MATCH_FUNCTION: matches,
}
# The prefixes of namespaced functions (`math`, `sets`, `base64`, ...).
NAMESPACES = frozenset(name.split(".", 1)[0] for name in FUNCTIONS if "." in name)


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
class Condition:
    source: str
    program: Any = field(repr=False, compare=False)
    variables: tuple[str, ...]
    functions: tuple[str, ...]
    # The same condition as a Python function, if it only compares numbers (see
    # `NumericCondition`); None otherwise.
    numeric: NumericCondition | None = field(default=None, repr=False, compare=False)
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
class Expression:
    """A CEL expression giving any value: a grouping key (`agent.id`), an aggregate's argument."""

    source: str
    program: Any = field(repr=False, compare=False)
    variables: tuple[str, ...]
    functions: tuple[str, ...]
    # The Python form, if the expression only compares numbers (`rating <= 2`).
    numeric: NumericCondition | None = field(default=None, repr=False, compare=False)
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
                    found.__class__ in _PLAIN_VALUES
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


# Values that CEL hands back exactly as Python gave them (an int only within 64 bits).
_PLAIN_VALUES = frozenset({str, int, float, bool})
_PATH = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*(?:\s*\.\s*[A-Za-z_][A-Za-z0-9_]*)*)\s*$")


def field_path(source: str) -> tuple[str, ...] | None:
    """`agent.id` -> ("agent", "id"): an expression that only selects fields."""
    match = _PATH.match(source)
    if match is None:
        return None
    names = tuple(name.strip() for name in match.group(1).split("."))
    if names[0] in _CEL_WORDS or names[0] in NAMESPACES or names[0] in FUNCTIONS:
        return None
    return names


# `survey == 'initial'`, `customer.tier != "gold"`, `nps != null`: a field path compared with a
# string without escapes, or with null.
_EQUALITY = re.compile(
    r"""^\s*(?P<path>[A-Za-z_][A-Za-z0-9_]*(?:\s*\.\s*[A-Za-z_][A-Za-z0-9_]*)*)\s*"""
    r"""(?P<op>==|!=)\s*(?:'(?P<single>[^'\\\n]*)'|"(?P<double>[^"\\\n]*)"|(?P<null>null))\s*$"""
)
# Values CEL compares with a string or null as Python does: equal only to the same string, or
# (null) only to null; a value of another type is simply unequal (CEL's heterogeneous equality).
_EQUALITY_VALUES = frozenset({str, int, float, bool, dict, list, type(None)})


@dataclass(frozen=True)
class EqualityCondition:
    """A field compared with a string or null, decided in Python when CEL would agree: the
    condition that most often builds a CEL context for nothing else."""

    path: tuple[str, ...]
    literal: str | None
    negated: bool

    def test(self, fields: Mapping[str, Any]) -> bool | None:
        """True or False, or None to leave the decision (and any error) to CEL: a missing field
        or a value of a type CEL sees differently (a timestamp)."""
        found: Any = fields
        for name in self.path:
            if found.__class__ is not dict or name not in found:
                return None
            found = found[name]
        if found.__class__ not in _EQUALITY_VALUES:
            return None
        literal = self.literal
        equal = found is None if literal is None else found.__class__ is str and found == literal
        return equal is not self.negated


def equality_condition(source: str) -> EqualityCondition | None:
    match = _EQUALITY.match(source)
    if match is None:
        return None
    path = field_path(match.group("path"))
    if path is None or path[0] in _CEL_WORDS:
        return None
    literal = match.group("single")
    if literal is None:
        literal = match.group("double")
    return EqualityCondition(path, literal, negated=match.group("op") == "!=")


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


# Windowed rules' conditions over their aggregates are mostly comparisons of numbers
# (`average < 3.0 && responses >= 10`), evaluated once per rule and window for every event of the
# group: building a CEL context for each costs more than all the rest of the window update. Such a
# condition is also compiled to a Python function, used only when every name it reads holds a
# plain number (an int within 2**53, a float that is not NaN): then CEL's comparisons, across int
# and double too, give exactly Python's, and `&&`, `||`, `!` see only booleans. Anything else
# (a null average, text, a function call, arithmetic) is left to CEL.
_NUMERIC_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\d+)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op><=|>=|==|!=|&&|\|\||[<>!()-]))"
)
_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
# Reserved words and type names: never read as a number.
_CEL_WORDS = frozenset(
    [
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
        "int",
        "uint",
        "double",
        "bool",
        "string",
        "bytes",
        "list",
        "map",
        "type",
        "null_type",
        "dyn",
    ]
)
EXACT_INT = 2**53

Values = Mapping[str, Any]
Test = Callable[[Values], bool]


@dataclass(frozen=True)
class NumericCondition:
    """A condition that only compares numbers, as a Python function of the values it reads."""

    source: str
    test: Test
    names: frozenset[str]


def plain_number(value: Any) -> bool:
    """A value the numeric form of a condition may read: an int that a double holds exactly, or
    a float that is not NaN (bool, null and everything else go to CEL)."""
    kind = value.__class__
    if kind is float:
        return bool(value == value)
    return kind is int and -EXACT_INT <= value <= EXACT_INT


class _NotNumeric(Exception):
    pass


def numeric_condition(source: str) -> NumericCondition | None:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(source):
        match = _NUMERIC_TOKEN.match(source, position)
        if match is None:
            if source[position:].strip():
                return None
            break
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        position = match.end()
    try:
        parser = _NumericParser(tokens)
        test = parser.expression()
        if parser.position != len(tokens):
            raise _NotNumeric
    except _NotNumeric:
        return None
    return NumericCondition(source.strip(), test, frozenset(parser.names))


class _NumericParser:
    """CEL's grammar for `||`, `&&`, `!`, parentheses and one comparison of two operands (a
    name, a number, a negated number); anything else is not numeric."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.position = 0
        self.names: set[str] = set()

    def peek(self) -> str | None:
        return self.tokens[self.position][1] if self.position < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        if self.position >= len(self.tokens):
            raise _NotNumeric
        token = self.tokens[self.position]
        self.position += 1
        return token

    def expression(self) -> Test:
        parts = [self.conjunction()]
        while self.peek() == "||":
            self.take()
            parts.append(self.conjunction())
        return _any(parts)

    def conjunction(self) -> Test:
        parts = [self.term()]
        while self.peek() == "&&":
            self.take()
            parts.append(self.term())
        return _all(parts)

    def term(self) -> Test:
        if self.peek() == "!":
            self.take()
            # CEL's `!` binds tighter than a comparison: `!a < 1` negates `a`, a number (an
            # error); only a negated parenthesis or negation is numeric.
            if self.peek() not in ("!", "("):
                raise _NotNumeric
            inner = self.term()
            return lambda values: not inner(values)
        if self.peek() == "(":
            self.take()
            inner = self.expression()
            if self.take() != ("op", ")"):
                raise _NotNumeric
            return inner
        left = self.operand()
        kind, op = self.take()
        compare = _COMPARISONS.get(op) if kind == "op" else None
        if compare is None:
            raise _NotNumeric
        right = self.operand()
        return _comparison(compare, left, right)

    def operand(self) -> tuple[bool, Any]:
        """(True, name) or (False, number)."""
        kind, text = self.take()
        sign = 1
        if (kind, text) == ("op", "-"):
            sign = -1
            kind, text = self.take()
        if kind == "name" and sign == 1 and text not in _CEL_WORDS:
            self.names.add(text)
            return True, text
        if kind != "number" or (len(text) > 1 and text[0] == "0" and text[1].isdigit()):
            raise _NotNumeric
        if text.isdigit():
            number: int | float = int(text)
            if number > EXACT_INT:
                raise _NotNumeric
        else:
            number = float(text)
            if number in (float("inf"), float("-inf")):
                raise _NotNumeric
        return False, sign * number


def _comparison(
    compare: Callable[[Any, Any], bool], left: tuple[bool, Any], right: tuple[bool, Any]
) -> Test:
    (left_is_name, a), (right_is_name, b) = left, right
    if left_is_name and right_is_name:
        return lambda values: compare(values[a], values[b])
    if left_is_name:
        return lambda values: compare(values[a], b)
    if right_is_name:
        return lambda values: compare(a, values[b])
    result = compare(a, b)
    return lambda values: result


def _all(parts: list[Test]) -> Test:
    if len(parts) == 1:
        return parts[0]
    first, rest = parts[0], _all(parts[1:])
    return lambda values: first(values) and rest(values)


def _any(parts: list[Test]) -> Test:
    if len(parts) == 1:
        return parts[0]
    first, rest = parts[0], _any(parts[1:])
    return lambda values: first(values) or rest(values)


def conjuncts(source: str) -> list[str] | None:
    """The operands of a condition's top-level `&&` chain, or None if it is not one (a top-level
    `||` or `?:` binds looser than `&&`). Strings and brackets are skipped; a condition with a
    backslash or `//` comment is not split."""
    if "\\" in source:
        return None
    parts: list[str] = []
    depth = 0
    start = 0
    position = 0
    length = len(source)
    while position < length:
        char = source[position]
        if char in "'\"":
            quote = char * 3 if source.startswith(char * 3, position) else char
            end = source.find(quote, position + len(quote))
            if end < 0:
                return None
            position = end + len(quote)
            continue
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif source.startswith("//", position):
            return None
        elif depth == 0:
            if source.startswith("&&", position):
                parts.append(source[start:position])
                position += 2
                start = position
                continue
            if source.startswith("||", position) or char in "?:":
                return None
        position += 1
    parts.append(source[start:])
    return parts if len(parts) > 1 else None
