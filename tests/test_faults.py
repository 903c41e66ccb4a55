"""Faults on the real stack, mid-stream: a worker SIGKILLed, the Kafka broker and Redis stopped
and restarted. Thousands of events, hundreds of expected alerts: 0 lost, 0 duplicates.

Slow (tens of seconds each): excluded from `make test`, run by `make test-faults`. The broker and
Redis tests start a stack of their own, so the session's shared one is never disturbed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from alert_engine.stack import LocalStack
from alert_engine.workerprocess import WorkerProcess
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


def test_sigkill_of_a_worker_mid_stream_loses_and_duplicates_nothing(stack, unique, tmp_path):
    engine = Engine(stack, unique, tmp_path)
    run_with_fault(
        engine,
        "worker-sigkill",
        fault=lambda worker: worker.kill(),
        recover=lambda: engine.worker("restarted").start(),
    )


def test_kafka_broker_stopped_and_restarted_mid_stream(own_stack, unique, tmp_path):
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


def test_redis_stopped_and_restarted_mid_stream(own_stack, unique, tmp_path):
    engine = Engine(own_stack.endpoints, unique, tmp_path)

    def restart_redis() -> None:
        own_stack.redis.start()

    run_with_fault(
        engine,
        "redis-restart",
        fault=lambda worker: own_stack.redis.stop(),
        recover=lambda: restart_redis(),
    )
