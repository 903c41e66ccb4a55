"""The due queue that escalations, digests and follow-up surveys share, on the session's Redis."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from alert_engine.storage.due_queue import DueQueue, claim


def queue(redis: Redis, unique: str, payloads: bool = True) -> DueQueue:
    return DueQueue(redis, f"{unique}:due", f"{unique}:payloads" if payloads else None)


async def test_an_item_is_taken_once_due_and_by_one_worker_until_its_lease_ends(
    redis: Redis, unique: str
) -> None:
    first, second = queue(redis, unique), queue(redis, unique)
    await first.add("a", 100.0, "A")
    await first.add("b", 200.0, "B")
    assert await first.take_due(99.0, lease_seconds=60, limit=10) == []
    [taken] = await first.take_due(150.0, lease_seconds=60, limit=10)
    assert (taken.id, taken.payload) == ("a", "A")
    # Leased: another worker does not take it before the lease ends, then does.
    assert await second.take_due(150.0, lease_seconds=60, limit=10) == []
    # Soonest first: "b" was due at 200, "a" again at its lease end, 210.
    assert [t.id for t in await second.take_due(210.0, lease_seconds=60, limit=10)] == ["b", "a"]


async def test_adding_again_keeps_the_first_due_time_and_payload(redis: Redis, unique: str) -> None:
    due = queue(redis, unique)
    await due.add("a", 100.0, "first")
    await due.add("a", 50.0, "second")
    assert await due.due_at("a") == 100.0
    [taken] = await due.take_due(100.0, lease_seconds=1, limit=10)
    assert taken.payload == "first"


async def test_a_removed_item_is_never_taken_and_one_without_payload_is_dropped(
    redis: Redis, unique: str
) -> None:
    due = queue(redis, unique)
    await due.add("a", 1.0, "A")
    await due.add("b", 1.0, "B")
    assert await due.remove("a") is True
    assert await due.remove("a") is False
    await redis.hdel(f"{unique}:payloads", "b")  # cancelled by a path that only knew the payload
    assert await due.take_due(10.0, lease_seconds=1, limit=10) == []
    assert await due.pending() == 0


async def test_a_queue_without_payloads_hands_out_ids(redis: Redis, unique: str) -> None:
    due = queue(redis, unique, payloads=False)
    await due.add("group-1", 5.0)
    assert [(t.id, t.payload) for t in await due.take_due(5.0, lease_seconds=1, limit=1)] == [
        ("group-1", "")
    ]


async def test_a_claim_is_held_by_its_first_holder_and_free_again_once_expired(
    redis: Redis, unique: str
) -> None:
    key = f"{unique}:claim"
    assert await claim(redis, key, "al-1", ttl_ms=200)
    assert await claim(redis, key, "al-1", ttl_ms=200)  # the same holder asking again
    assert not await claim(redis, key, "al-2", ttl_ms=200)
    await asyncio.sleep(0.3)
    assert await claim(redis, key, "al-2", ttl_ms=200)
