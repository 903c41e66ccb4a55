"""Windowed rules give the same windows and alerts under any batching and partitioning.

The live path (input agent, hop, windowed agent) is compared with event-by-event evaluation of
the same events: events spread over input partitions, each partition in time order, the
partitions read in any interleaving and cut into batches of any size, as a worker catching up
after an outage reads them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alert_engine.alerts import Alert
from alert_engine.evaluate import Evaluator
from alert_engine.events import Stream
from alert_engine.rules.load import load_ruleset
from alert_engine.windows.families import rule_state
from alert_engine.windows.hop import HopBuilder, ReceivedBatch
from alert_engine.windows.store import MemoryWindowStore
from alert_engine.windows.watermarks import Watermark
from tests.factories import encode, rating

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

# Consumed events: (input partition, the event's bytes).
Consumed = list[tuple[int, bytes]]


def rules_dir(text: str) -> Path:
    directory = Path(tempfile.mkdtemp(prefix="window-rules-"))
    (directory / "rules.yaml").write_text(text)
    return directory


def live(
    directory: Path,
    consumed: Consumed,
    batch_sizes: Sequence[int],
    windows_partitions: int = 3,
    restarts: frozenset[int] = frozenset(),
) -> tuple[list[Alert], MemoryWindowStore, Evaluator]:
    """What the worker does: the input agent takes `consumed` in batches of `batch_sizes`
    (cycled), evaluates each event and ships the batch to the windows partitions; the windowed
    agent takes each record. Before each batch numbered in `restarts` the worker restarts: new
    evaluators, the same store (the changelog)."""
    sender = Evaluator(load_ruleset(directory), max_event_bytes=65536)
    receiver = Evaluator(load_ruleset(directory), max_event_bytes=65536, input_partitions=4)
    store = MemoryWindowStore(receiver.ruleset.windows())
    alerts: list[Alert] = []
    late = 0
    position, turn = 0, 0
    while position < len(consumed):
        if turn in restarts:
            late += sum(sender.stats.late_events.values())
            late += sum(receiver.stats.late_events.values())
            sender = Evaluator(load_ruleset(directory), max_event_bytes=65536)
            receiver = Evaluator(load_ruleset(directory), max_event_bytes=65536, input_partitions=4)
        size = batch_sizes[turn % len(batch_sizes)]
        turn += 1
        hop = HopBuilder(
            Stream.RATINGS,
            windows_partitions,
            sender.inputs_version,
            fold=partial(sender.fold, Stream.RATINGS),
        )
        for partition, raw in consumed[position : position + size]:
            outcome = sender.process(Stream.RATINGS, raw, partition=partition)
            alerts.extend(outcome.alerts)
            hop.add(
                raw,
                [(group.grouping, group.key, group.inputs) for group in outcome.regroups],
                outcome.timestamp,
                outcome.watermark,
                partition,
            )
        position += size
        for batch in hop.batches():
            received = ReceivedBatch.from_json(batch.to_json())
            alerts.extend(receiver.windowed_batch(received, store, partition=batch.partition))
    late += sum(sender.stats.late_events.values()) + sum(receiver.stats.late_events.values())
    assert late == 0, f"{late} events counted late"
    return alerts, store, receiver


def event_by_event(
    directory: Path, raws: list[bytes]
) -> tuple[list[Alert], MemoryWindowStore, Evaluator]:
    evaluator = Evaluator(load_ruleset(directory), max_event_bytes=65536)
    store = MemoryWindowStore(evaluator.ruleset.windows())
    alerts = [alert for raw in raws for alert in evaluator.evaluate_all(Stream.RATINGS, raw, store)]
    return alerts, store, evaluator


def windows(store: MemoryWindowStore, evaluator: Evaluator) -> dict[tuple[Any, ...], Any]:
    """Per rule, group key and window: the events counted, the aggregates and whether it fired."""
    found = {}
    for (shape, key, window), bucket in store.data.items():
        for rule in evaluator.ruleset.rules:
            if rule.windowed is None or rule.windowed.shape != shape:
                continue
            state = rule_state(bucket, rule)
            if state is not None:
                results = [
                    aggregate.kind.result(value)
                    for aggregate, value in zip(
                        rule.windowed.aggregates, state.aggregates, strict=True
                    )
                ]
                found[(rule.name, key, window)] = (
                    state.count,
                    results,
                    rule.state_id in state.fired,
                )
    return found


def team_rating(n: int, seconds: float, team: str = "orders", stars: int = 1) -> bytes:
    return encode(
        rating(
            id=f"r-{n}",
            rating=stars,
            team=team,
            interaction_id=None,
            time=(T0 + timedelta(seconds=seconds)).isoformat(),
        )
    )


PER_MINUTE = """\
rules:
  - name: busy-minute
    source: ratings
    group_by: team
    window: {size: 1m}
    aggregates: {ratings: count()}
    min_sample: 1
    condition: ratings >= %d
"""


def test_one_batch_spanning_several_windows_raises_every_windows_alert() -> None:
    # 360 ratings of one team over 6 minutes in one batch (a catch-up): each minute holds 60.
    directory = rules_dir(PER_MINUTE % 60)
    consumed = [(0, team_rating(n, n)) for n in range(360)]
    alerts, _, _ = live(directory, consumed, [500])
    assert sorted(alert.values["window_start"] for alert in alerts) == [
        (T0 + timedelta(minutes=m)).isoformat() for m in range(6)
    ]


def test_a_slow_partition_is_not_judged_by_a_fast_one() -> None:
    # Ten minutes of one team's ratings produced while the worker was down: 2 per second to
    # partition 0, 1 per second to partition 1. The worker then reads both, record by record,
    # so partition 1's event time runs ahead of partition 0's.
    directory = rules_dir(PER_MINUTE % 180)
    fast = [(0, team_rating(n, n / 2)) for n in range(1200)]
    slow = [(1, team_rating(10_000 + n, n)) for n in range(600)]
    consumed: Consumed = []
    for n in range(1200):
        consumed.append(fast[n])
        if n < 600:
            consumed.append(slow[n])
    alerts, _, _ = live(directory, consumed, [500])
    assert len(alerts) == 10


def test_an_idle_source_stops_holding_the_watermark_back() -> None:
    now = [0.0]
    mark = Watermark(idle_seconds=30, clock=lambda: now[0])
    mark.advance(0, 100.0)
    assert mark.advance(1, 500.0) == 100.0  # partition 0 may still send events after 100
    now[0] = 20.0
    assert mark.advance(1, 600.0) == 100.0
    now[0] = 31.0  # partition 0 has shown nothing newer for 31 s: idle
    assert mark.value() == 600.0
    assert mark.advance(0, 200.0) == 200.0  # it moved again: it holds the watermark again


def test_a_partition_that_sent_nothing_yet_holds_the_watermark_back_until_idle() -> None:
    now = [0.0]
    mark = Watermark.over(range(2), idle_seconds=30, clock=lambda: now[0])
    assert mark.advance(0, 500.0) == float("-inf")  # partition 1 may have older events
    now[0] = 31.0
    assert mark.value() == 500.0


COUNTING_RULES = """\
rules:
  - name: burst
    source: ratings
    group_by: team
    window: {size: 1m}
    aggregates: {ratings: count(), low: count_if(rating <= 2)}
    min_sample: 2
    condition: low >= %(low)d
  - name: hourly-volume
    source: ratings
    group_by: team
    window: {size: 5m, step: 1m}
    aggregates: {ratings: count(), worst: min(rating), best: max(rating)}
    min_sample: 3
    condition: ratings >= %(volume)d && worst <= 2
  - name: agent-spread
    source: ratings
    group_by: agent.id
    window: {size: 2m}
    aggregates: {teams: distinct(team), total: sum(rating)}
    condition: teams >= 2 && total >= %(total)d
"""


@st.composite
def consumption(draw: st.DrawFn) -> tuple[list[bytes], Consumed, list[int]]:
    """Events over up to 10 minutes on up to 4 input partitions, each partition in time order,
    read in an arbitrary interleaving, cut into arbitrary batch sizes."""
    partitions = draw(st.integers(1, 4))
    count = draw(st.integers(1, 120))
    gaps = draw(st.lists(st.floats(0, 30), min_size=count, max_size=count))
    events: list[tuple[int, float, bytes]] = []
    clock = [0.0] * partitions
    for n, gap in enumerate(gaps):
        partition = draw(st.integers(0, partitions - 1))
        clock[partition] += gap
        raw = encode(
            rating(
                id=f"r-{n}",
                rating=draw(st.integers(1, 5)),
                team=draw(st.sampled_from(["orders", "billing", "returns"])),
                agent={"id": draw(st.sampled_from(["a-1", "a-2"]))},
                interaction_id=None,
                time=(T0 + timedelta(seconds=clock[partition])).isoformat(),
            )
        )
        events.append((partition, clock[partition], raw))
    queues = [
        [(p, raw) for p, _, raw in events if p == partition] for partition in range(partitions)
    ]
    order = draw(st.permutations([p for p, _, _ in events]))
    consumed = [queues[partition].pop(0) for partition in order]
    in_time = [raw for _, _, raw in sorted(events, key=lambda event: event[1])]
    sizes = draw(st.lists(st.integers(1, 200), min_size=1, max_size=5))
    return in_time, consumed, sizes


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    consumption(),
    st.fixed_dictionaries(
        {"low": st.integers(1, 8), "volume": st.integers(3, 30), "total": st.integers(2, 40)}
    ),
    st.frozensets(st.integers(1, 30), max_size=3),
)
def test_live_windows_equal_event_by_event_under_any_batching_partitioning_and_restart(
    events: tuple[list[bytes], Consumed, list[int]],
    thresholds: dict[str, int],
    restarts: frozenset[int],
) -> None:
    # A restart between batches (SIGTERM: state and watermark written) keeps the same windows.
    in_time, consumed, sizes = events
    directory = rules_dir(COUNTING_RULES % thresholds)
    live_alerts, live_store, receiver = live(directory, consumed, sizes, restarts=restarts)
    replay_alerts, replay_store, replay = event_by_event(directory, in_time)
    # Every window holds the same count and aggregates, and fired (or not) alike.
    assert windows(live_store, receiver) == windows(replay_store, replay)
    # Tumbling windows: one alert per window that fired, the same ids. (Hopping windows that
    # hold at once raise one alert for the oldest, and what holds at once depends on the batch:
    # compared above through the windows that fired.)
    tumbling = {"burst", "agent-spread"}
    assert sorted(a.id for a in live_alerts if a.rule in tumbling) == sorted(
        a.id for a in replay_alerts if a.rule in tumbling
    )


def test_a_restarted_worker_judges_lateness_by_the_watermark_it_left() -> None:
    # The worker read an hour of the team's ratings, then stopped; the store (the changelog)
    # outlives it. After the restart a rating from the first minute arrives: it is late, as it
    # would have been before the restart, and must not count into a window long closed.
    directory = rules_dir(PER_MINUTE % 2)
    sender = Evaluator(load_ruleset(directory), max_event_bytes=65536)
    first = Evaluator(load_ruleset(directory), max_event_bytes=65536, input_partitions=1)
    store = MemoryWindowStore(first.ruleset.windows())

    def ship(receiver: Evaluator, raws: list[bytes]) -> list[Alert]:
        hop = HopBuilder(
            Stream.RATINGS, 1, sender.inputs_version, fold=partial(sender.fold, Stream.RATINGS)
        )
        for raw in raws:
            outcome = sender.process(Stream.RATINGS, raw, partition=0)
            groups = [(group.grouping, group.key, group.inputs) for group in outcome.regroups]
            hop.add(raw, groups, outcome.timestamp, outcome.watermark, 0)
        return [
            alert
            for batch in hop.batches()
            for alert in receiver.windowed_batch(
                ReceivedBatch.from_json(batch.to_json()), store, partition=batch.partition
            )
        ]

    ship(first, [team_rating(n, n * 60) for n in range(60)])
    restarted = Evaluator(load_ruleset(directory), max_event_bytes=65536, input_partitions=1)
    # A second input worker, restarted too, whose own partition time starts again.
    sender = Evaluator(load_ruleset(directory), max_event_bytes=65536)
    alerts = ship(restarted, [team_rating(1000 + n, 1) for n in range(3)])
    assert alerts == []
    assert sum(restarted.stats.late_events.values()) == 3


def test_the_watermark_travels_with_the_window_state_in_the_table() -> None:
    from alert_engine.windows.store import TableWindowStore, marks_key
    from tests.windows.test_store import RecordingTable

    table = RecordingTable()
    store = TableWindowStore(table, {}, partitions=3)
    store.set_marks("ratings", 2, {0: 100.0, 3: 250.5})
    store.flush()
    assert table.changelog == [(marks_key("ratings", 2), {"marks": {"0": 100.0, "3": 250.5}})]
    # Another worker's store over the same table (read back from the changelog) finds it.
    assert TableWindowStore(table, {}, partitions=3).marks("ratings", 2) == {0: 100.0, 3: 250.5}
    store.set_marks("ratings", 2, {0: 100.0, 3: 250.5})
    assert store.flush() == 0  # unchanged: nothing written
