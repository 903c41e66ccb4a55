"""Property-based tests over untrusted input: event payloads and rule files.

Whatever arrives, the engine answers with a clear rejection (`EventRejected`, `RulesetError`)
or a valid result, never a crash and never an accepted value outside the schema. Examples are
bounded so the whole file runs in a few seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alert_engine.conditions.sentiment import sentiment
from alert_engine.evaluate import Evaluator
from alert_engine.events import EventRejected, Rating, Stream, decode_event
from alert_engine.rules.load import RulesetError, load_rule_files
from alert_engine.windows.aggregations import KINDS
from tests.factories import interaction, rating

RULES_DIR = Path(__file__).parents[1] / "rules"
MAX_BYTES = 64 * 1024
bounded = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
streams = st.sampled_from(list(Stream))


def decode(stream: Stream, raw: bytes) -> Any:
    return decode_event(stream, raw, max_bytes=MAX_BYTES)


@bounded
@given(streams, st.binary(max_size=300))
def test_arbitrary_bytes_are_accepted_or_rejected_with_a_reason(stream: Stream, raw: bytes) -> None:
    try:
        decode(stream, raw)
    except EventRejected as rejected:
        assert rejected.reason in {"empty", "not_json", "not_object", "invalid", "too_large"}
        assert rejected.detail


def valid_event(stream: Stream) -> dict[str, Any]:
    return rating() if stream is Stream.RATINGS else interaction()


@bounded
@given(streams, st.data())
def test_an_event_with_any_field_set_to_any_value_never_crashes_and_round_trips(
    stream: Stream, data: st.DataObject
) -> None:
    event = valid_event(stream)
    field = data.draw(st.sampled_from([*event, "customer", "extra_field"]), label="field")
    event[field] = data.draw(json_values, label="value")
    try:
        decoded = decode(stream, orjson.dumps(event))
    except EventRejected as rejected:
        assert rejected.reason == "invalid"
        assert field in rejected.detail or "customer" in rejected.detail
        return
    # Accepted: it serialises back to an event that decodes to the same thing.
    again = decode(stream, orjson.dumps(decoded.model_dump(mode="json")))
    assert again == decoded
    if isinstance(decoded, Rating):
        # Nothing outside the schema got in: strict types and ranges.
        assert type(decoded.rating) is int and 1 <= decoded.rating <= 5
        assert decoded.time.tzinfo is not None


@bounded
@given(st.dictionaries(st.text(max_size=12), json_values, max_size=12))
def test_arbitrary_json_objects_are_accepted_only_with_every_required_field(
    obj: dict[str, object],
) -> None:
    try:
        decoded = decode(Stream.RATINGS, orjson.dumps(obj))
    except EventRejected as rejected:
        assert rejected.reason == "invalid"
        return
    for required in ("id", "rating", "customer", "agent", "team", "channel", "time"):
        assert required in obj
    assert isinstance(decoded, Rating)


@bounded
@given(
    st.integers(min_value=-5, max_value=12),
    st.text(max_size=80),
    st.one_of(st.none(), st.sampled_from(["gold", "silver", ""])),
)
def test_evaluating_any_accepted_rating_raises_nothing_and_alerts_only_on_low_stars(
    stars: int, comment: str, tier: str | None
) -> None:
    evaluator = _evaluator()
    event = rating(rating=stars, comment=comment, time=datetime.now(UTC).isoformat())
    if tier is not None:
        event["customer"] = {**event["customer"], "tier": tier}
    try:
        alerts = evaluator.evaluate(Stream.RATINGS, orjson.dumps(event))
    except EventRejected:
        assert not 1 <= stars <= 5
        return
    # The shipped rules: 1-2 stars, or 3 stars with a clearly negative comment ("ERROR" is).
    expected = (
        ["negative-rating"]
        if stars <= 2
        else ["negative-comment"]
        if stars == 3 and sentiment(comment) < -0.4
        else []
    )
    assert [alert.rule for alert in alerts] == expected


_evaluators: list[Evaluator] = []


def _evaluator() -> Evaluator:
    if not _evaluators:
        from alert_engine.rules.load import load_ruleset

        _evaluators.append(Evaluator(load_ruleset(RULES_DIR), max_event_bytes=MAX_BYTES))
    return _evaluators[0]


RULE_KEYS = [
    "name",
    "description",
    "source",
    "condition",
    "severity",
    "route",
    "enabled",
    "labels",
    "rules",
]
rule_values = (
    json_values
    | st.sampled_from(["ratings", "interactions", "high", "low", "default", "r-1", "x"])
    | st.sampled_from(["rating <= 2", "rating <=", "ratng < 1", "comment.contains('x')", "1 +"])
)
rule_mappings = st.dictionaries(
    st.sampled_from(RULE_KEYS) | st.text(max_size=8), rule_values, max_size=8
)


def load_text(tmp_path: Path, text: str) -> None:
    path = tmp_path / "rule.yaml"
    path.write_text(text)
    load_rule_files([path])


@settings(max_examples=200, deadline=None)
@given(rule_mappings)
def test_any_yaml_mapping_as_a_rule_file_loads_or_fails_with_located_problems(
    tmp_path_factory: pytest.TempPathFactory, doc: dict[str, object]
) -> None:
    tmp_path = tmp_path_factory.mktemp("rules")
    try:
        load_text(tmp_path, yaml.safe_dump(doc))
    except RulesetError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert str(problem).startswith(str(tmp_path / "rule.yaml") + ":")
        return
    # Loaded: it named a rule, on a real stream, with a condition that compiled.
    assert {"name", "source", "condition"} <= set(doc) or "rules" in doc


@bounded
@given(st.text(max_size=200))
def test_any_text_as_a_rule_file_loads_or_fails_with_located_problems(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    tmp_path = tmp_path_factory.mktemp("rules")
    try:
        load_text(tmp_path, text)
    except RulesetError as exc:
        assert exc.problems


@given(
    function=st.sampled_from(sorted(KINDS)),
    values=st.lists(st.integers(min_value=0, max_value=10), max_size=30),
    split=st.integers(min_value=0, max_value=30),
)
def test_two_batches_merged_count_as_one_batch(
    function: str, values: list[int], split: int
) -> None:
    """The input agent counts a batch per window and the windowed agent merges it in: for every
    aggregate, counting in two batches gives what counting everything in one does."""
    kind = KINDS[function]

    def counted(batch: list[int]) -> Any:
        state = kind.initial()
        for value in batch:
            state = kind.add(state, value > 5 if function == "count_if" else value)
        return state

    merged = kind.merge(counted(values[:split]), counted(values[split:]))
    assert kind.result(merged) == kind.result(counted(values))
    assert kind.accepts(merged)
