"""The Python form of conditions that only compare numbers gives exactly what CEL gives.

Windowed rules' conditions run through it whenever the aggregates they read are plain numbers;
these tests generate conditions and values and compare with CEL itself."""

from __future__ import annotations

import math

import cel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alert_engine.conditions.expressions import (
    Activation,
    EvaluationError,
    compile_condition,
    compile_expression,
)
from alert_engine.conditions.fastpaths import EXACT_INT, conjuncts, numeric_condition, plain_number

NAMES = ("a", "b", "low")

ints = st.one_of(
    st.integers(-1000, 1000),
    st.sampled_from([EXACT_INT, EXACT_INT - 1, -EXACT_INT, EXACT_INT + 1, 2**62]),
)
floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.sampled_from([0.5, 1.0, -0.0, 2.9999999999999996, float(EXACT_INT), 1e300]),
)
literals = st.one_of(
    ints.filter(lambda n: n >= 0).map(str),
    floats.filter(lambda x: math.copysign(1, x) > 0 and not math.isinf(x)).map(repr),
)
operands = st.one_of(
    st.sampled_from(NAMES), literals, literals.filter(lambda text: text != "0").map("-{}".format)
)
comparisons = st.builds(
    "{} {} {}".format, operands, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), operands
)
conditions = st.recursive(
    comparisons,
    lambda inner: st.one_of(
        inner.map("({})".format),
        inner.map("!({})".format),
        st.builds("{} && {}".format, inner, inner),
        st.builds("{} || {}".format, inner, inner),
    ),
    max_leaves=6,
)
values = st.one_of(
    ints,
    floats,
    st.sampled_from([math.nan, math.inf, -math.inf, None, True, False, "text"]),
)


@settings(max_examples=400, deadline=None)
@given(conditions, st.fixed_dictionaries({name: values for name in NAMES}))
def test_the_python_form_agrees_with_cel_whenever_it_is_used(
    source: str, given_values: dict[str, object]
) -> None:
    numeric = numeric_condition(source)
    literal_ints = [
        int(token)
        for token in source.replace("(", " ").replace(")", " ").replace("-", " ").split()
        if token.isdigit()
    ]
    if any(n > EXACT_INT for n in literal_ints):
        assert numeric is None  # a literal a double cannot hold exactly: CEL decides
        return
    assert numeric is not None, source
    if not all(plain_number(given_values[name]) for name in numeric.names):
        return  # CEL decides
    expected = cel.compile(source).execute(cel.Context(dict(given_values), None))
    assert numeric.test(given_values) is expected


@pytest.mark.parametrize(
    "source",
    [
        "!a < 1",  # CEL negates `a` (a number: an error), not the comparison
        "a < 1 < 2",  # (a < 1) < 2 compares a boolean with a number: an error
        "(a) < 1",
        "a + 1 < 2",
        "-a < 1",
        "a < 1u",
        "a.b < 1",
        "size(a) < 1",
        "key == 'x'",
        "true && a < 1",
        "int < 1",
        "007 < a",
        "a < 1e999",
        "a < 0x10",
        "a <",
        "",
    ],
)
def test_anything_beyond_comparing_numbers_is_left_to_cel(source: str) -> None:
    assert numeric_condition(source) is None


def test_plain_numbers() -> None:
    assert plain_number(3) and plain_number(-2.5) and plain_number(math.inf)
    assert not plain_number(math.nan)
    assert not plain_number(True)
    assert not plain_number(None)
    assert not plain_number(EXACT_INT + 1)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("rating <= 2 && comment.contains('late')", ["rating <= 2 ", " comment.contains('late')"]),
        ("a && (b || c) && d", ["a ", " (b || c) ", " d"]),
        ("team == 'a && b' && nps < 3", ["team == 'a && b' ", " nps < 3"]),
        ('x == """&&""" && y', ['x == """&&""" ', " y"]),
        ("[1].exists(x, x > 0 && x < 2) && r < 1", ["[1].exists(x, x > 0 && x < 2) ", " r < 1"]),
        ("a && b || c", None),  # (a && b) || c
        ("a && b ? c : d", None),  # (a && b) ? c : d
        ("a < 1", None),
        ("a == 'it\\'s' && b", None),  # escapes: not split
        ("a && b // comment", None),
    ],
)
def test_top_level_conjuncts(source: str, expected: list[str] | None) -> None:
    assert conjuncts(source) == expected


def test_a_false_operand_makes_the_whole_conjunction_false_in_cel_even_beside_an_error() -> None:
    # What skipping a rule by its guard relies on.
    context = cel.Context({"rating": 4, "comment": None}, None)
    for source in ("rating <= 2 && comment.size() > 0", "comment.size() > 0 && rating <= 2"):
        assert cel.compile(source).execute(context) is False
    assert [guard.source for guard in compile_condition("x.y == 1 && rating <= 2").guards] == [
        "rating <= 2"
    ]


path_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from("ab"), inner),
    max_leaves=4,
)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["a", "a.b", "a . b", "a.b.a", "b.a"]),
    st.dictionaries(st.sampled_from("ab"), path_values),
)
def test_a_field_path_reads_what_cel_reads_or_leaves_it_to_cel(
    source: str, fields: dict[str, object]
) -> None:
    expression = compile_expression(source)
    assert expression.path is not None
    activation = Activation(fields, {})
    try:
        expected: object = cel.compile(source).execute(cel.Context(dict(fields), None))
    except (RuntimeError, TypeError, ValueError, LookupError):
        expected = EvaluationError
    try:
        found: object = expression.value(activation)
    except EvaluationError:
        found = EvaluationError
    assert same_value(found, expected)


def same_value(found: object, expected: object) -> bool:
    """Equal and of the same type all the way down, NaN being the same as NaN (`[nan] ==
    [nan]` only holds when both hold the same float object)."""
    if type(found) is not type(expected):
        return False
    if isinstance(expected, float) and math.isnan(expected):
        return math.isnan(found)  # type: ignore[arg-type]
    if isinstance(expected, list) and isinstance(found, list):
        return len(found) == len(expected) and all(
            same_value(a, b) for a, b in zip(found, expected, strict=True)
        )
    if isinstance(expected, dict) and isinstance(found, dict):
        return found.keys() == expected.keys() and all(
            same_value(found[k], expected[k]) for k in expected
        )
    return found == expected


def test_only_field_paths_are_read_directly() -> None:
    assert compile_expression("agent.id").path == ("agent", "id")
    for source in ("agent.id + 'x'", "size(team)", "math.x", "agent[0]", "true", "a.b()"):
        assert compile_expression(source).path is None
