"""Batches of the events already waiting on a Faust stream, fuller while a worker catches up.

Faust's `take_events(n, within)` hands over a batch when `n` events are buffered or `within`
has passed. On a stream that is behind, its batch holds what Faust's background drainer moved
into the buffer in that time: about 150 of 500 events in the throughput benchmark, and each
batch has costs of its own (a `windows` record per partition, a partial state per group key,
a changelog message per key). Here an agent waits for its first event, takes every event
already in the stream's queue, and, while Kafka holds more of the partition than the consumer
has handed over (a backlog), waits up to `catch_up_wait` for the batch to fill. A stream that
keeps up gets its events at once, one at a time when it is quiet.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar, cast

import faust
from faust.types import ChannelT, EventT, Message

T = TypeVar("T")

# How often a batch waiting to fill looks at the stream's queue again.
POLL_SECONDS = 0.001


async def waiting_batches(
    stream: faust.Stream[T], max_size: int, catch_up_wait: float
) -> AsyncIterator[list[EventT[T]]]:
    """The stream's events in batches, each acknowledged once the agent asks for the next one
    (its outputs are published by then): a worker that dies while on a batch has it again on
    restart."""
    # Faust acks each event as the next is taken; these are acked per batch, below.
    stream.enable_acks = False
    # An agent's stream reads a topic, a channel: the queue the consumer fills.
    queue = cast(ChannelT[T], stream.channel).queue
    consumer = stream.app.consumer
    loop = asyncio.get_running_loop()
    batch: list[EventT[T]] = []
    fill_until = 0.0
    async for _ in stream:
        event = stream.current_event
        if event is None:  # pragma: no cover - Faust sets it for every value it yields
            raise RuntimeError("a stream value without its event")
        if not batch:
            fill_until = loop.time() + catch_up_wait
        batch.append(event)
        # Faust's consumer fills the queue: there is no event to wait on, so look again.
        while (  # noqa: ASYNC110
            len(batch) < max_size
            and queue.empty()
            and _behind(consumer, event.message)
            and loop.time() < fill_until
        ):
            await asyncio.sleep(POLL_SECONDS)
        if len(batch) >= max_size or queue.empty():
            yield batch
            for taken in batch:
                await stream.ack(taken)
            batch = []


def _behind(consumer: faust.types.ConsumerT, message: Message) -> bool:
    """Whether Kafka had later records of the message's partition when it was last asked."""
    try:
        end = consumer.highwater(message.tp)
    except Exception:
        # No broker has answered for the partition (a consumer not yet started, a stream on an
        # in-memory channel): nothing is known to be waiting, so the batch is handed over.
        return False
    return end is not None and message.offset + 1 < end
