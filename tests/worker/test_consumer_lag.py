"""`alert_engine_consumer_lag`: end offset minus the group's committed offset, per consumed
partition, as Kafka's own tools report LAG."""

from types import SimpleNamespace
from typing import cast

import faust
import prometheus_client
from faust.exceptions import ConsumerNotStarted
from faust.types import TP
from prometheus_client import CollectorRegistry

from alert_engine.worker.metrics import ConsumerLag


class FakeConsumer:
    def __init__(self, highwaters: dict[TP, int | None], committed: dict[TP, int | None]) -> None:
        self.highwaters = highwaters
        self._committed_offset = committed

    def assignment(self) -> set[TP]:
        return set(self.highwaters)

    def highwater(self, tp: TP) -> int | None:
        return self.highwaters[tp]


def app(
    consumer: object, generation: int = 1, read_offsets: dict[TP, int] | None = None
) -> faust.App:
    # A stand-in for the app: ConsumerLag reads only these three.
    return cast(
        faust.App,
        SimpleNamespace(
            consumer_generation_id=generation,
            consumer=consumer,
            monitor=SimpleNamespace(tp_read_offsets=read_offsets or {}),
        ),
    )


def test_lag_is_the_end_offset_less_the_committed_offset_of_each_assigned_partition() -> None:
    a, b, c, d = (TP("ratings", n) for n in range(4))
    consumer = FakeConsumer(
        highwaters={a: 120, b: 50, c: None, d: 30},
        # b: Faust keeps a committed 0 as None; d: never committed, read up to offset 9.
        committed={a: 100, b: None},
    )
    lags = ConsumerLag(app(consumer, read_offsets={d: 9})).lags()
    # c has not been fetched from yet: its end is unknown, no figure rather than a wrong one.
    assert lags == {a: 20, b: 50, d: 20}

    registry = CollectorRegistry()
    registry.register(ConsumerLag(app(consumer, read_offsets={d: 9})))
    text = prometheus_client.generate_latest(registry).decode()
    assert 'alert_engine_consumer_lag{partition="0",topic="ratings"} 20.0' in text


def test_a_worker_not_in_the_group_yet_serves_no_lag() -> None:
    class NotStarted:
        def assignment(self) -> None:
            raise ConsumerNotStarted()

    assert ConsumerLag(app(FakeConsumer({TP("r", 0): 5}, {}), generation=0)).lags() == {}
    assert ConsumerLag(app(NotStarted())).lags() == {}
