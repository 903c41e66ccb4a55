"""The hop to the windowed rules: one record per windows partition and input batch."""

import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from unittest.mock import patch

import orjson
import pytest

from alert_engine.alerts import Alert
from alert_engine.evaluate import Evaluator
from alert_engine.events import Stream, validate_event
from alert_engine.rules.load import load_ruleset
from alert_engine.windows.hop import (
    MAX_BATCH_BYTES,
    HopBuilder,
    ReceivedBatch,
    partition_for,
)
from alert_engine.windows.store import MemoryWindowStore
from tests.factories import encode, rating


def test_an_event_travels_once_per_partition_whatever_its_group_keys() -> None:
    raw = encode(rating(id="r-1"))
    groups = [("team", f"team-{n}") for n in range(40)]
    hop = HopBuilder(Stream.RATINGS, partitions=3)
    hop.add(raw, [(g, k, None) for g, k in groups])
    batches = hop.batches()
    assert sorted(batch.partition for batch in batches) == [0, 1, 2]
    assert all(batch.events == [raw] for batch in batches)
    placed = sorted((item.grouping, item.key) for batch in batches for item in batch.items)
    assert placed == sorted(groups)
    for batch in batches:
        for item in batch.items:
            assert partition_for(item.grouping, item.key, 3) == batch.partition


def test_the_windowed_agent_reads_back_every_group_key_and_event() -> None:
    events = [encode(rating(id=f"r-{n}", rating=n % 5 + 1)) for n in range(20)]
    hop = HopBuilder(Stream.RATINGS, partitions=4)
    for n, raw in enumerate(events):
        hop.add(raw, [("agent.id", f"a-{n % 3}", None), ("team", f"t-{n % 2}", None)])
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


def test_a_batch_record_stays_under_the_size_limit() -> None:
    comment = "x" * 30_000
    events = [encode(rating(id=f"r-{n}", comment=comment)) for n in range(30)]
    hop = HopBuilder(Stream.RATINGS, partitions=1)
    for raw in events:
        hop.add(raw, [("team", "orders", None)])
    batches = hop.batches()
    assert len(batches) > 1
    assert all(len(batch.to_json()) < MAX_BATCH_BYTES + 1024 for batch in batches)
    ids = [
        ReceivedBatch.from_json(batch.to_json()).events[item.event]["id"]
        for batch in batches
        for item in batch.items
    ]
    assert ids == [f"r-{n}" for n in range(30)]


def test_a_batch_record_of_partial_states_stays_under_the_size_limit() -> None:
    evaluator = shipped_rules_evaluator()
    hop = HopBuilder(Stream.RATINGS, partitions=1, fold=partial(evaluator.fold, Stream.RATINGS))
    for n in range(100):
        raw = encode(rating(id=f"r-{n}", rating=1, team="orders", comment="x" * 4_900))
        outcome = evaluator.process(Stream.RATINGS, raw)
        hop.add(raw, [(g.grouping, g.key, g.inputs) for g in outcome.regroups], outcome.timestamp)
    batches = hop.batches()
    assert len(batches) > 1
    assert all(len(batch.to_json()) < MAX_BATCH_BYTES + 1024 for batch in batches)
    counted = [
        events
        for batch in batches
        for grouping, _, events, _, _ in ReceivedBatch.from_json(batch.to_json()).groups
        if grouping == "team"
    ]
    assert sum(counted) == 100


def test_every_worker_puts_a_group_key_on_the_same_partition() -> None:
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
        # partial states naming a missing event, or not counting any
        b'{"stream": "ratings", "items": [], "events": [], '
        b'"groups": [["team", "t", 1, [["f", 0, 60, 1, [1], 0]]]]}',
        b'{"stream": "ratings", "items": [], "events": [{}], '
        b'"groups": [["team", "t", 1, [["f", 0, 60, 0, [1], 0]]]]}',
        b'{"stream": "ratings", "items": [], "events": [{}], "groups": [["team", "t"]]}',
    ],
)
def test_a_foreign_record_on_the_windows_topic_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError, match="not a window batch"):
        ReceivedBatch.from_json(raw)


# --- What the input agent computes travels with the event ----------------------------------

RULES = Path(__file__).parents[2] / "rules"
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def hop_through(
    sender: Evaluator,
    receiver: Evaluator,
    store: MemoryWindowStore,
    raws: list[bytes],
    *,
    counted: bool = True,
    size: int = 5,
) -> list[Alert]:
    """What the live agents do: the input agent evaluates each event and, in batches of `size`
    events, ships its group keys with the batch's partial states (`counted`, as the worker
    does) or with the events and their inputs; the windowed agent takes each batch record."""
    alerts: list[Alert] = []
    fold = partial(sender.fold, Stream.RATINGS) if counted else None
    for start in range(0, len(raws), size):
        hop = HopBuilder(Stream.RATINGS, partitions=4, version=sender.inputs_version, fold=fold)
        for raw in raws[start : start + size]:
            outcome = sender.process(Stream.RATINGS, raw)
            alerts.extend(outcome.alerts)
            hop.add(
                raw,
                [(group.grouping, group.key, group.inputs) for group in outcome.regroups],
                outcome.timestamp,
                outcome.watermark,
            )
        for batch in hop.batches():
            received = ReceivedBatch.from_json(batch.to_json())
            alerts.extend(receiver.windowed_batch(received, store, partition=batch.partition))
    return alerts


def shipped_rules_evaluator() -> Evaluator:
    return Evaluator(load_ruleset(RULES), max_event_bytes=65536)


def same(alert: Alert) -> dict[str, object]:
    return alert.model_dump(exclude={"fired_at"})


@pytest.mark.parametrize(
    ("counted", "size"),
    [
        (True, 1),  # partial states of one event each: the replay's granularity
        (False, 5),  # events with their inputs, counted one by one by the windowed agent
    ],
)
def test_live_windowed_alerts_equal_the_replays_at_the_same_granularity(
    counted: bool, size: int
) -> None:
    rng = random.Random(11)
    raws = [
        encode(
            rating(
                id=f"r-{n}",
                rating=rng.choice([1, 1, 2, 3, 4, 5]),
                nps=rng.choice([None, 0, 3, 9, 10]),
                team=rng.choice(["orders", "billing"]),
                agent={"id": rng.choice(["a-1", "a-2", "a-3"])},
                customer={"id": rng.choice(["c-1", "c-2", "c-3", "c-4"])},
                channel="chat",
                interaction_id=None,  # joins need the event itself: they are not compared here
                survey=rng.choice(["initial", "initial", "follow_up"]),
                time=(T0 + timedelta(seconds=n * rng.uniform(3, 15))).isoformat(),
            )
        )
        for n in range(120)
    ]
    replay = shipped_rules_evaluator()
    replay_store = MemoryWindowStore(replay.ruleset.windows())
    expected = [
        alert for raw in raws for alert in replay.evaluate_all(Stream.RATINGS, raw, replay_store)
    ]
    windowed = {"agent-low-average", "repeat-negative-customer", "team-negative-burst"}
    assert windowed <= {alert.rule for alert in expected}, "the comparison would prove little"

    sender, receiver = shipped_rules_evaluator(), shipped_rules_evaluator()
    store = MemoryWindowStore(receiver.ruleset.windows())
    validating = "alert_engine.windows.receiving.validate_event"
    with patch(validating, wraps=validate_event) as validations:
        live = hop_through(sender, receiver, store, raws, counted=counted, size=size)
    # Batches come out per partition, not in event order: compare per rule and key, in order.
    order = {alert.id: n for n, alert in enumerate(expected)}
    assert sorted((same(a) for a in live), key=lambda a: order.get(str(a["id"]), -1)) == [
        same(a) for a in expected
    ]
    # The windowed side counted the shipped values and validated only events that fired.
    fired = [alert for alert in live if alert.rule in windowed]
    assert 0 < validations.call_count <= len(fired)


def test_an_event_goes_to_a_grouping_only_if_one_of_its_rules_counts_it() -> None:
    evaluator = shipped_rules_evaluator()
    five_stars = encode(rating(id="r-5", rating=5, nps=None, interaction_id=None))
    outcome = evaluator.process(Stream.RATINGS, five_stars)
    # `repeat-negative-customer` (customer.id) and `team-negative-burst` (team) count only
    # ratings <= 2, `channel-nps` only ratings with an NPS answer.
    assert [group.grouping for group in outcome.regroups] == ["agent.id"]
    [group] = outcome.regroups
    assert group.inputs == ([None, 5],)  # count(), avg(rating)
    one_star = evaluator.process(Stream.RATINGS, encode(rating(id="r-1", rating=1, nps=0)))
    assert sorted(group.grouping for group in one_star.regroups) == [
        "agent.id",
        "channel",
        "customer.id",
        "join:interaction",
        "team",
    ]


def test_a_batch_of_one_group_key_is_counted_in_one_step() -> None:
    """team-negative-burst: more than 10 ratings <= 2 for a team in 15 minutes."""
    raws = [
        encode(
            rating(
                id=f"r-{n}",
                rating=1,
                team="orders",
                interaction_id=None,
                time=(T0 + timedelta(seconds=n)).isoformat(),
            )
        )
        for n in range(14)
    ]
    replay = shipped_rules_evaluator()
    replay_store = MemoryWindowStore(replay.ruleset.windows())
    one_by_one = [
        alert
        for raw in raws
        for alert in replay.evaluate_all(Stream.RATINGS, raw, replay_store)
        if alert.rule == "team-negative-burst"
    ]
    sender, receiver = shipped_rules_evaluator(), shipped_rules_evaluator()
    store = MemoryWindowStore(receiver.ruleset.windows())
    batched = [
        alert
        for alert in hop_through(sender, receiver, store, raws, size=len(raws))
        if alert.rule == "team-negative-burst"
    ]
    # Event by event, the rule fires on the 11th rating; with the 14 in one batch, after the
    # batch: the same window (so the same alert id), its count after the batch, and the
    # batch's last rating of the team.
    assert [(a.id, a.values["negatives"], a.event["id"]) for a in one_by_one] == [
        (one_by_one[0].id, 11, "r-10")
    ]
    assert [(a.id, a.values["negatives"], a.event["id"]) for a in batched] == [
        (one_by_one[0].id, 14, "r-13")
    ]
    # Only that one rating of the 14 was validated again, to build the alert.
    assert receiver.stats.windowed_in["ratings"] > len(raws)


def test_partial_states_of_rules_reloaded_meanwhile(tmp_path: Path) -> None:
    rule = (
        "name: NAME\nsource: ratings\ngroup_by: team\nwindow: {size: 1h}\n"
        "aggregates: {responses: count(), average: avg(ARG)}\nmin_sample: 3\n"
        "condition: average < LIMIT\n"
    )
    rules = tmp_path / "rules"
    rules.mkdir()

    def write(name: str, argument: str, limit: str) -> None:
        text = rule.replace("NAME", name).replace("ARG", argument).replace("LIMIT", limit)
        (rules / f"{name}.yaml").write_text(text)

    write("a", "rating", "3.0")
    write("b", "rating", "3.0")
    sender = Evaluator(load_ruleset(rules), max_event_bytes=65536)
    # Reloaded between the two agents: `a` now averages the NPS, `b` has a new limit only.
    write("a", "nps", "3.0")
    write("b", "rating", "5.5")
    receiver = Evaluator(load_ruleset(rules), max_event_bytes=65536)
    store = MemoryWindowStore(receiver.ruleset.windows())
    raws = [
        encode(rating(id=f"r-{n}", rating=5, nps=0, time=(T0 + timedelta(minutes=n)).isoformat()))
        for n in range(4)
    ]
    alerts = hop_through(sender, receiver, store, raws, size=4)
    # `b` counts what `b` counted before (same window, `where` and aggregates); what was
    # counted for the old `a` is not the new `a`'s and is left out.
    assert [(a.rule, a.values["responses"], a.values["average"]) for a in alerts] == [("b", 4, 5.0)]


def test_a_partial_state_that_is_not_its_rules_is_not_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    evaluator = shipped_rules_evaluator()
    store = MemoryWindowStore(evaluator.ruleset.windows())
    hop = HopBuilder(
        Stream.RATINGS, partitions=1, version="", fold=partial(evaluator.fold, Stream.RATINGS)
    )
    raw = encode(rating(id="r-1", rating=1, team="orders", interaction_id=None))
    outcome = evaluator.process(Stream.RATINGS, raw)
    hop.add(raw, [(g.grouping, g.key, g.inputs) for g in outcome.regroups], outcome.timestamp)
    [batch] = hop.batches()
    record = orjson.loads(batch.to_json())
    for group in record["groups"]:
        for partial_state in group[3]:
            partial_state[4] = ["x"] * len(partial_state[4])  # text where counts belong
    tampered = ReceivedBatch.from_json(orjson.dumps(record))
    assert evaluator.windowed_batch(tampered, store, partition=0) == []
    assert store.data == {}
    assert "unreadable window state" in caplog.text


def test_a_batch_of_an_older_ruleset_version_is_counted_by_the_current_rules(
    tmp_path: Path,
) -> None:
    average = (
        "name: low-average\nsource: ratings\ngroup_by: team\nwindow: {size: 1h}\n"
        "aggregates: {responses: count(), average: avg(ARG)}\nmin_sample: 3\n"
        "condition: average < 3.0\n"
    )
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rule.yaml").write_text(average.replace("ARG", "rating"))
    sender = Evaluator(load_ruleset(rules), max_event_bytes=65536)
    (rules / "rule.yaml").write_text(average.replace("ARG", "nps"))
    receiver = Evaluator(load_ruleset(rules), max_event_bytes=65536)  # reloaded meanwhile
    store = MemoryWindowStore(receiver.ruleset.windows())
    # Five stars with an NPS of 0: the old rule averages 5 stars, the new one an NPS of 0.
    raws = [
        encode(rating(id=f"r-{n}", rating=5, nps=0, time=(T0 + timedelta(minutes=n)).isoformat()))
        for n in range(4)
    ]
    alerts = hop_through(sender, receiver, store, raws, counted=False)
    assert [
        (alert.rule, alert.values["responses"], alert.values["average"]) for alert in alerts
    ] == [("low-average", 3, 0.0)]
    assert receiver.stats.windowed_in["ratings"] == 4


def test_a_record_written_before_values_were_shipped_is_still_counted(tmp_path: Path) -> None:
    evaluator = shipped_rules_evaluator()
    store = MemoryWindowStore(evaluator.ruleset.windows())
    events = [
        rating(
            id=f"r-{n}",
            rating=1,
            customer={"id": "c-9"},
            time=(T0 + timedelta(hours=n)).isoformat(),
        )
        for n in range(2)
    ]
    old_format = orjson.dumps(
        {
            "stream": "ratings",
            "items": [["customer.id", "c-9", n] for n in range(2)],
            "events": events,
        }
    )
    alerts = evaluator.windowed_batch(ReceivedBatch.from_json(old_format), store, partition=0)
    assert [(alert.rule, alert.key, alert.event["id"]) for alert in alerts] == [
        ("repeat-negative-customer", "c-9", "r-1")
    ]


@pytest.mark.parametrize(
    ("values", "shipped"),
    [
        ([None, 1, -2.5, "a", True, 2**63 - 1], True),
        ([float("nan")], False),
        ([float("inf")], False),
        ([2**63], False),
        ([["a", "b"]], False),
        ([{"a": 1}], False),
        ([datetime(2026, 1, 1, tzinfo=UTC)], False),
    ],
)
def test_only_values_that_come_back_from_json_unchanged_are_shipped(
    values: list[object], shipped: bool
) -> None:
    hop = HopBuilder(Stream.RATINGS, partitions=1, version="v")
    hop.add(encode(rating()), [("team", "orders", (None, values))], 1.0, 1.0)
    [batch] = hop.batches()
    [item] = ReceivedBatch.from_json(batch.to_json()).items
    assert item.inputs == ((None, values) if shipped else None)


def test_a_pane_counts_in_every_window_of_the_rules_in_force_that_holds_it(tmp_path: Path) -> None:
    rule = (
        "name: NAME\nsource: ratings\ngroup_by: team\nwindow: WINDOW\n"
        "aggregates: {negatives: count()}\ncondition: negatives >= 3\n"
    )
    rules = tmp_path / "rules"
    rules.mkdir()

    def write(name: str, window: str) -> None:
        (rules / f"{name}.yaml").write_text(rule.replace("NAME", name).replace("WINDOW", window))

    write("quarter", "{size: 15m}")
    sender = Evaluator(load_ruleset(rules), max_event_bytes=65536)
    # Reloaded between the agents: an hourly window, and one every 7 minutes, on the same
    # count. The sender counted 15-minute panes: whole parts of the hour, not of 7 minutes.
    write("hour", "{size: 1h}")
    write("seven", "{size: 14m, step: 7m}")
    receiver = Evaluator(load_ruleset(rules), max_event_bytes=65536)
    store = MemoryWindowStore(receiver.ruleset.windows())
    raws = [
        encode(rating(id=f"r-{n}", team="orders", time=(T0 + timedelta(minutes=n)).isoformat()))
        for n in range(3)
    ]
    alerts = hop_through(sender, receiver, store, raws, size=3)
    assert sorted(alert.rule for alert in alerts) == ["hour", "quarter"]
    # The 7-minute rule starts counting with the next batch, which its rules' panes fit.
    more = [
        encode(rating(id=f"s-{n}", team="orders", time=(T0 + timedelta(minutes=n)).isoformat()))
        for n in range(3)
    ]
    assert [alert.rule for alert in hop_through(receiver, receiver, store, more, size=3)] == [
        "seven"
    ]


def test_an_event_late_for_one_window_of_a_pane_still_counts_in_the_others(tmp_path: Path) -> None:
    """A minute and an hour share one pane count; an event late for its minute (the stream's
    time moved on half an hour earlier in the same batch) is counted in its hour only, and
    noted late for the minute. The windowed agent cannot tell: it judges a record by the time
    of the records before it."""
    rule = (
        "name: NAME\nsource: ratings\ngroup_by: team\nwindow: {size: SIZE, grace: 10s}\n"
        "aggregates: {negatives: count()}\ncondition: negatives >= 3\n"
    )
    rules = tmp_path / "rules"
    rules.mkdir()
    for name, size in (("minute", "1m"), ("hour", "1h")):
        (rules / f"{name}.yaml").write_text(rule.replace("NAME", name).replace("SIZE", size))
    evaluator = Evaluator(load_ruleset(rules), max_event_bytes=65536)
    store = MemoryWindowStore(evaluator.ruleset.windows())
    hour = T0.replace(minute=0, second=0, microsecond=0)
    raws = [
        encode(rating(id=f"r-{n}", team="orders", time=(hour + after).isoformat()))
        for n, after in enumerate(
            [
                timedelta(seconds=10),
                timedelta(seconds=20),
                timedelta(minutes=30),
                timedelta(seconds=30),  # late for its minute, in time for its hour
            ]
        )
    ]
    alerts = hop_through(evaluator, evaluator, store, raws, size=4)
    assert [alert.rule for alert in alerts] == ["hour"]
    # Checked once on the whole batch: its count, and its last event of the key.
    assert (alerts[0].values["negatives"], alerts[0].event["id"]) == (4, "r-3")
    assert evaluator.stats.late_events == {"minute": 1}
