"""Delivery when its records cannot be read or written: wait, never lose or double-send."""

from redis.asyncio import Redis

from alert_engine.channels.outbox import OutboxDestination, read_outbox
from alert_engine.delivery import Deliverer, DeliveryLedger
from alert_engine.stats import Stats
from alert_engine.workerprocess import free_port
from tests.test_delivery import Recorder, make_alert


async def test_delivery_waits_for_an_unreachable_ledger_then_delivers_once(redis, unique):
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
    assert sum(stats.ledger_unavailable.values()) == 3  # on /metrics for an ops alert

    # Consumed again: the record written after Redis came back stops a second send.
    assert await deliverer.deliver(alert) == []
    assert destination.sent == [alert.id]
    assert stats.alerts_duplicate["team"] == 1
    await unreachable.aclose()


async def test_the_outbox_appends_an_alert_once_across_writers_on_one_file(tmp_path):
    # Two workers on one file; one was killed after writing, before its ledger record.
    path = tmp_path / "outbox.jsonl"
    first, second = OutboxDestination(path), OutboxDestination(path)
    await first.send(make_alert("r-1"))
    await second.send(make_alert("r-1"))
    await second.send(make_alert("r-2"))
    await first.send(make_alert("r-2"))
    await first.send(make_alert("r-3"))
    assert [entry["alert"]["key"] for entry in read_outbox(path)] == ["r-1", "r-2", "r-3"]


async def test_a_reader_skips_the_line_a_writer_is_still_appending(tmp_path):
    # The outbox page and the tests read while a worker appends: half a line is not an entry yet.
    path = tmp_path / "outbox.jsonl"
    await OutboxDestination(path).send(make_alert("r-1"))
    whole = path.read_bytes()
    with path.open("ab") as out:
        out.write(whole[: len(whole) // 2])
    assert [entry["alert"]["key"] for entry in read_outbox(path)] == ["r-1"]
