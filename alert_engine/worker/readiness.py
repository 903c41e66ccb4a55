"""`/ready`: whether a worker is a settled member of its consumer group.

Ready means the worker has joined the group and no rebalance is under way (Faust marks one from
the moment partitions are revoked until the new assignment is recovered and the streams resume).
It does not mean the worker owns partitions: with more replicas than partitions some members get
none, and they are standbys, ready to take partitions over when another member leaves. Were they
"not ready" for good, a rolling update bounded by `maxUnavailable` would wait on them forever.

Nor is a worker ready while Redis is unreachable (a delivery or a look-up waiting on it, or a
timer's last tick skipped): it consumes but cannot deliver, and the 503 is what an operator's
probe or alert sees.

A PostgreSQL outage shows in the body (`database_reachable`) but leaves the worker ready: only the
outcome history waits (its records stay in Kafka), while clicks, survey answers and deliveries go
on; were the workers unready, the public Service would stop sending them Slack's clicks.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Any

import faust
from faust.exceptions import ConsumerNotStarted

from alert_engine.history.database import DATABASE
from alert_engine.storage.outage import REDIS


@dataclass(frozen=True)
class Readiness:
    ready: bool
    # The group generation this worker last joined; 0 until it has joined.
    generation: int
    rebalancing: bool
    # Partitions of the engine's topics this worker consumes (0 on a standby member).
    partitions: int
    # False while work waits on Redis or a timer's last tick could not reach it.
    redis_reachable: bool = True
    # False while the history's projection waits for PostgreSQL (its records wait in Kafka; the
    # worker stays ready).
    database_reachable: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def readiness(app: faust.App, topics: Collection[str]) -> Readiness:
    """`topics`: the names whose assigned partitions count (the tables' changelogs do not)."""
    # Set by Faust from the group coordinator each time the group assigns partitions.
    generation = app.consumer_generation_id
    joined = generation > 0
    rebalancing = bool(app.rebalancing)
    partitions = 0
    if joined:
        try:
            partitions = sum(1 for tp in app.consumer.assignment() if tp.topic in topics)
        except ConsumerNotStarted:
            joined = False
    return Readiness(
        ready=joined and not rebalancing and REDIS.reachable,
        generation=generation,
        rebalancing=rebalancing,
        partitions=partitions,
        redis_reachable=REDIS.reachable,
        database_reachable=DATABASE.reachable,
    )
