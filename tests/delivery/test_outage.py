"""Delivery when its records cannot be read or written: wait, never lose or double-send."""

import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from alert_engine.channels.outbox import OutboxDestination, read_outbox
from alert_engine.delivery.deliverer import Deliverer, DeliveryLedger
from alert_engine.stats import Stats
from devstack.stack import LocalStack
from devstack.workerprocess import WorkerProcess, free_port
from tests.delivery.test_deliverer import Recorder, make_alert
from tests.engine import Engine
from tests.factories import encode, rating


async def test_delivery_waits_for_an_unreachable_ledger_then_delivers_once(
    redis: Redis, unique: str
) -> None:
    unreachable = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    ledger = DeliveryLedger(unreachable, f"test-{unique}")
    sleeps: list[float] = []

    async def redis_comes_back_after_three_waits(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            ledger.redis = redis

    destination = Recorder()
    stats = Stats()
    deliverer = Deliverer(
        {"team": destination}, ledger, stats=stats, sleep=redis_comes_back_after_three_waits
    )
    alert = make_alert("r-1")
    assert await deliverer.deliver(alert) == []
    assert destination.sent == [alert.id]  # sent only once Redis answered "not delivered"
    assert sleeps == [0.1, 0.2, 0.4]
    assert sum(stats.as_dict()["ledger_unavailable"].values()) == 3  # on /metrics for ops

    # Consumed again: the record written after Redis came back stops a second send.
    assert await deliverer.deliver(alert) == []
    assert destination.sent == [alert.id]
    assert stats.alerts_duplicate["team"] == 1
    await unreachable.aclose()


async def test_the_outbox_appends_an_alert_once_across_writers_on_one_file(tmp_path: Path) -> None:
    # Two workers on one file; one was killed after writing, before its ledger record.
    path = tmp_path / "outbox.jsonl"
    first, second = OutboxDestination(path), OutboxDestination(path)
    await first.send(make_alert("r-1"))
    await second.send(make_alert("r-1"))
    await second.send(make_alert("r-2"))
    await first.send(make_alert("r-2"))
    await first.send(make_alert("r-3"))
    assert [entry["alert"]["key"] for entry in read_outbox(path)] == ["r-1", "r-2", "r-3"]


async def test_a_reader_skips_the_line_a_writer_is_still_appending(tmp_path: Path) -> None:
    # The outbox page and the tests read while a worker appends: half a line is not an entry yet.
    path = tmp_path / "outbox.jsonl"
    await OutboxDestination(path).send(make_alert("r-1"))
    whole = path.read_bytes()
    with path.open("ab") as out:
        out.write(whole[: len(whole) // 2])
    assert [entry["alert"]["key"] for entry in read_outbox(path)] == ["r-1"]


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[LocalStack]:
    """A broker and a Redis of this test's own: stopping Redis disturbs no other test."""
    local = LocalStack(tmp_path / "stack")
    local.start()
    try:
        yield local
    finally:
        local.stop()


def _ready_status(worker: WorkerProcess) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(worker.url + "/ready", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _until(what: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.2)


def _ledger_unavailable(worker: WorkerProcess) -> float:
    with urllib.request.urlopen(worker.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("alert_engine_ledger_unavailable_total")
    )


@pytest.mark.integration
def test_a_redis_outage_turns_ready_to_503_and_counts_then_delivers_when_redis_returns(
    own_stack: LocalStack, unique: str, tmp_path: Path
) -> None:
    # The first Redis call of a delivery is the follow-up's holdout look-up: an outage there
    # went unseen (the metric at 0, /ready 200) while every alert waited.
    engine = Engine(own_stack.endpoints, unique, tmp_path)
    worker = engine.worker().start()
    try:
        engine.produce(engine.kafka.ratings_topic, [encode(rating(id="r-before"))])
        engine.wait_for(lambda: len(engine.delivered()) == 1)
        assert _ready_status(worker) == 200
        assert _ledger_unavailable(worker) == 0

        own_stack.redis.stop()
        engine.produce(engine.kafka.ratings_topic, [encode(rating(id="r-during"))])
        _until(lambda: _ready_status(worker) == 503)
        # On /metrics, as ops watch it: /stats is behind sign-in, whose sessions are in Redis.
        _until(lambda: _ledger_unavailable(worker) > 0)
        assert worker.readiness()["redis_reachable"] is False
        assert len(engine.delivered()) == 1  # waiting, not dropped

        own_stack.redis.start()
        engine.wait_for(lambda: len(engine.delivered()) == 2, timeout=60)
        _until(lambda: _ready_status(worker) == 200)
    finally:
        worker.stop()
    assert sorted(alert["key"] for alert in engine.delivered()) == ["r-before", "r-during"]
