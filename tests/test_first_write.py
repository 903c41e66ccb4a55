"""Hash fields written once (case records, outcome facts), on a real Redis."""

from redis.asyncio import Redis

from alert_engine.storage.first_write import FirstWrites


async def test_the_first_value_of_a_field_stays_and_the_expiry_is_renewed(
    redis: Redis, unique: str
) -> None:
    writes = FirstWrites(redis)
    key, index = f"test-{unique}:facts", f"test-{unique}:index"
    await writes.write(
        key, {"alert": b"{}", "claimed_at": "t1"}, ttl_seconds=60, index=(index, "a-1")
    )
    await writes.write(
        key, {"claimed_at": "t2", "rating": 3}, ttl_seconds=600, index=(index, "a-1")
    )
    assert await redis.hgetall(key) == {b"alert": b"{}", b"claimed_at": b"t1", b"rating": b"3"}
    assert 60 < await redis.ttl(key) <= 600
    assert await redis.smembers(index) == {b"a-1"}


async def test_without_an_index_only_the_hash_is_written(redis: Redis, unique: str) -> None:
    key = f"test-{unique}:case"
    await FirstWrites(redis).write(key, {"slack_message": "C1 1.2"}, ttl_seconds=60)
    assert await redis.hgetall(key) == {b"slack_message": b"C1 1.2"}
    assert await redis.keys(f"test-{unique}:*") == [key.encode()]
