"""`/ready`: whether a worker is a settled member of its consumer group.

Ready means the worker has joined the group and no rebalance is under way (Faust marks one from
the moment partitions are revoked until the new assignment is recovered and the streams resume).
It does not mean the worker owns partitions: with more replicas than partitions some members get
none, and they are standbys, ready to take partitions over when another member leaves. Were they
"not ready" for good, a rolling update bounded by `maxUnavailable` would wait on them forever.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Any

import faust
from faust.exceptions import ConsumerNotStarted


@dataclass(frozen=True)
class Readiness:
    ready: bool
    # The group generation this worker last joined; 0 until it has joined.
    generation: int
    rebalancing: bool
    # Partitions of the engine's topics this worker consumes (0 on a standby member).
    partitions: int

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
        ready=joined and not rebalancing,
        generation=generation,
        rebalancing=rebalancing,
        partitions=partitions,
    )
