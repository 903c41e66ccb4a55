"""A running worker under a stream of hostile events next to genuine ones: every genuine alert
is delivered exactly once, every hostile event is dead-lettered or harmless, and the worker
stays up. The hostile events are generated (hypothesis): the shapes found to take a worker
down, and variations of them."""

from __future__ import annotations

import gzip
import itertools
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.stack import Endpoints
from tests.engine import Engine, only_rules
from tests.factories import encode, rating

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)


def with_nested(event: dict[str, Any], depth: int) -> bytes:
    """The event with a field `x` of arrays nested `depth` deep (written out: orjson does not
    write beyond 254 levels)."""
    return encode(event)[:-1] + b',"x":' + b"[" * depth + b'"leaf"' + b"]" * depth + b"}"


def hostile_event(draw: st.DrawFn, n: int) -> bytes:
    """One event no genuine alert may come of: refused at the edge, or a 5-star rating."""
    base = rating(id=f"h-{n}", rating=1, interaction_id=None, time=NOW.isoformat())
    kind = draw(
        st.sampled_from(
            [
                "deep",
                "deep_five_star",
                "year_9999",
                "year_9999_offset",
                "bad_seconds",
                "epoch_millis",
                "duplicate_key",
                "not_json",
                "not_utf8",
                "empty",
                "wrong_type",
                "huge_comment",
                "spaces",
                "gzip",
                "controls",
            ]
        )
    )
    if kind == "deep":
        return with_nested(base, draw(st.integers(65, 1023)))
    if kind == "deep_five_star":
        return with_nested({**base, "rating": 5}, draw(st.integers(253, 1023)))
    if kind == "year_9999":
        return encode({**base, "time": "9999-12-31T12:00:00Z"})
    if kind == "year_9999_offset":
        return encode({**base, "rating": 5, "time": "9999-12-31T23:59:59-14:00"})
    if kind == "bad_seconds":
        # Not a ratings field: kept as an unknown one, so the rating is a 5.
        value = draw(st.sampled_from(['"12.5"', "true", '"Infinity"']))
        raw = encode({**base, "rating": 5, "wait_seconds": 0})
        return raw.replace(b'"wait_seconds":0', b'"wait_seconds":' + value.encode())
    if kind == "epoch_millis":
        return encode({**base, "time": 1.7e12})
    if kind == "duplicate_key":
        # The last `rating` would alert if the last one won.
        return encode({**base, "rating": 5})[:-1] + b',"rating":1}'
    if kind == "not_json":
        return draw(st.binary(min_size=1, max_size=200)).replace(b"{", b"") or b"x"
    if kind == "not_utf8":
        return encode(base).replace(b"Nobody", b"\xff\xfe")
    if kind == "empty":
        return b""
    if kind == "wrong_type":
        field = draw(st.sampled_from(["rating", "customer", "time", "team"]))
        wrong: object = draw(st.sampled_from([[], {}, "x", 1e308, None]))
        return encode({**base, "rating": 5, field: wrong})
    if kind == "huge_comment":
        return encode({**base, "comment": "x" * draw(st.integers(300_000, 900_000))})
    if kind == "spaces":
        return b" " * draw(st.integers(1, 900_000))
    if kind == "gzip":
        return gzip.compress(encode(base) * 100)
    # Control characters and bidi overrides in a 5-star rating: accepted, alerts nothing.
    return encode({**base, "rating": 5, "comment": "\u202e\x00\x1b[31m" * 50})


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[bytes], list[str]]:
    genuine_count = draw(st.integers(1, 8))
    hostile_count = draw(st.integers(1, 8))
    values: list[tuple[str, bytes]] = []
    for _ in range(hostile_count):
        values.append(("hostile", hostile_event(draw, next(COUNTER))))
    genuine_ids = []
    for _ in range(genuine_count):
        event_id = f"g-{next(COUNTER)}"
        genuine_ids.append(event_id)
        event = rating(
            id=event_id,
            rating=draw(st.integers(1, 2)),
            interaction_id=None,
            time=(NOW + timedelta(seconds=next(COUNTER) / 1000)).isoformat(),
        )
        values.append(("genuine", encode(event)))
    order = draw(st.permutations(range(len(values))))
    return [values[i][1] for i in order], genuine_ids


COUNTER = itertools.count()


def test_a_worker_under_hostile_events_delivers_every_genuine_alert_once_and_stays_up(
    stack: Endpoints, unique: str, tmp_path: Path
) -> None:
    rules = only_rules(
        tmp_path / "rules", "negative-rating", "team-negative-burst", "agent-low-average"
    )
    engine = Engine(stack, unique, tmp_path, rules_dir=rules)
    worker = engine.worker().start()
    expected: list[str] = []
    try:

        @settings(
            max_examples=6,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(streams())
        def one_stream(stream: tuple[list[bytes], list[str]]) -> None:
            values, genuine = stream
            expected.extend(genuine)
            engine.produce(engine.kafka.ratings_topic, values)

            def all_delivered() -> bool:
                keys = {
                    alert["key"]
                    for alert in engine.delivered()
                    if alert["rule"] == "negative-rating"
                }
                return set(expected) <= keys

            engine.wait_for(all_delivered, timeout=60)
            assert worker.process is not None and worker.process.poll() is None, worker.log_tail()

        one_stream()
        time.sleep(2.0)  # anything delivered twice would be in by now
        filtered = [a for a in engine.delivered() if a["rule"] == "negative-rating"]
        assert sorted(a["key"] for a in filtered) == sorted(expected)  # each exactly once
        assert worker.process is not None and worker.process.poll() is None
        stats = worker.stats()
        assert sum(stats["events_rejected"].values()) > 0
        with urllib.request.urlopen(worker.url + "/health", timeout=5) as health:
            assert orjson.loads(health.read())["status"] == "ok"
    finally:
        worker.stop()
