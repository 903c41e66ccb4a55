"""Two workers in one consumer group share a 4-partition topic, and hand partitions over when one
stops (SIGTERM) or dies (SIGKILL): every expected alert exactly once."""

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from devstack.stack import Endpoints
from devstack.workerprocess import WorkerProcess
from tests.audit import explain_missing
from tests.engine import Engine, encode_all
from tests.factories import rating

pytestmark = pytest.mark.integration


def negative_every_fifth(start: int, count: int) -> list[dict[str, Any]]:
    return [rating(id=f"r-{n}", rating=1 if n % 5 == 0 else 4) for n in range(start, start + count)]


# Seconds from a worker's SIGTERM, or SIGKILL, until every alert so far is delivered. SIGTERM:
# the worker commits and leaves at once, the other takes its partitions over. SIGKILL: the
# session timeout (10 s) before the group notices, then the same.
SIGTERM_BUDGET_S = 90.0
SIGKILL_BUDGET_S = 120.0
# When a budget runs out: how much longer to wait to tell a late alert from a lost one.
LATE_GRACE_S = 180.0


def wait_for_all(
    engine: Engine, workers: dict[str, WorkerProcess], expected: list[str], budget: float
) -> float:
    """Seconds until every expected alert is delivered; else fail saying, per missing alert,
    whether it was on the alerts topic, late (by how much) or lost, with the group's offsets and
    the workers' logs."""

    def keys() -> list[str]:
        return [str(alert["key"]) for alert in engine.delivered()]

    started = time.monotonic()
    while not set(expected) <= set(keys()):
        if time.monotonic() - started > budget:
            report = explain_missing(
                bootstrap=engine.kafka.bootstrap,
                group=engine.env["ALERT_ENGINE_APP_ID"],
                alerts_topic=engine.kafka.alerts_topic,
                consumed_topics=[engine.kafka.ratings_topic, engine.kafka.alerts_topic],
                expected=expected,
                delivered=keys,
                budget=budget,
                grace=LATE_GRACE_S,
            )
            logs = "".join(
                f"\n--- {name}'s log ({worker.log_path}) ---\n{worker.log_tail(60)}"
                for name, worker in workers.items()
            )
            print(f"\nSCALE-OUT FAILED: {report}", flush=True)  # at once, even under -x
            raise AssertionError(report + logs)
        time.sleep(0.1)
    return time.monotonic() - started


def alert_ids(batches: list[list[dict[str, Any]]]) -> list[str]:
    return sorted(e["id"] for batch in batches for e in batch if e["rating"] == 1)


def test_two_workers_share_partitions_and_take_over_each_others_without_loss_or_duplicate(
    stack: Endpoints, unique: str, tmp_path: Path
) -> None:
    engine = Engine(stack, unique, tmp_path, partitions=4)
    batches = [negative_every_fifth(n * 200, 200) for n in range(4)]
    expected = alert_ids(batches)

    def delivered_count() -> int:
        return len(engine.delivered())

    # Each start() returns once that worker has joined the group and the rebalance is over.
    workers = {"first": engine.worker("first").start()}
    workers["second"] = engine.worker("second").start()
    try:
        engine.produce(engine.kafka.ratings_topic, encode_all(batches[0]))
        engine.wait_for(lambda: delivered_count() >= 10, timeout=60)
        workers["first"].stop()  # SIGTERM mid-stream: a clean hand-over of its partitions
        engine.produce(engine.kafka.ratings_topic, encode_all(batches[1]))
        after_term = wait_for_all(engine, workers, alert_ids(batches[:2]), SIGTERM_BUDGET_S)

        workers["first-again"] = engine.worker("first-again").start()
        engine.produce(engine.kafka.ratings_topic, encode_all(batches[2]))
        engine.wait_for(lambda: delivered_count() >= 90, timeout=60)
        workers[
            "second"
        ].kill()  # SIGKILL mid-stream: its partitions move after the session timeout
        engine.produce(engine.kafka.ratings_topic, encode_all(batches[3]))
        after_kill = wait_for_all(engine, workers, expected, SIGKILL_BUDGET_S)
        print(
            f"\nSCALE-OUT: every alert {after_term:.1f} s after the SIGTERM's batch, "
            f"{after_kill:.1f} s after the SIGKILL's"
        )
        time.sleep(2.0)  # anything delivered twice would land by now
        keys = [str(alert["key"]) for alert in engine.delivered()]
    finally:
        for worker in workers.values():
            worker.stop()

    duplicates = {key: n for key, n in Counter(keys).items() if n > 1}
    assert duplicates == {}
    assert sorted(keys) == expected
    assert len(expected) == 160


def test_a_worker_beyond_the_partition_count_is_a_ready_standby_that_takes_over(
    stack: Endpoints, unique: str, tmp_path: Path
) -> None:
    # One partition per topic, two workers: one consumes everything, the other has nothing to do.
    engine = Engine(stack, unique, tmp_path, partitions=1)
    first = engine.worker("first")
    second = engine.worker("second")
    try:
        alone = first.start().readiness()
        assert alone["ready"] and alone["partitions"] > 0
        # start() returns only once /ready answers 200: a member with no partitions is ready.
        second.start()

        def settled() -> bool:
            states = (first.readiness(), second.readiness())
            # Both in the same group generation: the join of the second is over for both.
            return all(s["ready"] for s in states) and len({s["generation"] for s in states}) == 1

        engine.wait_for(settled, timeout=60)
        by_partitions = sorted((first, second), key=lambda w: w.readiness()["partitions"])
        standby, active = by_partitions
        assert [w.readiness()["partitions"] for w in by_partitions] == [0, alone["partitions"]]

        # The active one leaves: the standby takes its partitions over and alerts go on.
        active.stop()

        def taken_over() -> bool:
            state = standby.readiness()
            return bool(state["ready"]) and state["partitions"] == alone["partitions"]

        engine.wait_for(taken_over, timeout=60)
        engine.produce(engine.kafka.ratings_topic, encode_all([rating(id="r-after", rating=1)]))
        engine.wait_for(lambda: len(engine.delivered()) == 1, timeout=60)
    finally:
        first.stop()
        second.stop()
