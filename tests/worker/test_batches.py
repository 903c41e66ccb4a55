"""Agents take their events in batches of those already waiting (`waiting_batches`), on a real
in-memory Faust channel."""

import asyncio
import contextlib
from typing import cast
from unittest.mock import patch

import faust
import pytest
from faust.types import ChannelT, EventT

from alert_engine.worker.batches import DeferredAcks, waiting_batches


def channel_stream() -> tuple[ChannelT[int], faust.Stream[int]]:
    app = faust.App("batches-test", autodiscover=False)
    app.flow_control.resume()  # as a started worker does
    channel: ChannelT[int] = app.channel()
    # Faust types the stream as its StreamT protocol; it is a faust.Stream.
    return channel, cast("faust.Stream[int]", channel.stream())


async def take(
    stream: faust.Stream[int],
    max_size: int,
    batches: int,
    wait: float = 0.05,
    linger: float = 0.0,
) -> list[list[object]]:
    taken: list[list[object]] = []
    # Closed at once, as an agent's are when it stops: its request for the next event ends too.
    batched = waiting_batches(stream, max_size, catch_up_wait=wait, linger=linger)
    async with contextlib.aclosing(batched) as it:
        async for batch in it:
            taken.append([event.value for event in batch])
            if len(taken) == batches:
                break
    return taken


@pytest.mark.asyncio
async def test_the_events_waiting_are_one_batch_up_to_its_size() -> None:
    channel, stream = channel_stream()
    for n in range(7):
        await channel.send(value=n)
    assert await take(stream, max_size=5, batches=2) == [[0, 1, 2, 3, 4], [5, 6]]


@pytest.mark.asyncio
async def test_a_quiet_streams_event_is_handed_over_at_once() -> None:
    channel, stream = channel_stream()

    async def trickle() -> None:
        for n in range(3):
            await channel.send(value=n)
            await asyncio.sleep(0.02)

    producer = asyncio.create_task(trickle())
    assert await take(stream, max_size=500, batches=3) == [[0], [1], [2]]
    await producer


@pytest.mark.asyncio
async def test_with_a_linger_the_events_of_a_trickle_arriving_within_it_are_one_batch() -> None:
    # A worker that keeps up sees a few events at a time: with a linger, those arriving within
    # it share a batch (and its windows records and changelog messages), as Kafka's linger.ms.
    channel, stream = channel_stream()

    async def trickle() -> None:
        for n in range(6):
            await channel.send(value=n)
            await asyncio.sleep(0.01 if n != 2 else 0.5)

    producer = asyncio.create_task(trickle())
    batches = await take(stream, max_size=500, batches=2, wait=1.0, linger=0.2)
    assert batches == [[0, 1, 2], [3, 4, 5]]
    await producer


@pytest.mark.asyncio
async def test_a_lingering_batch_is_handed_over_after_the_linger_and_never_after_the_wait() -> None:
    channel, stream = channel_stream()
    loop = asyncio.get_running_loop()
    await channel.send(value=0)
    started = loop.time()
    assert await take(stream, max_size=500, batches=1, wait=1.0, linger=0.1) == [[0]]
    assert 0.1 <= loop.time() - started < 1.0
    # A linger longer than the wait while behind is cut to it.
    await channel.send(value=1)
    started = loop.time()
    assert await take(stream, max_size=500, batches=1, wait=0.1, linger=30) == [[1]]
    assert loop.time() - started < 5


@pytest.mark.asyncio
async def test_a_stream_behind_waits_for_more_but_hands_over_its_batch_after_the_wait() -> None:
    channel, stream = channel_stream()
    await channel.send(value=0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with patch("alert_engine.worker.batches._behind", return_value=True):
        # Kafka holds more of the partition, but none of it reaches the stream.
        assert await take(stream, max_size=500, batches=1, wait=0.2) == [[0]]
    assert loop.time() - started >= 0.2
    with patch("alert_engine.worker.batches._behind", return_value=False):
        await channel.send(value=1)
        started = loop.time()
        assert await take(stream, max_size=500, batches=1, wait=30) == [[1]]
    assert loop.time() - started < 30


@pytest.mark.asyncio
async def test_a_batch_begun_is_handed_over_when_faust_empties_the_queue_under_it() -> None:
    # Faust empties every stream's queue when partitions are revoked and when the worker stops
    # (`flow_control.clear()`), then waits for the events already taken to be acknowledged. An
    # agent that saw one more event waiting must not wait for it for good with the first in hand:
    # the worker's shutdown waited out its timeout that way, and the event was never evaluated.
    channel, stream = channel_stream()
    for n in range(3):
        await channel.send(value=n)
    # Faust types the stream's channel as any async iterator; it is the channel.
    queue = cast("faust.Channel[int]", stream.channel).queue
    loop = asyncio.get_running_loop()
    looked = queue.empty
    cleared: list[bool] = []

    def empty() -> bool:
        waiting: bool = looked()
        if waiting is False and not cleared:
            # Seen not empty; emptied before the agent gets there, as a revocation does.
            cleared.append(True)
            loop.call_soon(queue.clear)
        return waiting

    started = loop.time()
    with patch.object(queue, "empty", empty):
        assert await asyncio.wait_for(take(stream, max_size=500, batches=1, wait=0.1), 5) == [[0]]
    assert cleared and loop.time() - started < 1.0


class Recorded:
    """What the windowed agent's stream sees of `DeferredAcks`: acks, after the state writes."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self._acked: dict[object, asyncio.Event] = {}

    async def ack(self, event: object) -> bool:
        self.log.append(f"ack {event}")
        self.acked(event).set()
        return True

    def acked(self, event: object) -> asyncio.Event:
        return self._acked.setdefault(event, asyncio.Event())

    def write(self) -> None:
        self.log.append("write")


@pytest.mark.asyncio
async def test_deferred_batches_are_acknowledged_only_after_the_state_is_written() -> None:
    recorded = Recorded()
    acks = DeferredAcks(cast("faust.Stream[int]", recorded), recorded.write, interval=0.05)
    writer = asyncio.create_task(acks.run())
    try:
        async with acks.lock:
            acks.done(cast("list[EventT[int]]", ["e1", "e2"]))
            acks.done(cast("list[EventT[int]]", ["e3"]))
            # Held by the agent (a batch applied, its alerts not yet in Kafka): no write.
            await asyncio.sleep(0.15)
            assert recorded.log == []
        await asyncio.wait_for(recorded.acked("e3").wait(), 5.0)
        # One write for both batches, then their acks; nothing is acked before it.
        assert recorded.log == ["write", "ack e1", "ack e2", "ack e3"]
        acks.done(cast("list[EventT[int]]", ["e4"]))
        # No batch comes after it: the timer writes and acks it within the interval.
        await asyncio.wait_for(recorded.acked("e4").wait(), 5.0)
        assert recorded.log[recorded.log.index("ack e4") - 1] == "write"
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
