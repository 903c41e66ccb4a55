"""Hash fields written once: the first value of a field stays, later writes of it are no-ops.

Case records keep what was first seen of an alert: where it was first posted in Slack (an
escalation or a digest elsewhere does not move its thread). That is one `HSETNX` per field plus
the key's expiry, atomic. As a `MULTI`/`EXEC` pipeline it is a command per field that redis-py
packs and parses one by one, which made these records most of the Redis time of a delivery; as
one script it is one command and one reply.
"""

from __future__ import annotations

from collections.abc import Mapping

from redis.asyncio import Redis

# KEYS[1] the hash; ARGV[1] the TTL in seconds, then field, value pairs.
_WRITE_FIRST = """
for i = 2, #ARGV, 2 do
    redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""


class FirstWrites:
    """Writes hash fields that are not there yet and renews the hash's expiry, in one atomic
    call."""

    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(_WRITE_FIRST)

    async def write(
        self,
        key: str,
        fields: Mapping[str, str | bytes | int | float],
        *,
        ttl_seconds: int,
    ) -> None:
        args: list[str | bytes | int | float] = [ttl_seconds]
        for name, value in fields.items():
            args.extend((name, value))
        await self._script(keys=[key], args=args)
