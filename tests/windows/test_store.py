"""Where window state lives: one table entry per group key, written once per batch; expiry by
event time."""

from typing import Any

import orjson
from faust.utils import json as faust_json

from alert_engine.windows.definitions import WindowSpec
from alert_engine.windows.hop import partition_for
from alert_engine.windows.store import TableWindowStore, window_name


class RecordingTable(dict[str, Any]):
    """What a Faust table offers the store, recording what would go to its changelog: the JSON
    Faust's codec writes, as a worker reading the changelog back gets it."""

    def __init__(self) -> None:
        super().__init__()
        self.changelog: list[tuple[str, Any]] = []

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.changelog.append((key, orjson.loads(faust_json.dumps(value))))

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.changelog.append((key, None))


MINUTE, HOUR = WindowSpec(size=60, grace=60), WindowSpec(size=3600, step=300, grace=60)


def table_store(partitions: int = 2) -> tuple[TableWindowStore, RecordingTable, dict[str, Any]]:
    windows = {"1m": MINUTE.faust_window(60), "1h-every-5m": HOUR.faust_window(60)}
    table = RecordingTable()
    return TableWindowStore(table, windows, partitions), table, windows


def test_a_batch_writes_each_group_key_once_whatever_the_windows_it_touched() -> None:
    store, table, windows = table_store()
    hourly = windows["1h-every-5m"]
    for second in range(10):
        # Each event is in one minute window and twelve hourly ones.
        for shape in ("1m", "1h-every-5m"):
            for start, end in store.window(shape).ranges(1_000_000.0 + second):
                state = store.get(shape, "team\x00orders", (start, end)) or {"n": 0}
                store.set(shape, "team\x00orders", (start, end), {"n": state["n"] + 1})
    assert table.changelog == []  # nothing written mid-batch
    assert store.flush() == 1
    [(key, entry)] = table.changelog
    assert key == "team\x00orders"
    assert len(entry["windows"]["1h-every-5m"]) == len(hourly.ranges(1_000_000.0)) == 12
    assert all(state == {"n": 10} for state in entry["windows"]["1h-every-5m"].values())
    # What the next batch reads is what was written.
    window = (float(hourly.ranges(1_000_000.0)[0][0]), float(hourly.ranges(1_000_000.0)[0][1]))
    assert store.get("1h-every-5m", "team\x00orders", window) == {"n": 10}
    assert store.flush() == 0  # an untouched batch writes nothing


def test_windows_expire_by_event_time_not_by_the_wall_clock() -> None:
    store, table, windows = table_store(partitions=1)
    # A backlog from 2020: the wall clock is years ahead, the windows are still live.
    start = 1_577_836_800.0
    minute, hour = (start, start + 59.9), (start, start + 3599.9)
    store.set("1m", "team\x00orders", minute, {"n": 3})
    store.set("1h-every-5m", "team\x00orders", hour, {"n": 3})
    store.flush()
    expires = windows["1m"].expires
    assert store.expire(0, start + 60 + expires - 5) == 0
    store.flush()
    assert window_name(minute) in table["team\x00orders"].windows["1m"]
    # Event time passes the minute window's end by its `expires`: it goes, the hour stays.
    assert store.expire(0, start + 60 + expires + 1) == 1
    store.flush()
    assert table["team\x00orders"].windows == {"1h-every-5m": {window_name(hour): {"n": 3}}}
    # The last window gone, the entry is deleted (a tombstone in the changelog).
    assert store.expire(0, start + 3600 + windows["1h-every-5m"].expires + 1) == 1
    store.flush()
    assert table == {}
    assert table.changelog[-1] == ("team\x00orders", None)


def test_a_partition_expires_only_its_own_windows() -> None:
    store, table, _ = table_store(partitions=4)
    keys = [f"agent.id\x00a-{n}" for n in range(40)]
    for key in keys:
        store.set("1m", key, (0.0, 59.9), {"n": 1})
    store.flush()

    def partition_of(key: str) -> int:
        grouping, value = key.split("\x00")
        return partition_for(grouping, value, 4)

    mine = [key for key in keys if partition_of(key) == 1]
    assert store.expire(1, 10_000.0) == len(mine)
    store.flush()
    assert sorted(table) == sorted(set(keys) - set(mine))


def test_windows_read_back_from_the_changelog_expire_too() -> None:
    store, table, _ = table_store(partitions=1)
    # As after a restart: Faust's recovery filled the table, this store wrote nothing.
    dict.__setitem__(table, "team\x00orders", {"1m": {window_name((0.0, 59.9)): {"n": 2}}})
    dict.__setitem__(table, "team\x00sales", {"1m": {window_name((600.0, 659.9)): {"n": 1}}})
    store.table_changed()
    assert store.expire(0, 400.0) == 1
    store.flush()
    assert list(table) == ["team\x00sales"]


def test_expiry_is_spread_over_calls_not_one_burst() -> None:
    store, table, _ = table_store(partitions=1)
    for n in range(2500):
        store.set("1m", f"customer.id\x00c-{n}", (0.0, 59.9), {"n": 1})
    store.flush()
    deleted = []
    for _ in range(4):
        deleted.append(store.expire(0, 10_000.0))
        store.flush()
    assert deleted == [1000, 1000, 500, 0]
    assert table == {}


def test_a_reload_adds_window_shapes_to_the_running_store() -> None:
    store, _, _ = table_store(partitions=1)
    day = WindowSpec(size=86400, grace=60).faust_window(60)
    store.add_windows({"1d": day})
    store.set("1d", "channel\x00chat", (0.0, 86399.9), {"n": 1})
    store.flush()
    assert store.window("1d") is day
    assert day.expires is not None
    assert store.expire(0, 86400 + day.expires + 1) == 1


def test_the_changelog_gets_an_entry_as_it_was_written_not_as_it_is_sent() -> None:
    # The windowed agent changes an entry in place for its next batch; the producer encodes a
    # changelog message when it gets to it. What it encodes must be the entry as written.
    from unittest.mock import patch

    import faust

    from alert_engine.windows.state import CohortState, KeyState
    from alert_engine.windows.store import WindowStateTable

    app = faust.App("test-window-state", broker="kafka://127.0.0.1:1", store="memory://")
    table = WindowStateTable(
        app,
        name="window-state",
        default=None,
        schema=faust.Schema(key_serializer="json", value_serializer="json"),
        partitions=2,
    )
    sent: list[Any] = []
    with patch.object(faust.Table, "send_changelog", lambda self, p, k, v, *_: sent.append(v)):
        entry = KeyState({"1m": {"0.0 59.9": {"*a": CohortState(3, [3], ["r"], [])}}}, {1: 7})
        table.send_changelog(1, "team\x00orders", entry)
        # The next batch, before the producer got to the message.
        entry.applied[1] = 8
        entry.windows["1m"]["0.0 59.9"]["*a"].fired.append("r")
    [value] = sent
    assert orjson.loads(faust_json.dumps(value)) == {
        "windows": {
            "1m": {
                "0.0 59.9": {"*a": {"count": 3, "aggregates": [3], "members": ["r"], "fired": []}}
            }
        },
        "applied": {"1": 7},
    }
