"""Conditions decided in Python where CEL would give the same answer, without building a CEL
context for the event: comparisons of numbers (`average < 3.0 && responses >= 10`), a field
compared with a string or null (`survey == 'initial'`), and field paths (`agent.id`).

Each form says when it applies (`plain_number`, `EqualityCondition.test` returning None) and
leaves everything else, errors included, to CEL; tests hold each to CEL's own results.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from alert_engine.conditions.functions import FUNCTIONS, NAMESPACES

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
        return _any(self.joined("||", self.conjunction))

    def conjunction(self) -> Test:
        return _all(self.joined("&&", self.term))

    def joined(self, symbol: str, part: Callable[[], Test]) -> list[Test]:
        """`part (symbol part)*`: the operands of one level of precedence."""
        parts = [part()]
        while self.peek() == symbol:
            self.take()
            parts.append(part())
        return parts

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


# Values that CEL hands back exactly as Python gave them (an int only within 64 bits).
PLAIN_VALUES = frozenset({str, int, float, bool})
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
