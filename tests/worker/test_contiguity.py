"""Records a stream passed over unprocessed (Faust empties its queues when it resumes the flow
after a seek) are read again: the partition is sought back to the first one missing."""

from types import SimpleNamespace
from typing import Any, cast

import faust
import pytest
from faust.types import TP, EventT

from alert_engine.worker.contiguity import Contiguity

RATINGS = TP("ratings", 2)


class Consumer:
    def __init__(self, committed: dict[TP, int] | None = None, fail: bool = False) -> None:
        self._committed_offset = committed or {}
        self.sought: list[tuple[TP, int]] = []
        self.fail = fail

    async def seek(self, tp: TP, offset: int) -> None:
        if self.fail:
            raise RuntimeError("partition not assigned")
        self.sought.append((tp, offset))


def over(consumer: Consumer) -> Contiguity:
    # A stand-in for the app: Contiguity reads only its consumer.
    return Contiguity(cast(faust.App, SimpleNamespace(consumer=consumer)))


def record(offset: int, tp: TP = RATINGS) -> EventT[Any]:
    # A stand-in for the event: Contiguity reads only its message's partition and offset.
    return cast("EventT[Any]", SimpleNamespace(message=SimpleNamespace(tp=tp, offset=offset)))


async def admitted(contiguity: Contiguity, offsets: list[int]) -> list[int]:
    return [offset for offset in offsets if await contiguity.admit(record(offset))]


async def test_a_gap_is_read_again_and_the_records_past_it_wait_for_it() -> None:
    consumer = Consumer()
    contiguity = over(consumer)
    # 7 and 8 were dropped from the queue; 9 and 10 had been fetched after them.
    assert await admitted(contiguity, [5, 6, 9, 10]) == [5, 6]
    assert consumer.sought == [(RATINGS, 7)]  # once for the gap, not once per record past it
    # After the seek: the missing ones, then the rest, each once.
    assert await admitted(contiguity, [7, 8, 9, 10, 11]) == [7, 8, 9, 10, 11]
    assert contiguity.sought == 1


async def test_after_a_rebalance_the_first_record_must_be_the_committed_offsets() -> None:
    consumer = Consumer(committed={RATINGS: 20})
    contiguity = over(consumer)
    assert await admitted(contiguity, [23]) == []
    assert consumer.sought == [(RATINGS, 20)]
    contiguity.forget()
    consumer._committed_offset = {}  # never committed (or 0): the first record sets the start
    assert await admitted(contiguity, [23, 24]) == [23, 24]
    # Records seen again (a seek back, a rebalance) are processed again, as Faust would.
    assert await admitted(contiguity, [23, 24, 25]) == [23, 24, 25]
    assert consumer.sought == [(RATINGS, 20)]


async def test_partitions_are_apart_and_a_failed_seek_processes_the_record() -> None:
    other = TP("ratings", 3)
    consumer = Consumer(fail=True)
    contiguity = over(consumer)
    assert await contiguity.admit(record(1))
    assert await contiguity.admit(record(1, other))
    assert await contiguity.admit(record(2, other))
    # The seek fails (the partition was revoked meanwhile): processed rather than held.
    assert await contiguity.admit(record(5))
    assert await contiguity.admit(record(6))


async def test_the_seek_is_repeated_until_the_missing_record_comes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Records Faust fetched before the seek go through its read-offset filter after it, which
    # then drops the records fetched again below them: the first seek can be undone.
    import asyncio

    from alert_engine.worker import contiguity as module

    monkeypatch.setattr(module, "RESEEK_SECONDS", 0.01)
    consumer = Consumer()
    contiguity = over(consumer)
    assert await admitted(contiguity, [1, 3]) == [1]
    await asyncio.sleep(0.055)
    assert len(consumer.sought) >= 4 and set(consumer.sought) == {(RATINGS, 2)}
    assert await admitted(contiguity, [2, 3]) == [2, 3]
    sought = len(consumer.sought)
    await asyncio.sleep(0.03)
    assert len(consumer.sought) == sought  # it came: no more seeks
