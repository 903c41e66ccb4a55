"""Faults on the real stack, mid-stream: a worker SIGKILLed (filter and windowed alerts), the
Kafka broker and Redis stopped and restarted. Thousands of events, hundreds of expected alerts:
0 lost, 0 duplicates.

Slow (tens of seconds each): excluded from `make test`, run by `make test-faults`. The broker and
Redis tests start a stack of their own, so the session's shared one is never disturbed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.stack import Endpoints, LocalStack
from devstack.workerprocess import WorkerProcess
from tests.engine import Engine, encode_all
from tests.factories import rating

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 3000
BATCHES = 6
NEGATIVE_EVERY = 10  # 300 expected alerts


def feed() -> list[list[bytes]]:
    events = [
        rating(id=f"r-{n}", rating=1 if n % NEGATIVE_EVERY == 0 else 5) for n in range(EVENTS)
    ]
    size = EVENTS // BATCHES
    return [encode_all(events[i : i + size]) for i in range(0, EVENTS, size)]


EXPECTED = sorted(f"r-{n}" for n in range(0, EVENTS, NEGATIVE_EVERY))


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[LocalStack]:
    local = LocalStack(tmp_path / "stack")
    local.start()
    try:
        yield local
    finally:
        local.stop()


def run_with_fault(
    engine: Engine,
    name: str,
    fault: Callable[[WorkerProcess], None],
    recover: Callable[[], WorkerProcess | None],
    produce_during_fault: bool = True,
) -> None:
    """Half the feed, the fault while the worker is busy with it, the rest of the feed (during
    the fault if the broker is up), recovery; then every expected alert exactly once."""
    batches = feed()
    workers = [engine.worker("worker").start()]
    try:
        for batch in batches[: BATCHES // 2]:
            engine.produce(engine.kafka.ratings_topic, batch)
        engine.wait_for(lambda: len(engine.delivered()) >= 30, timeout=60)
        fault(workers[0])
        if produce_during_fault:
            for batch in batches[BATCHES // 2 :]:
                engine.produce(engine.kafka.ratings_topic, batch)
        time.sleep(3.0)
        replacement = recover()
        if replacement is not None:
            workers.append(replacement)
        if not produce_during_fault:
            for batch in batches[BATCHES // 2 :]:
                engine.produce(engine.kafka.ratings_topic, batch)
        engine.wait_for(lambda: len(engine.delivered()) >= len(EXPECTED), timeout=180)
        time.sleep(2.0)  # anything delivered twice would land by now
        keys = [str(alert["key"]) for alert in engine.delivered()]
    finally:
        for worker in workers:
            worker.stop()
    counts = Counter(keys)
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    lost = len(set(EXPECTED) - set(counts))
    print(
        f"\nFAULT {name}: events={EVENTS} expected={len(EXPECTED)} "
        f"delivered={len(keys)} duplicates={duplicates} lost={lost}"
    )
    assert (duplicates, lost) == (0, 0)
    assert sorted(keys) == EXPECTED


def test_sigkill_of_a_worker_mid_stream_loses_and_duplicates_nothing(
    stack: Endpoints, unique: str, tmp_path: Path
) -> None:
    engine = Engine(stack, unique, tmp_path)
    run_with_fault(
        engine,
        "worker-sigkill",
        fault=lambda worker: worker.kill(),
        recover=lambda: engine.worker("restarted").start(),
    )


def test_kafka_broker_stopped_and_restarted_mid_stream(
    own_stack: LocalStack, unique: str, tmp_path: Path
) -> None:
    engine = Engine(own_stack.endpoints, unique, tmp_path)

    def restart_broker() -> None:
        own_stack.kafka.start()

    run_with_fault(
        engine,
        "kafka-broker-restart",
        fault=lambda worker: own_stack.kafka.stop(),
        recover=lambda: restart_broker(),
        produce_during_fault=False,
    )


def test_redis_stopped_and_restarted_mid_stream(
    own_stack: LocalStack, unique: str, tmp_path: Path
) -> None:
    engine = Engine(own_stack.endpoints, unique, tmp_path)

    def restart_redis() -> None:
        own_stack.redis.start()

    run_with_fault(
        engine,
        "redis-restart",
        fault=lambda worker: own_stack.redis.stop(),
        recover=lambda: restart_redis(),
    )


TEAMS = 30
TEAM_RULE = """\
name: team-ten
source: ratings
group_by: team
window: {size: 1h}
aggregates: {ratings: count()}
min_sample: 10
condition: ratings >= 10
"""


def test_sigkill_mid_stream_keeps_windowed_state_and_every_windowed_alert_fires_once(
    stack: Endpoints, unique: str, tmp_path: Path
) -> None:
    # 30 teams, ten ratings each, one windowed alert per team when its tenth rating is counted.
    # The worker is killed with every team half way: the rest counts on the state it recovers.
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "team.yaml").write_text(TEAM_RULE)
    engine = Engine(stack, unique, tmp_path, rules_dir=rules)

    def ratings(first: int, count: int) -> list[bytes]:
        return encode_all(
            [
                rating(id=f"r-{team}-{n}", rating=5, team=f"team-{team}")
                for n in range(first, first + count)
                for team in range(TEAMS)
            ]
        )

    workers = [engine.worker("first").start()]
    try:
        engine.produce(engine.kafka.ratings_topic, ratings(0, 5))
        time.sleep(4.0)  # counted, and some of it committed
        engine.produce(engine.kafka.ratings_topic, ratings(5, 2))
        workers[0].kill()
        engine.produce(engine.kafka.ratings_topic, ratings(7, 3))
        workers.append(engine.worker("restarted").start())
        engine.wait_for(lambda: len(engine.delivered()) >= TEAMS, timeout=120)
        time.sleep(3.0)  # anything fired twice would land by now
        keys = [str(alert["key"]) for alert in engine.delivered()]
    finally:
        for worker in workers:
            worker.stop()
    counts = Counter(keys)
    print(
        f"\nFAULT worker-sigkill-windowed: events={TEAMS * 10} expected={TEAMS} "
        f"delivered={len(keys)} duplicates={sum(n - 1 for n in counts.values() if n > 1)} "
        f"lost={TEAMS - len(counts)}"
    )
    assert sorted(counts) == sorted(f"team-{team}" for team in range(TEAMS))
    assert set(counts.values()) == {1}


def test_repeated_sigkills_mid_stream_count_every_window_exactly(
    stack: Endpoints, unique: str, tmp_path: Path
) -> None:
    from tests.system.test_windowed_pipeline import run_with_kills

    run_with_kills(stack, unique, tmp_path, teams=30, per_team=100, chunks=8, kills={1, 3, 5})
