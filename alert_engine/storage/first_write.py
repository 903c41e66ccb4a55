"""Hash fields written once: the first value of a field stays, later writes of it are no-ops.

Case records and outcome facts keep what was first seen of an alert (the alert itself, the
first claim). That is one `HSETNX` per field plus the key's expiry (and, for outcome facts, the
alert's entry in an index set), atomic. As a `MULTI`/`EXEC` pipeline it is a command per field
that redis-py packs and parses one by one, which made these records most of the Redis time of a
delivery; as one script it is one command and one reply.
"""

from __future__ import annotations

from collections.abc import Mapping

from redis.asyncio import Redis

# KEYS[1] the hash, KEYS[2] an index set (optional); ARGV[1] the TTL in seconds, ARGV[2] the
# member for the index, then field, value pairs.
_WRITE_FIRST = """
for i = 3, #ARGV, 2 do
    redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
if KEYS[2] then
    redis.call('SADD', KEYS[2], ARGV[2])
end
return 1
"""


class FirstWrites:
    """Writes hash fields that are not there yet, renews the hash's expiry and (optionally)
    adds a member to an index set, in one atomic call."""

    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(_WRITE_FIRST)

    async def write(
        self,
        key: str,
        fields: Mapping[str, str | bytes | int | float],
        *,
        ttl_seconds: int,
        index: tuple[str, str] | None = None,
    ) -> None:
        """`index` is (set key, member)."""
        keys = [key] if index is None else [key, index[0]]
        args: list[str | bytes | int | float] = [ttl_seconds, "" if index is None else index[1]]
        for name, value in fields.items():
            args.extend((name, value))
        await self._script(keys=keys, args=args)
