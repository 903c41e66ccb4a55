"""The hop to the windowed rules: one record per windows partition and input batch."""

import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest.mock import patch

import orjson
import pytest

from alert_engine.alerts import Alert
from alert_engine.evaluate import Evaluator
from alert_engine.events import Stream, validate_event
from alert_engine.rules import load_ruleset
from alert_engine.windows.hop import (
    MAX_BATCH_BYTES,
    HopBuilder,
    ReceivedBatch,
    partition_for,
)
from alert_engine.windows.store import MemoryWindowStore
from tests.factories import encode, rating


def test_an_event_travels_once_per_partition_whatever_its_group_keys():
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


def test_the_windowed_agent_reads_back_every_group_key_and_event():
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


def test_a_batch_record_stays_under_the_size_limit():
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


# --- What the input agent computes travels with the event ----------------------------------

RULES = Path(__file__).parents[1] / "rules"
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def hop_through(
    sender: Evaluator, receiver: Evaluator, store: MemoryWindowStore, raws: list[bytes]
) -> list[Alert]:
    """What the live agents do: the input agent evaluates each event and ships its group keys
    and inputs in batches (of 5 events here); the windowed agent takes each batch record."""
    alerts: list[Alert] = []
    for start in range(0, len(raws), 5):
        hop = HopBuilder(Stream.RATINGS, partitions=4, version=sender.inputs_version)
        for raw in raws[start : start + 5]:
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


def test_live_windowed_alerts_from_shipped_values_equal_the_replays():
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
    with patch("alert_engine.evaluate.validate_event", wraps=validate_event) as validations:
        live = hop_through(sender, receiver, store, raws)
    # Batches come out per partition, not in event order: compare per rule and key, in order.
    order = {alert.id: n for n, alert in enumerate(expected)}
    assert sorted((same(a) for a in live), key=lambda a: order.get(a["id"], -1)) == [
        same(a) for a in expected
    ]
    # The windowed side counted the shipped values and validated only events that fired.
    fired = [alert for alert in live if alert.rule in windowed]
    assert 0 < validations.call_count <= len(fired)


def test_an_event_goes_to_a_grouping_only_if_one_of_its_rules_counts_it():
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


def test_a_batch_of_an_older_ruleset_version_is_counted_by_the_current_rules(tmp_path):
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
    alerts = hop_through(sender, receiver, store, raws)
    assert [
        (alert.rule, alert.values["responses"], alert.values["average"]) for alert in alerts
    ] == [("low-average", 3, 0.0)]
    assert receiver.stats.windowed_in["ratings"] == 4


def test_a_record_written_before_values_were_shipped_is_still_counted(tmp_path):
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
def test_only_values_that_come_back_from_json_unchanged_are_shipped(values, shipped):
    hop = HopBuilder(Stream.RATINGS, partitions=1, version="v")
    hop.add(encode(rating()), [("team", "orders", (None, values))], 1.0, 1.0)
    [batch] = hop.batches()
    [item] = ReceivedBatch.from_json(batch.to_json()).items
    assert item.inputs == ((None, values) if shipped else None)
