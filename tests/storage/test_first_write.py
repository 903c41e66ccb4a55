"""Hash fields written once (case records), on a real Redis."""

from redis.asyncio import Redis

from alert_engine.storage.first_write import FirstWrites


async def test_the_first_value_of_a_field_stays_and_the_expiry_is_renewed(
    redis: Redis, unique: str
) -> None:
    writes = FirstWrites(redis)
    key = f"test-{unique}:case"
    await writes.write(key, {"slack_message": "C1 1.2", "claimed_at": "t1"}, ttl_seconds=60)
    await writes.write(key, {"claimed_at": "t2", "rating": 3}, ttl_seconds=600)
    assert await redis.hgetall(key) == {
        b"slack_message": b"C1 1.2",
        b"claimed_at": b"t1",
        b"rating": b"3",
    }
    assert 60 < await redis.ttl(key) <= 600
    # Only the hash is written.
    assert await redis.keys(f"test-{unique}:*") == [key.encode()]
