"""The oracle: the live windowed path equals event-by-event evaluation of the same events.

Property-based and differential, in process. Generated: rules of every aggregate, tumbling and
hopping windows, grace and `min_sample`; ratings over minutes on one to four input partitions
(each partition in time order, the partitions interleaved arbitrarily), some produced twice;
batches of any size for the input agent and the windowed agent; offset commits, restarts
(SIGTERM: state kept, in-memory parts lost), kills (SIGKILL: the last flush cut after any
number of its changelog messages, everything since the last commit consumed again) and a reload
between the two agents. The live path is `tests.windows.live.LivePipeline`.

Compared with event-by-event evaluation (`Evaluator.evaluate_all`, each event a batch of its
own, the same watermark over the input partitions):

- every window's count and aggregates, against a replay in time order (as `alert-engine replay`
  does) and in the order the worker read the events;
- which windows fired, and for tumbling windows the alert ids;
- each alert's values and sample: the aggregates event by event after the event the alert
  shows (the batch's last of its key and window), which is an event of that key and window.

Where the two cannot agree, and only there, the comparison leaves a window out:

- a condition that does not only grow with more events (`avg`, `nps` here) can hold after one
  event of a batch and no longer after a later one of the same key: checked once per batch, the
  live path does not see it (see docs/rules.md, "Checked per batch, live"). Left out: exactly the
  windows where, event by event, the condition held after an event and not after a later event
  of the same key and window in the same input batch;
- hopping windows of a rule and key that come to hold within one batch raise one alert, for the
  oldest (event by event, those that came to hold on different events raise one each): their
  alert ids are compared through the windows that fired.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alert_engine.alerts import Alert
from alert_engine.conditions.expressions import Activation
from alert_engine.evaluate import Evaluator, group_key
from alert_engine.events import Stream
from alert_engine.rules.load import load_ruleset
from alert_engine.rules.ruleset import Rule, Ruleset
from alert_engine.windows.families import rule_state
from alert_engine.windows.hop import partition_for
from alert_engine.windows.inspection import rule_windows
from alert_engine.windows.state import is_join_waiting, key_state_of
from alert_engine.windows.store import MemoryWindowStore, window_of
from alert_engine.windows.watermarks import Watermark
from tests.factories import encode, rating
from tests.windows.live import NEVER_IDLE, LivePipeline

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

# Per aggregate: the aggregates, the condition (a threshold drawn from the range), and whether
# the condition only grows with more events (monotonic).
AGGREGATES: dict[str, tuple[str, str, tuple[float, float], bool]] = {
    "count": ("{n: count()}", "n >= %g", (2, 14), True),
    "count_if": ("{n: count(), low: count_if(rating <= 2)}", "low >= %g", (1, 7), True),
    "sum": ("{total: sum(rating)}", "total >= %g", (4, 50), True),
    "min": ("{n: count(), worst: min(rating)}", "worst <= %g", (1, 2), True),
    "max": ("{n: count(), best: max(rating)}", "best >= %g", (4, 5), True),
    "distinct": ("{customers: distinct(customer.id)}", "customers >= %g", (2, 4), True),
    "avg": ("{n: count(), average: avg(rating)}", "average < %g", (2, 3.5), False),
    "nps": ("{n: count(), score: nps(nps)}", "score < %g", (-40, 20), False),
}
WINDOWS = ["{size: 1m", "{size: 2m", "{size: 5m", "{size: 2m, step: 1m", "{size: 5m, step: 1m"]
GRACES = ["1s", "30s", "1m", "2m"]


@dataclass(frozen=True)
class RuleDraw:
    aggregate: str
    window: str
    grace: str
    min_sample: int
    threshold: float
    group_by: str

    def yaml(self, n: int) -> str:
        aggregates, condition, _, _ = AGGREGATES[self.aggregate]
        return (
            f"  - name: r{n}-{self.aggregate}\n"
            f"    source: ratings\n"
            f"    group_by: {self.group_by}\n"
            f"    window: {self.window}, grace: {self.grace}}}\n"
            f"    aggregates: {aggregates}\n"
            f"    min_sample: {self.min_sample}\n"
            f"    condition: {condition % self.threshold}\n"
        )


@st.composite
def rule_draws(draw: st.DrawFn) -> RuleDraw:
    aggregate = draw(st.sampled_from(sorted(AGGREGATES)))
    low, high = AGGREGATES[aggregate][2]
    threshold = draw(st.integers(int(low), int(high)))
    return RuleDraw(
        aggregate,
        draw(st.sampled_from(WINDOWS)),
        draw(st.sampled_from(GRACES)),
        draw(st.integers(1, 5)),
        float(threshold),
        draw(st.sampled_from(["team", "agent.id"])),
    )


def rules_dir(draws: list[RuleDraw], extra: str = "") -> Path:
    directory = Path(tempfile.mkdtemp(prefix="oracle-rules-"))
    text = "rules:\n" + "".join(d.yaml(n) for n, d in enumerate(draws)) + extra
    (directory / "rules.yaml").write_text(text)
    return directory


# A reload that changes the rule set, not the windowed rules: a filter rule added.
RELOADED = """\
  - name: never
    source: ratings
    condition: rating > 100
"""


# The records as read (input partition, value), and the events in time order, once each.
Streamed = tuple[list[tuple[int, bytes]], list[bytes]]


@st.composite
def streams(draw: st.DrawFn, max_events: int) -> Streamed:
    """Ratings over up to ~10 minutes on 1-4 input partitions, each partition in time order,
    read in an arbitrary interleaving; some produced twice (to the same partition right after,
    or to another partition at the same place in time). Also the events in time order, once."""
    partitions = draw(st.integers(1, 4))
    count = draw(st.integers(1, max_events))
    clock = [0.0] * partitions
    queues: list[list[tuple[float, bytes]]] = [[] for _ in range(partitions)]
    once: list[tuple[float, bytes]] = []
    for n in range(count):
        partition = draw(st.integers(0, partitions - 1))
        clock[partition] += draw(st.floats(0, 20))
        at = clock[partition]
        raw = encode(
            rating(
                id=f"r-{n}",
                rating=draw(st.integers(1, 5)),
                nps=draw(st.sampled_from([None, 0, 3, 6, 8, 9, 10])),
                team=draw(st.sampled_from(["orders", "billing"])),
                agent={"id": draw(st.sampled_from(["a-1", "a-2", "a-3"]))},
                customer={"id": draw(st.sampled_from(["c-1", "c-2", "c-3", "c-4"]))},
                interaction_id=None,
                time=(T0 + timedelta(seconds=at)).isoformat(),
            )
        )
        once.append((at, raw))
        queues[partition].append((at, raw))
        twice = draw(st.sampled_from([None, None, None, None, "same", "other"]))
        if twice == "same":
            queues[partition].append((at, raw))
        elif twice == "other" and partitions > 1:
            other = (partition + 1) % partitions
            queues[other].append((at, raw))
    for queue in queues:
        queue.sort(key=lambda entry: entry[0])
    order = draw(st.permutations([p for p, queue in enumerate(queues) for _ in queue]))
    consumed = [(p, queues[p].pop(0)[1]) for p in order]
    in_time = [raw for _, raw in sorted(once, key=lambda entry: entry[0])]
    return consumed, in_time


@dataclass(frozen=True)
class Run:
    """How the worker consumes: batch sizes of both agents, and per input batch (turn) what
    happens after it."""

    input_sizes: list[int]
    records: int
    commits: frozenset[int]
    stops: frozenset[int]
    kills: dict[int, int]
    reload_sender: int | None
    reload_receiver: int | None
    # The windowed agent writes its state every this many batches (once per commit interval).
    flush_every: int = 1


@st.composite
def runs(draw: st.DrawFn) -> Run:
    reload_at = draw(st.none() | st.integers(0, 8))
    return Run(
        draw(st.lists(st.integers(1, 80), min_size=1, max_size=4)),
        draw(st.integers(1, 20)),
        draw(st.frozensets(st.integers(0, 20), max_size=8)),
        draw(st.frozensets(st.integers(0, 20), max_size=2)),
        draw(st.dictionaries(st.integers(0, 20), st.integers(0, 12), max_size=2)),
        reload_at,
        None if reload_at is None else reload_at + draw(st.integers(-3, 3)),
        draw(st.integers(1, 4)),
    )


def live(
    directory: Path, reloaded: Path, consumed: list[tuple[int, bytes]], run: Run
) -> LivePipeline:
    pipeline = LivePipeline(directory, consumed, flush_every=run.flush_every)
    turn = 0
    # The changelog messages of the last write not yet covered by a commit: a kill may cut them.
    flushed: list[tuple[str, Any]] = []
    while not pipeline.done:
        pipeline.send(run.input_sizes[turn % len(run.input_sizes)])
        flushed = pipeline.apply(run.records) or flushed
        if turn in run.commits:
            # Faust flushes the producer before it commits: the batch's state is in Kafka.
            pipeline.commit()
            flushed = []
        if turn in run.kills:
            pipeline.kill(flushed, kept=run.kills[turn])
            flushed = []
        elif turn in run.stops:
            pipeline.stop()
            flushed = []
        if turn == run.reload_sender:
            pipeline.reload(reloaded, receiver=False)
        if turn == run.reload_receiver:
            pipeline.reload(reloaded, sender=False)
        turn += 1
    pipeline.write()
    pipeline.finish()
    return pipeline


# Per (rule, key, window start): events counted, the aggregates' results, fired.
Windows = dict[tuple[str, str, float], tuple[int, dict[str, Any], bool]]


def results_of(rule: Rule, aggregates: list[Any]) -> dict[str, Any]:
    assert rule.windowed is not None
    return {
        aggregate.name: aggregate.result(value)
        for aggregate, value in zip(rule.windowed.aggregates, aggregates, strict=True)
    }


def live_windows(pipeline: LivePipeline) -> Windows:
    found: Windows = {}
    rules = [rule for rule in pipeline.receiver.ruleset.rules if rule.windowed is not None]
    for skey, stored in pipeline.table.items():
        if skey.startswith("\x01"):
            continue
        grouping, _, key = skey.partition("\x00")
        for shape, by_window in key_state_of(stored).windows.items():
            for name, bucket in by_window.items():
                if is_join_waiting(bucket):
                    continue
                for rule in rules:
                    assert rule.windowed is not None
                    if rule.windowed.shape != shape or rule.windowed.group_by.source != grouping:
                        continue
                    state = rule_state(bucket, rule)
                    if state is not None:
                        found[(rule.name, key, window_of(name)[0])] = (
                            state.count,
                            results_of(rule, state.aggregates),
                            rule.state_id in state.fired,
                        )
    return found


def watermark_of(pipeline: LivePipeline, grouping: str, key: str) -> float:
    """The watermark the live store expired the key's windows by (its windows partition's)."""
    partition = partition_for(grouping, key, pipeline.windows_partitions)
    mark = Watermark.over(range(pipeline.input_partitions))
    mark.restore(pipeline.store.marks(Stream.RATINGS.value, partition))
    return mark.value()


def replay_windows(store: MemoryWindowStore, ruleset: Ruleset, keys: set[str]) -> Windows:
    found: Windows = {}
    for rule in ruleset.rules:
        if rule.windowed is None:
            continue
        for key in keys:
            for window, state in rule_windows(store, rule, key):
                found[(rule.name, key, window[0])] = (
                    state.count,
                    results_of(rule, state.aggregates),
                    rule.state_id in state.fired,
                )
    return found


@dataclass
class Snapshot:
    position: int
    event_id: str
    count: int
    results: dict[str, Any]
    holds: bool


def event_by_event(
    directory: Path, consumed: list[tuple[int, bytes]], partitions: int
) -> tuple[list[Alert], MemoryWindowStore, dict[tuple[str, str, float], list[Snapshot]]]:
    """In the order the worker read them, each event a batch of its own, with the watermark
    over the input partitions: the alerts, and per window the state after each event."""
    evaluator = Evaluator(
        load_ruleset(directory),
        max_event_bytes=65536,
        input_partitions=partitions,
        idle_seconds=NEVER_IDLE,
    )
    ruleset = evaluator.ruleset
    store = MemoryWindowStore(ruleset.windows())
    alerts: list[Alert] = []
    snapshots: dict[tuple[str, str, float], list[Snapshot]] = {}
    windowed = [rule for rule in ruleset.rules if rule.windowed is not None]
    for position, (source, raw) in enumerate(consumed):
        alerts.extend(evaluator.evaluate_all(Stream.RATINGS, raw, store, source=source))
        event = evaluator.decode(Stream.RATINGS, raw)
        activation = evaluator.activation(Stream.RATINGS, event)
        timestamp = event.time.timestamp()
        for rule in windowed:
            assert rule.windowed is not None
            key = group_key(rule.windowed.group_by, activation)
            if key is None:
                continue
            for window, state in rule_windows(store, rule, key):
                # A window's range ends 0.1 s before the next one starts (Faust's ranges).
                if not window[0] <= timestamp < window[1] + 0.1:
                    continue
                results = results_of(rule, state.aggregates)
                holds = state.count >= rule.windowed.min_sample and _holds(rule, ruleset, results)
                snapshots.setdefault((rule.name, key, window[0]), []).append(
                    Snapshot(position, event.id, state.count, results, holds)
                )
    return alerts, store, snapshots


def _holds(rule: Rule, ruleset: Ruleset, results: dict[str, Any]) -> bool:
    try:
        context = Activation(dict(results), ruleset.window_functions).context
        return rule.condition.program.execute(context) is True
    except Exception:
        return False


def dips_within_a_batch(
    snapshots: dict[tuple[str, str, float], list[Snapshot]], batches: list[range]
) -> set[tuple[str, str, float]]:
    """The windows whose condition, event by event, held after an event and not after a later
    event of the same key and window in the same input batch (of any batch the worker took)."""
    found = set()
    for window, sequence in snapshots.items():
        for batch in batches:
            held = False
            for snapshot in sequence:
                if snapshot.position not in batch:
                    continue
                if snapshot.holds:
                    held = True
                elif held:
                    found.add(window)
    return found


def alert_window(alert: Alert) -> tuple[str, str, float]:
    start = datetime.fromisoformat(str(alert.values["window_start"])).timestamp()
    return (alert.rule, alert.key, start)


def check(
    draws: list[RuleDraw], streamed: tuple[list[tuple[int, bytes]], list[bytes]], run: Run
) -> None:
    consumed, in_time = streamed
    directory = rules_dir(draws)
    reloaded = rules_dir(draws, RELOADED)
    partitions = 1 + max(partition for partition, _ in consumed)
    pipeline = live(directory, reloaded, consumed, run)
    assert pipeline.late == 0, "no event comes late: each partition is in time order"
    ruleset = load_ruleset(directory)
    names = [f"r{n}-{d.aggregate}" for n, d in enumerate(draws)]
    monotonic = {name for name, d in zip(names, draws, strict=True) if AGGREGATES[d.aggregate][3]}
    hopping = {name for name, d in zip(names, draws, strict=True) if "step" in d.window}

    live_found = live_windows(pipeline)
    keys = {"orders", "billing", "a-1", "a-2", "a-3"}
    expected_alerts, ordered_store, snapshots = event_by_event(directory, consumed, partitions)
    ordered = replay_windows(ordered_store, ruleset, keys)
    # Event by event in time order (a replay): the same windows hold the same counts.
    replay = Evaluator(ruleset, max_event_bytes=65536)
    replay_store = MemoryWindowStore(ruleset.windows())
    for raw in in_time:
        replay.evaluate_all(Stream.RATINGS, raw, replay_store)
    in_time_found = replay_windows(replay_store, ruleset, keys)
    assert set(ordered) == set(in_time_found)

    def expired(window: tuple[str, str, float]) -> bool:
        rule = ruleset.get(window[0])
        assert rule is not None and rule.windowed is not None
        shape = ruleset.windows()[rule.windowed.shape]
        watermark = watermark_of(pipeline, rule.windowed.group_by.source, window[1])
        return bool(shape.stale(window[2] + rule.windowed.window.size - 0.1, watermark))

    # Every window: the same count and aggregates (live, windows past their expiry are gone).
    assert set(live_found) <= set(ordered), "live windows that event by event has not"
    assert all(expired(window) for window in set(ordered) - set(live_found))
    counts = {window: found[:2] for window, found in live_found.items()}
    differ = {w: (c, ordered[w][:2]) for w, c in counts.items() if c != ordered[w][:2]}
    assert not differ, f"window counts differ (live, event by event): {differ}"
    assert counts == {window: in_time_found[window][:2] for window in live_found}

    # The same windows fired, but where a condition dipped within a batch (see the module).
    dipped = dips_within_a_batch(snapshots, pipeline.batches)
    assert not {window for window in dipped if window[0] in monotonic}
    fired_live = {w for w, found in live_found.items() if found[2] and w not in dipped}
    assert fired_live == {w for w in live_found if ordered[w][2] and w not in dipped}
    assert {w for w in fired_live if w[0] in monotonic} == {
        w for w in live_found if in_time_found[w][2] and w[0] in monotonic
    }

    # The alerts: one per window at most; for tumbling windows those of event by event.
    by_window: dict[tuple[str, str, float], Alert] = {}
    for alert in pipeline.alerts():
        window = alert_window(alert)
        assert window not in by_window, "a window raised two alerts"
        by_window[window] = alert
    expected = {alert_window(alert) for alert in expected_alerts} - dipped
    raised = set(by_window) - dipped
    assert {w for w in raised if w[0] not in hopping} == {
        w for w in expected if w[0] not in hopping
    }
    fired_anywhere = {w for w, found in ordered.items() if found[2]}
    assert raised <= fired_anywhere
    assert all(w in fired_live or expired(w) for w in expected if w[0] in hopping)

    # Each alert: the aggregates, event by event, after the event it shows.
    for window, alert in by_window.items():
        shown = alert.event["id"]
        matching = [s for s in snapshots[window] if s.event_id == shown]
        assert matching, "the alert shows an event its window did not count"
        values = {
            name: value
            for name, value in alert.values.items()
            if name not in ("window_start", "window_end")
        }
        assert alert.window is not None
        assert any(
            orjson.loads(orjson.dumps(s.results)) == values and alert.window.sample == s.count
            for s in matching
        ), (window, values, [(s.results, s.count) for s in matching])


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(rule_draws(), min_size=1, max_size=3), streams(60), runs())
def test_the_live_path_equals_event_by_event(
    draws: list[RuleDraw], streamed: Streamed, run: Run
) -> None:
    check(draws, streamed, run)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(rule_draws(), min_size=1, max_size=4), streams(200), runs())
def test_the_live_path_equals_event_by_event_long(
    draws: list[RuleDraw], streamed: Streamed, run: Run
) -> None:
    check(draws, streamed, run)
