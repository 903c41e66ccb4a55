"""Batches of the events already waiting on a Faust stream, fuller while a worker catches up.

Faust's `take_events(n, within)` hands over a batch when `n` events are buffered or `within`
has passed. On a stream that is behind, its batch holds what Faust's background drainer moved
into the buffer in that time: about 150 of 500 events in the throughput benchmark, and each
batch has costs of its own (a `windows` record per partition, a partial state per group key,
a changelog message per key). Here an agent waits for its first event, takes every event
already waiting, and, while Kafka holds more of the partition than the consumer has handed over
(a backlog), waits up to `catch_up_wait` for the batch to fill. A stream that keeps up gets a
few events at a time, and every batch costs the same whatever it holds: with a `linger` (as Kafka's
`linger.ms`), a batch begun also waits that long for more events when none is known to be
waiting, so a worker keeping up at 1,000 events/s hands over a batch every `linger`, not one per
fetch. Without a linger a quiet stream's event is handed over at once.

A batch begun is always handed over within `catch_up_wait`: the next event is asked of the stream
in a task, and a batch waits for that task with a deadline (a task still waiting is kept for
the next batch). Waiting on the stream itself, a batch could be held for good: Faust empties the
streams' queues when partitions are revoked and when the worker stops (`flow_control.clear()`),
then waits for every event taken to be acknowledged. An agent that had seen one more event
waiting and went back to the stream for it found the queue emptied under it, and waited, holding
the events it had taken, for an event that would not come: a SIGTERMed worker waited out its
shutdown timeout (25 s) and exited with code 70, its last events unevaluated.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Generic, TypeVar, cast

import faust
from faust.types import ChannelT, EventT, Message

T = TypeVar("T")


async def waiting_batches(
    stream: faust.Stream[T],
    max_size: int,
    catch_up_wait: float,
    admit: Callable[[EventT[T]], Awaitable[bool]] | None = None,
    linger: float = 0.0,
    ack: bool = True,
) -> AsyncGenerator[list[EventT[T]], None]:
    """The stream's events in batches, each acknowledged once the agent asks for the next one
    (its outputs are published by then): a worker that dies while on a batch has it again on
    restart. `admit`: False for an event to pass over unprocessed and unacknowledged (see
    `worker.contiguity`). `linger`: how long a batch begun waits for more events when none is
    known to be waiting (at most `catch_up_wait`). `ack`: False when the agent acknowledges
    the events itself (`DeferredAcks`)."""
    linger = min(linger, catch_up_wait)
    # Faust acks each event as the next is taken; these are acked per batch, below.
    stream.enable_acks = False
    # An agent's stream reads a topic, a channel: the queue the consumer fills.
    queue = cast(ChannelT[T], stream.channel).queue
    consumer = stream.app.consumer
    loop = asyncio.get_running_loop()
    events = aiter(stream)
    # The stream's next event, asked for and not yet taken into a batch.
    upcoming: asyncio.Task[T] | None = None

    def taken() -> EventT[T]:
        event = stream.current_event  # set by Faust for the value just yielded
        if event is None:  # pragma: no cover - Faust sets it for every value it yields
            raise RuntimeError("a stream value without its event")
        return event

    try:
        while True:
            if upcoming is None:
                upcoming = asyncio.ensure_future(anext(events))
            try:
                await upcoming
            except StopAsyncIteration:
                return
            upcoming = None
            first = taken()
            if admit is not None and not await admit(first):
                continue
            batch = [first]
            begun = loop.time()
            fill_until = begun + catch_up_wait
            linger_until = begun + linger
            while len(batch) < max_size:
                if not queue.empty() or _behind(consumer, batch[-1].message):
                    # More is waiting (in the stream's queue, or still in Kafka): take it, but
                    # never wait past the deadline, whatever happens to the stream's queue.
                    remaining = fill_until - loop.time()
                else:
                    # Nothing known to be waiting: what arrives within the linger joins.
                    remaining = linger_until - loop.time()
                if remaining <= 0:
                    break
                upcoming = asyncio.ensure_future(anext(events))
                done, _ = await asyncio.wait({upcoming}, timeout=remaining)
                if not done:
                    break
                try:
                    upcoming.result()
                except StopAsyncIteration:
                    break
                upcoming = None
                event = taken()
                if admit is None or await admit(event):
                    batch.append(event)
            yield batch
            if ack:
                for event in batch:
                    await stream.ack(event)
    finally:
        if upcoming is not None:
            upcoming.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await upcoming


class DeferredAcks(Generic[T]):
    """Batches whose outputs are written later, acknowledged once they are: the windowed agent
    writes the window state its batches changed once per `interval` (each group key's entry
    once, however many batches changed it) instead of once per batch, and a record may be
    committed only once the state holding its counts is on its way to the changelog (Faust
    flushes the producer before it commits).

    The agent holds `lock` while it applies a batch and sends its alerts; `write`, run with
    the lock, writes the state and acknowledges every batch handed to `done` before. A timer
    (`run`) writes every `interval`, so Faust's wait for every record taken to be
    acknowledged (a rebalance, a stop) ends within it, before Faust drops a revoked partition's
    entries."""

    def __init__(
        self,
        stream: faust.Stream[T],
        write: Callable[[], object],
        interval: float,
    ) -> None:
        self.stream = stream
        self._write = write
        self.interval = interval
        self.lock = asyncio.Lock()
        self._done: list[EventT[T]] = []
        self._written_at = asyncio.get_running_loop().time()

    def done(self, batch: list[EventT[T]]) -> None:
        """The batch is applied and its outputs published: acknowledged at the next write."""
        self._done.extend(batch)

    async def write(self) -> None:
        """Write the state (the caller holds `lock`), then acknowledge what it holds."""
        self._write()
        self._written_at = asyncio.get_running_loop().time()
        done, self._done = self._done, []
        for event in done:
            await self.stream.ack(event)

    async def run(self) -> None:
        """Write whatever waits every `interval`, until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(0.0, self._written_at + self.interval - loop.time()))
            async with self.lock:
                await self.write()


def _behind(consumer: faust.types.ConsumerT, message: Message) -> bool:
    """Whether Kafka had later records of the message's partition when it was last asked."""
    try:
        end = consumer.highwater(message.tp)
    except Exception:
        # No broker has answered for the partition (a consumer not yet started, a stream on an
        # in-memory channel): nothing is known to be waiting, so the batch is handed over.
        return False
    return end is not None and message.offset + 1 < end
