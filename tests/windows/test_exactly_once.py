"""Window counts exactly once: a `windows` record replayed after a crash, the input agent
re-sending a batch, the same event produced twice, and state written by an earlier version."""

from __future__ import annotations

import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alert_engine.evaluate import Evaluator
from alert_engine.events import Stream
from alert_engine.rules.load import load_ruleset
from alert_engine.windows.families import rule_state
from alert_engine.windows.state import key_state_of
from alert_engine.windows.store import MemoryWindowStore, state_key, window_name
from tests.factories import encode, rating
from tests.windows.live import LivePipeline

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

# `exact` fires when a team's minute holds exactly its count; `one-more` would need one more.
RULES = """\
rules:
  - name: exact
    source: ratings
    group_by: team
    window: {size: 1m}
    aggregates: {ratings: count(), stars: sum(rating)}
    min_sample: 1
    condition: ratings >= %(count)d
  - name: one-more
    source: ratings
    group_by: team
    window: {size: 1m}
    aggregates: {ratings: count()}
    min_sample: 1
    condition: ratings >= %(more)d
"""

TEAMS = ["orders", "billing", "returns", "sales", "support"]
PER_TEAM = 12


def rules_dir(count: int = PER_TEAM) -> Path:
    directory = Path(tempfile.mkdtemp(prefix="exactly-once-"))
    (directory / "rules.yaml").write_text(RULES % {"count": count, "more": count + 1})
    return directory


def team_rating(team: str, n: int, seconds: float, event_id: str | None = None) -> bytes:
    return encode(
        rating(
            id=event_id or f"r-{team}-{n}",
            rating=1 + n % 5,
            team=team,
            interaction_id=None,
            time=(T0 + timedelta(seconds=seconds)).isoformat(),
        )
    )


def consumed() -> list[tuple[int, bytes]]:
    """Twelve ratings of each team within one minute, spread over four input partitions."""
    events = []
    for n in range(PER_TEAM):
        for t, team in enumerate(TEAMS):
            events.append(((n + t) % 4, team_rating(team, n, n * 4 + t)))
    return events


def counts(pipeline: LivePipeline) -> dict[str, int]:
    """Per team, what the `exact` rule's window of the first minute counted."""
    rule = pipeline.receiver.ruleset.get("exact")
    assert rule is not None
    found = {}
    name = window_name((T0.timestamp(), T0.timestamp() + 59.9))
    for team in TEAMS:
        stored = pipeline.table.get(state_key("team", team))
        if stored is None:
            continue
        bucket = key_state_of(stored).windows["1m"][name]
        state = rule_state(bucket, rule)
        assert state is not None
        found[team] = state.count
    return found


def assert_exact(pipeline: LivePipeline) -> None:
    assert pipeline.late == 0
    assert counts(pipeline) == dict.fromkeys(TEAMS, PER_TEAM)
    alerts = pipeline.alerts()
    assert sorted(alert.key for alert in alerts if alert.rule == "exact") == sorted(TEAMS)
    assert [alert for alert in alerts if alert.rule == "one-more"] == []
    for alert in alerts:
        assert alert.values["ratings"] == PER_TEAM
        assert alert.values["stars"] == sum(1 + n % 5 for n in range(PER_TEAM))


def test_records_replayed_after_a_kill_count_once() -> None:
    # Half the events counted and committed; the rest counted and written, not committed; then
    # SIGKILL: both agents consume again from their commits, the input agent sends its batches
    # again (new records), the windowed agent applies the old records again.
    pipeline = LivePipeline(rules_dir(), consumed())
    pipeline.send(30)
    pipeline.apply(100)
    pipeline.commit()
    pipeline.send(30)
    last = pipeline.apply(100)
    pipeline.kill(last)
    pipeline.run([7])
    assert_exact(pipeline)


@pytest.mark.parametrize("kept", range(0, 12))
def test_a_kill_between_any_two_changelog_messages_counts_exactly(kept: int) -> None:
    # The batch's flush was cut after `kept` messages (state entries, applied records, marks).
    pipeline = LivePipeline(rules_dir(), consumed())
    pipeline.send(25)
    pipeline.apply(100)
    pipeline.commit()
    pipeline.send(20)
    last = pipeline.apply(100)
    assert len(last) >= 8, "the flush should write several messages to cut between"
    pipeline.kill(last, kept=min(kept, len(last)))
    pipeline.run([9, 4])
    assert_exact(pipeline)


def test_a_kill_mid_batch_before_the_flush_counts_exactly() -> None:
    pipeline = LivePipeline(rules_dir(), consumed())
    pipeline.send(40)
    pipeline.apply(100)
    pipeline.commit()
    pipeline.send(15)
    pipeline.apply(100)
    pipeline.send(5)
    pipeline.kill([], kept=0)  # the last input batch's records are on the topic, not applied
    pipeline.run([60])
    assert_exact(pipeline)


@pytest.mark.parametrize("kept", [None, 0, 3])
def test_a_commit_between_state_writes_covers_only_the_records_written(kept: int | None) -> None:
    # The worker writes its state once per commit interval, not per batch: batches applied
    # since the last write are in memory only, their records not acknowledged. A commit then
    # covers none of them; SIGKILL after a later write (cut after `kept` of its messages) and
    # a batch not written: the restarted worker applies every record not committed again.
    pipeline = LivePipeline(rules_dir(), consumed(), flush_every=3)
    for _ in range(2):
        pipeline.send(10)
        assert pipeline.apply(2) == []  # applied, not written yet
    pipeline.commit()
    assert pipeline.windows_committed == dict.fromkeys(pipeline.topic, 0)
    pipeline.send(10)
    written = pipeline.apply(2)
    assert written, "the third batch writes the state"
    pipeline.send(10)
    assert pipeline.apply(2) == []
    pipeline.kill(written, kept=kept)
    pipeline.run([7])
    assert_exact(pipeline)


def test_the_same_event_twice_counts_once_in_every_window() -> None:
    # Each team's ratings, and each produced again: in the same batch, in a later batch, and
    # to another input partition.
    directory = rules_dir()
    events = consumed()
    again = []
    for n, (partition, raw) in enumerate(events):
        again.append((partition, raw))
        if n % 3 == 0:
            again.append((partition, raw))  # next to itself: in the same batch
        if n % 4 == 1:
            again.append(((partition + 1) % 4, raw))  # to another partition
    again.extend(events[:10])  # and again, batches later
    pipeline = LivePipeline(directory, _in_partition_order(again))
    pipeline.run([8, 3, 20])
    assert_exact(pipeline)

    # Event by event (a replay, `rules test`): the same.
    evaluator = Evaluator(load_ruleset(directory), max_event_bytes=65536)
    store = MemoryWindowStore(evaluator.ruleset.windows())
    alerts = [
        alert
        for _, raw in sorted(again, key=lambda event: _time(event[1]))
        for alert in evaluator.evaluate_all(Stream.RATINGS, raw, store)
    ]
    assert Counter(alert.rule for alert in alerts) == {"exact": len(TEAMS)}
    assert {alert.values["ratings"] for alert in alerts} == {PER_TEAM}


def test_state_written_in_the_old_shape_reads_on() -> None:
    # A changelog entry as versions before typed state records wrote it: every key a window
    # shape, each cohort `{"n", "a", "m", "f"}`; eleven ratings of `orders` counted.
    directory = rules_dir()
    rules = load_ruleset(directory)
    exact, more = rules.get("exact"), rules.get("one-more")
    assert exact is not None and more is not None
    name = window_name((T0.timestamp(), T0.timestamp() + 59.9))
    old_entry = {
        "1m": {
            name: {
                "*0123456789abcdef": {"n": 11, "a": [11, 30.0], "m": [exact.state_id], "f": []},
                "*fedcba9876543210": {"n": 11, "a": [11], "m": [more.state_id], "f": []},
            }
        }
    }
    pipeline = LivePipeline(directory, [(0, team_rating("orders", 11, 50))])
    pipeline.changelog.append((state_key("team", "orders"), old_entry))
    pipeline.kill([])  # a worker starting on that changelog
    pipeline.run([1])
    [alert] = pipeline.alerts()
    assert (alert.rule, alert.values["ratings"], alert.values["stars"]) == ("exact", 12, 32.0)
    # Written back in the new shape, with the offset of the record applied.
    written = next(
        value for key, value in reversed(pipeline.changelog) if key == state_key("team", "orders")
    )
    assert set(written) == {"windows", "applied"}
    assert written["applied"] == {str(_partition_of(pipeline, "orders")): 0}


def _partition_of(pipeline: LivePipeline, team: str) -> int:
    from alert_engine.windows.hop import partition_for

    return partition_for("team", team, pipeline.windows_partitions)


def _time(raw: bytes) -> str:
    import orjson

    return str(orjson.loads(raw)["time"])


def _in_partition_order(events: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """Each input partition in time order (as Kafka keeps it), partitions interleaved."""
    by_partition: dict[int, list[bytes]] = {}
    for partition, raw in events:
        by_partition.setdefault(partition, []).append(raw)
    for raws in by_partition.values():
        raws.sort(key=_time)
    interleaved = []
    while any(by_partition.values()):
        for partition in sorted(by_partition):
            if by_partition[partition]:
                interleaved.append((partition, by_partition[partition].pop(0)))
    return interleaved


def test_a_replayed_record_is_judged_against_the_watermark_it_was_first_judged_against() -> None:
    # A minute of a team's ratings, then a minute five minutes later: the second record moves
    # the watermark past the first minute's window. Should the team's state be replayed onto
    # one that lacks the first record (its entry not in the changelog, what the batch applied
    # and the watermark there), the first record counts as it did, not as late.
    directory = Path(tempfile.mkdtemp(prefix="judged-"))
    (directory / "rules.yaml").write_text(
        RULES.replace("{size: 1m}", "{size: 1m, grace: 1s}") % {"count": 10, "more": 11}
    )
    events = [(0, team_rating("orders", n, n)) for n in range(10)]
    events += [(0, team_rating("orders", 10 + n, 300 + n)) for n in range(10)]
    pipeline = LivePipeline(directory, events, input_partitions=1, windows_partitions=1)
    pipeline.send(10)
    pipeline.apply(1)
    pipeline.send(10)
    pipeline.apply(1)
    key = state_key("team", "orders")
    pipeline.changelog[:] = [(k, v) for k, v in pipeline.changelog if k != key]
    pipeline.kill([])
    pipeline.run([10])
    # Counted, not dropped as late (the first minute's window then expires, as it did before).
    assert pipeline.late == 0
    minutes = key_state_of(pipeline.table[key]).windows["1m"]
    rule = pipeline.receiver.ruleset.get("exact")
    assert rule is not None
    start = T0.timestamp() + 300
    state = rule_state(minutes[window_name((start, start + 59.9))], rule)
    assert state is not None and state.count == 10
