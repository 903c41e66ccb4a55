"""Properties of the event edge over generated payloads: what it refuses, it refuses for the
reason a slower, obviously right check gives; what it accepts, every later stage can encode."""

from __future__ import annotations

import functools
import json
import random
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from alert_engine.alerts import Alert
from alert_engine.edge import event_seconds
from alert_engine.evaluate import Evaluator
from alert_engine.events import EventRejected, Stream, duplicate_key, validate_event
from alert_engine.rules.load import load_ruleset
from alert_engine.windows.hop import HopBuilder, ReceivedBatch
from alert_engine.windows.store import MemoryWindowStore
from tests.factories import encode, rating

bounded = settings(max_examples=100, deadline=None)

# Keys from a small alphabet, so that objects often repeat one; colons inside strings and keys
# are what the fast duplicate check counts around.
keys = st.text(alphabet="ab:é", max_size=3)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet='a:\\"é\n', max_size=6)
)
# A JSON object as written: a list of members, so the same key may appear twice.
Written = Any
written = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3).map(lambda items: ("array", items))
        | st.lists(st.tuples(keys, children), max_size=4).map(lambda pairs: ("object", pairs))
    ),
    max_leaves=12,
)


def write(value: Written, escape: random.Random) -> str:
    """JSON text of `value`, each string written plainly or with escapes (a colon as `\\u003a`,
    anything else as `\\u00XX`), as different producers do."""
    if isinstance(value, tuple) and value[0] == "array":
        return "[" + ",".join(write(item, escape) for item in value[1]) + "]"
    if isinstance(value, tuple) and value[0] == "object":
        return (
            "{" + ",".join(f"{text(key, escape)}:{write(item, escape)}" for key, item in value[1])
        ) + "}"
    if isinstance(value, str):
        return text(value, escape)
    return json.dumps(value)


def text(value: str, escape: random.Random) -> str:
    if escape.random() < 0.3:
        return '"' + "".join(f"\\u{ord(char):04x}" for char in value) + '"'
    return json.dumps(value, ensure_ascii=escape.random() < 0.5)


def reference_duplicate(raw: bytes) -> bool:
    found = False

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal found
        found = found or len({key for key, _ in pairs}) < len(pairs)
        return dict(pairs)

    json.loads(raw, object_pairs_hook=hook)
    return found


@bounded
@given(st.lists(st.tuples(keys, written), max_size=5), st.randoms(use_true_random=False))
def test_duplicate_keys_are_found_exactly_when_the_standard_parser_sees_them(
    members: list[tuple[str, Written]], escape: random.Random
) -> None:
    raw = write(("object", members), escape).encode()
    parsed = orjson.loads(raw)
    found = duplicate_key(raw, parsed)
    assert (found is not None) == reference_duplicate(raw)


RULES_DIR = Path(__file__).parents[1] / "rules"
MAX_BYTES = 64 * 1024
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
).map(orjson.dumps)
# Arrays or objects nested to any depth up to past what orjson parses (1,024 levels).
deep_values = st.tuples(st.integers(min_value=1, max_value=1100), st.booleans()).map(
    lambda shape: (
        (b'{"a":' * shape[0] + b"1" + b"}" * shape[0])
        if shape[1]
        else (b"[" * shape[0] + b"1" + b"]" * shape[0])
    )
)


@functools.cache
def shipped_rules() -> Evaluator:
    return Evaluator(load_ruleset(RULES_DIR), max_event_bytes=MAX_BYTES)


@settings(max_examples=120, deadline=None)
@given(
    st.sampled_from(["x", "store", "customer"]),
    json_values | deep_values,
    st.integers(min_value=1, max_value=5),
)
def test_every_event_the_edge_accepts_every_later_stage_can_encode(
    field: str, value: bytes, stars: int
) -> None:
    """An accepted event is encoded in its alerts (the `alerts` topic, the outbox), in the
    `windows` record, and read back from it by the windowed agent: none of them may fail."""
    evaluator = shipped_rules()
    base = encode(rating(id="r-1", rating=stars, agent={"id": "a-1"}))
    if field == "customer":
        raw = base.replace(b'"customer":{', b'"customer":{"extra":' + value + b",")
    else:
        raw = base[:-1] + b',"' + field.encode() + b'":' + value + b"}"
    try:
        outcome = evaluator.process(Stream.RATINGS, raw)
    except EventRejected as rejected:
        # Too deep for the edge's limit, or for orjson's parser (1,024 levels): "not_json".
        assert rejected.reason in {"invalid", "not_json"}
        return
    for alert in outcome.alerts:
        assert Alert.from_json(alert.to_json()).event == alert.event
        orjson.dumps({"alert": alert.model_dump(mode="json")})  # an outbox line
    hop = HopBuilder(
        Stream.RATINGS, 4, evaluator.inputs_version, fold=partial(evaluator.fold, Stream.RATINGS)
    )
    hop.add(
        raw,
        [(group.grouping, group.key, group.inputs) for group in outcome.regroups],
        outcome.timestamp,
        outcome.watermark,
        0,
    )
    store = MemoryWindowStore(evaluator.ruleset.windows())
    for batch in hop.batches():
        received = ReceivedBatch.from_json(batch.to_json())
        assert all(validate_event(Stream.RATINGS, event) for event in received.events)
        for alert in evaluator.windowed_batch(received, store, partition=batch.partition):
            Alert.from_json(alert.to_json())


TIMESPECS = ["auto", "seconds", "milliseconds", "microseconds", "minutes"]
event_times = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones()
)
time_texts = st.one_of(
    st.tuples(event_times, st.sampled_from(["T", " ", "t"]), st.sampled_from(TIMESPECS)).map(
        lambda shape: shape[0].isoformat(sep=shape[1], timespec=shape[2])
    ),
    event_times.map(lambda time: time.isoformat().replace("+00:00", "Z")),
    st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.]{2,15}(Z|[+-][0-9:]{2,6})?\Z"),
    st.floats(min_value=-1e11, max_value=1e11) | st.integers(-(2**40), 2**40),
    st.text(max_size=30),
)


@settings(max_examples=300, deadline=None)
@given(time_texts)
def test_the_edge_reads_every_event_time_as_the_schema_does(value: str) -> None:
    """The edge compares times with the broker's before the event is validated: for any value
    the schema reads as a time, it must read the same instant (else an event could slip past
    the bounds)."""
    try:
        expected = validate_event(Stream.RATINGS, rating(time=value)).time.timestamp()
    except EventRejected:
        return
    assert event_seconds(value) == expected
