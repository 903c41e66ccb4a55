"""Grouping: alerts of a route with `group_by` wait in Redis and go out as one digest message.

A group is the route path plus the values of its `group_by` fields. Its first alert makes it due
after `group_wait`; a group that was sent is due again no sooner than `group_interval` after.
Everything lives in Redis, so a group survives worker restarts and any worker may send it; a
worker takes a due group with a lease (a minute), and the digest's id (a hash of its alerts) keys
the delivery ledger, so a group taken again after a crash is not posted twice.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import orjson
from redis.asyncio import Redis

from alert_engine.alerts import Alert
from alert_engine.channels import Digest
from alert_engine.routing import RouteMatch, field_value
from alert_engine.storage import redis_keys
from alert_engine.storage.due_queue import DueQueue

LEASE = timedelta(minutes=1)


class Groups:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.queue = DueQueue(redis, redis_keys.groups_due(prefix))

    async def add(self, alert: Alert, match: RouteMatch, now: datetime) -> None:
        grouping = match.grouping
        assert grouping is not None
        values = {name: field_value(alert, name) for name in grouping.by}
        group = orjson.dumps(
            {
                "route": " > ".join(match.path),
                "group": values,
                "destinations": list(match.destinations),
                "interval": grouping.interval.total_seconds(),
            },
            option=orjson.OPT_SORT_KEYS,
        ).decode()
        group_id = hashlib.blake2b(group.encode(), digest_size=10).hexdigest()
        last_sent = await self.redis.get(redis_keys.group_sent(self.prefix, group_id))
        due = now + grouping.wait
        if last_sent is not None:
            due = max(due, datetime.fromtimestamp(float(last_sent), now.tzinfo) + grouping.interval)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(redis_keys.group_meta(self.prefix), group_id, group)
            pipe.hsetnx(redis_keys.group_alerts(self.prefix, group_id), alert.id, alert.to_json())
            self.queue.add_to(pipe, group_id, due.timestamp())
            await pipe.execute()

    async def take_due(self, now: datetime, limit: int = 20) -> list[Digest]:
        taken = await self.queue.take_due(
            now.timestamp(), lease_seconds=LEASE.total_seconds(), limit=limit
        )
        digests = []
        for group_id in (item.id for item in taken):
            meta = await self.redis.hget(redis_keys.group_meta(self.prefix), group_id)
            raw = await self.redis.hgetall(redis_keys.group_alerts(self.prefix, group_id))
            if meta is None or not raw:
                await self.queue.remove(group_id)
                continue
            group = orjson.loads(meta)
            alerts = sorted(
                (Alert.model_validate_json(value) for value in raw.values()),
                key=lambda a: a.fired_at,
            )
            digest_id = (
                "dg-"
                + hashlib.blake2b(
                    (group_id + "".join(a.id for a in alerts)).encode(), digest_size=10
                ).hexdigest()
            )
            digests.append(
                Digest(
                    id=digest_id,
                    group_id=group_id,
                    route=group["route"],
                    group=group["group"],
                    destinations=tuple(group["destinations"]),
                    alerts=tuple(alerts),
                )
            )
        return digests

    async def sent(self, digest: Digest, now: datetime) -> None:
        """The digest went out: its alerts leave the group; alerts that came meanwhile wait for
        the group interval."""
        group_id = digest.group_id
        alerts_key = redis_keys.group_alerts(self.prefix, group_id)
        meta = await self.redis.hget(redis_keys.group_meta(self.prefix), group_id)
        interval = orjson.loads(meta)["interval"] if meta is not None else 300.0
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(alerts_key, *(alert.id for alert in digest.alerts))
            pipe.set(
                redis_keys.group_sent(self.prefix, group_id),
                now.timestamp(),
                ex=int(interval) + 3600,
            )
            pipe.hlen(alerts_key)
            self.queue.remove_from(pipe, group_id)
            _, _, remaining, _ = await pipe.execute()
        if remaining:
            await self.queue.add(group_id, now.timestamp() + interval)
