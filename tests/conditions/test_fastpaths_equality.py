"""The Python form of `field == 'text'` / `field != null` gives exactly what CEL gives.

`where: survey == 'initial'` runs for every event; deciding it in Python saves building a CEL
context. These tests generate fields and literals and compare with CEL itself."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import cel
from hypothesis import given, settings
from hypothesis import strategies as st

from alert_engine.conditions.expressions import Activation, EvaluationError, compile_condition
from alert_engine.conditions.fastpaths import equality_condition

texts = st.one_of(
    st.sampled_from(["initial", "", "Initial", "initial ", "é", "gold"]),
    st.text(
        alphabet=st.characters(blacklist_characters="'\"\\", blacklist_categories=("Cc", "Cs")),
        max_size=8,
    ),
)
leaf_values = st.one_of(
    texts,
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["id", "tier"]), texts, max_size=2),
)


def cel_result(source: str, fields: dict[str, Any]) -> object:
    try:
        return cel.compile(source).execute(cel.Context(fields, {}))
    except (RuntimeError, TypeError, ValueError, LookupError):
        return EvaluationError


def ours(source: str, fields: dict[str, Any]) -> object:
    try:
        return compile_condition(source).evaluate(Activation(fields, {}))
    except EvaluationError:
        return EvaluationError


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["survey", "customer.tier"]),
    st.sampled_from(["==", "!="]),
    st.one_of(texts.map("'{}'".format), texts.map('"{}"'.format), st.just("null")),
    leaf_values,
    st.booleans(),
)
def test_field_compared_with_a_string_or_null_agrees_with_cel(
    path: str,
    op: str,
    literal: str,
    value: str | bool | float | list[int] | dict[str, str] | None,
    present: bool,
) -> None:
    source = f"{path} {op} {literal}"
    assert equality_condition(source) is not None
    fields: dict[str, Any] = {}
    if present:
        if path == "survey":
            fields["survey"] = value
        else:
            fields["customer"] = value if isinstance(value, dict) else {"tier": value}
    assert ours(source, fields) == cel_result(source, fields)


def test_a_timestamp_or_a_missing_field_is_left_to_cel() -> None:
    condition = equality_condition("time == 'x'")
    assert condition is not None
    assert condition.test({"time": datetime(2026, 1, 1, tzinfo=UTC)}) is None
    assert condition.test({}) is None
    assert ours("time == 'x'", {}) is EvaluationError  # CEL: no such variable


def test_only_plain_comparisons_take_the_python_form() -> None:
    for source in ["x == 'a\\'b'", "x == y", "null == 'a'", "x == 'a' && y", "size(x) == 'a'"]:
        assert equality_condition(source) is None
