"""The hop to the windowed rules: one record per windows partition and input batch."""

import subprocess
import sys

import orjson
import pytest

from alert_engine.events import Stream
from alert_engine.windows.definitions import WindowSpec
from alert_engine.windows.hop import (
    MAX_BATCH_BYTES,
    HopBuilder,
    ReceivedBatch,
    partition_for,
)
from alert_engine.windows.store import BufferedWindowStore, MemoryWindowStore, TableWindowStore
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


def test_a_batch_writes_each_touched_window_once_when_it_is_done():
    spec = WindowSpec(size=60)
    inner = MemoryWindowStore({"1m": spec.faust_window(60)})
    writes = []
    original = inner.set

    def counting_set(shape, key, window, state):
        writes.append((shape, key, window))
        original(shape, key, window, state)

    inner.set = counting_set  # type: ignore[method-assign]
    buffered = BufferedWindowStore(inner)
    window = (0.0, 59.9)
    for _ in range(10):
        state = buffered.get("1m", "team\x00orders", window) or {"n": 0}
        buffered.set("1m", "team\x00orders", window, {"n": state["n"] + 1})
    assert inner.get("1m", "team\x00orders", window) is None  # nothing written mid-batch
    assert buffered.flush() == 1
    assert writes == [("1m", "team\x00orders", window)]
    assert inner.get("1m", "team\x00orders", window) == {"n": 10}


def table_store(partitions: int = 2) -> tuple[TableWindowStore, dict, dict]:
    minute, hour = WindowSpec(size=60, grace=60), WindowSpec(size=3600, grace=60)
    windows = {"1m": minute.faust_window(60), "1h": hour.faust_window(60)}
    tables: dict = {"1m": {}, "1h": {}}  # what a Faust table offers the store, minus changelog
    return TableWindowStore(tables, windows, partitions), tables, windows


def test_windows_expire_by_event_time_not_by_the_wall_clock():
    store, tables, windows = table_store(partitions=1)
    # A backlog from 2020: the wall clock is years ahead, the windows are still live.
    start = 1_577_836_800.0
    store.set("1m", "team\x00orders", (start, start + 59.9), {"n": 3})
    store.set("1h", "team\x00orders", (start, start + 3599.9), {"n": 3})
    expires_1m = windows["1m"].expires
    assert store.expire(0, start + 60 + expires_1m - 5) == 0
    assert ("team\x00orders", (start, start + 59.9)) in tables["1m"]
    # Event time passes the minute window's end by its `expires`: it goes, the hour stays.
    assert store.expire(0, start + 60 + expires_1m + 1) == 1
    assert tables["1m"] == {}
    assert len(tables["1h"]) == 1
    assert store.expire(0, start + 3600 + windows["1h"].expires + 1) == 1
    assert tables["1h"] == {}


def test_a_partition_expires_only_its_own_windows():
    store, tables, _ = table_store(partitions=4)
    keys = [f"agent.id\x00a-{n}" for n in range(40)]
    for key in keys:
        store.set("1m", key, (0.0, 59.9), {"n": 1})
    mine = [key for key in keys if partition_for(*key.split("\x00"), 4) == 1]
    assert store.expire(1, 10_000.0) == len(mine)
    assert sorted(key for key, _ in tables["1m"]) == sorted(set(keys) - set(mine))


def test_windows_read_back_from_the_changelog_expire_too():
    store, tables, _ = table_store(partitions=1)
    # As after a restart: Faust's recovery filled the table, this store wrote nothing.
    tables["1m"][("team\x00orders", (0.0, 59.9))] = {"n": 2}
    tables["1m"][("team\x00sales", (600.0, 659.9))] = {"n": 1}
    assert store.expire(0, 400.0) == 1
    assert list(tables["1m"]) == [("team\x00sales", (600.0, 659.9))]
