"""Where window state lives: buffered writes per batch, expiry by event time."""

from alert_engine.windows.definitions import WindowSpec
from alert_engine.windows.hop import partition_for
from alert_engine.windows.store import BufferedWindowStore, MemoryWindowStore, TableWindowStore


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


def test_expiry_is_spread_over_calls_not_one_burst():
    store, tables, _ = table_store(partitions=1)
    for n in range(2500):
        store.set("1m", f"customer.id\x00c-{n}", (0.0, 59.9), {"n": 1})
    deleted = [store.expire(0, 10_000.0) for _ in range(4)]
    assert deleted == [1000, 1000, 500, 0]
    assert tables["1m"] == {}
