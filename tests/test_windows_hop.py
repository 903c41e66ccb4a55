"""The hop to the windowed rules: one record per windows partition and input batch."""

import subprocess
import sys

import orjson
import pytest

from alert_engine.events import Stream
from alert_engine.windows.hop import (
    MAX_BATCH_BYTES,
    HopBuilder,
    ReceivedBatch,
    partition_for,
)
from tests.factories import encode, rating


def test_an_event_travels_once_per_partition_whatever_its_group_keys():
    raw = encode(rating(id="r-1"))
    groups = [("team", f"team-{n}") for n in range(40)]
    hop = HopBuilder(Stream.RATINGS, partitions=3)
    hop.add(raw, groups)
    batches = hop.batches()
    assert sorted(batch.partition for batch in batches) == [0, 1, 2]
    assert all(batch.events == [raw] for batch in batches)
    placed = sorted((item.grouping, item.key) for batch in batches for item in batch.items)
    assert placed == sorted(groups)
    for batch in batches:
        for item in batch.items:
            assert partition_for(item.grouping, item.key, 3) == batch.partition


def test_the_windowed_agent_reads_back_every_group_key_and_event():
    events = [encode(rating(id=f"r-{n}", rating=n % 5 + 1)) for n in range(20)]
    hop = HopBuilder(Stream.RATINGS, partitions=4)
    for n, raw in enumerate(events):
        hop.add(raw, [("agent.id", f"a-{n % 3}"), ("team", f"t-{n % 2}")])
    seen = []
    for batch in hop.batches():
        received = ReceivedBatch.from_json(batch.to_json())
        assert received.stream is Stream.RATINGS
        for item in received.items:
            seen.append((item.grouping, item.key, received.events[item.event]["id"]))
    expected = [
        (grouping, key, f"r-{n}")
        for n in range(20)
        for grouping, key in (("agent.id", f"a-{n % 3}"), ("team", f"t-{n % 2}"))
    ]
    assert sorted(seen) == sorted(expected)


def test_a_batch_record_stays_under_the_size_limit():
    comment = "x" * 30_000
    events = [encode(rating(id=f"r-{n}", comment=comment)) for n in range(30)]
    hop = HopBuilder(Stream.RATINGS, partitions=1)
    for raw in events:
        hop.add(raw, [("team", "orders")])
    batches = hop.batches()
    assert len(batches) > 1
    assert all(len(batch.to_json()) < MAX_BATCH_BYTES + 1024 for batch in batches)
    ids = [
        ReceivedBatch.from_json(batch.to_json()).events[item.event]["id"]
        for batch in batches
        for item in batch.items
    ]
    assert ids == [f"r-{n}" for n in range(30)]


def test_every_worker_puts_a_group_key_on_the_same_partition():
    # Python's own str hash differs between processes; the partition must not.
    keys = [("agent.id", f"a-{n}") for n in range(50)]
    here = [partition_for(grouping, key, 12) for grouping, key in keys]
    script = (
        "import json, sys; from alert_engine.windows.hop import partition_for; "
        f"print(json.dumps([partition_for(g, k, 12) for g, k in {keys!r}]))"
    )
    elsewhere = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    )
    assert orjson.loads(elsewhere.stdout) == here
    assert len(set(here)) > 6  # spread over the partitions, not piled on one


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{oops",
        b'{"stream": "ratings"}',
        b'{"stream": "x", "items": [], "events": []}',
        b'{"stream": "ratings", "items": [["team", "t", 3]], "events": [{}]}',
        b'{"stream": "ratings", "items": [], "events": [1]}',
    ],
)
def test_a_foreign_record_on_the_windows_topic_is_refused(raw):
    with pytest.raises(ValueError, match="not a window batch"):
        ReceivedBatch.from_json(raw)
