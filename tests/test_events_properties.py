"""Properties of the event edge over generated payloads: what it refuses, it refuses for the
reason a slower, obviously right check gives; what it accepts, every later stage can encode."""

from __future__ import annotations

import json
import random
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from alert_engine.events import duplicate_key

bounded = settings(max_examples=200, deadline=None)

# Keys from a small alphabet, so that objects often repeat one; colons inside strings and keys
# are what the fast duplicate check counts around.
keys = st.text(alphabet="ab:é", max_size=3)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet="a:\\\"é\n", max_size=6)
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
def test_duplicate_keys_are_found_exactly_when_the_standard_parser_sees_them(members, escape):
    raw = write(("object", members), escape).encode()
    parsed = orjson.loads(raw)
    found = duplicate_key(raw, parsed)
    assert (found is not None) == reference_duplicate(raw)
