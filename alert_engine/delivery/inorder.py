"""Records handled concurrently, acknowledged in their partition's order.

The delivering agent works on many alerts at once, and one that waits for a retry must not hold
up the others' delivery. Their acknowledgements are another matter: Kafka keeps one committed
offset per partition, and Faust, before its first commit of a partition, commits past a record
not yet acknowledged if later ones are. So a record is acknowledged only once it and every record
before it on its partition are done: a worker that dies has the unfinished ones (and those after
them) again, and the delivery ledger skips what was already delivered.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from faust.types import TP, EventT


@dataclass
class Taken:
    event: EventT[Any]
    done: bool = False


class InOrderAcks:
    def __init__(self, ack: Callable[[EventT[Any]], Awaitable[Any]]) -> None:
        self._ack = ack
        self._taken: defaultdict[TP, deque[Taken]] = defaultdict(deque)

    def take(self, event: EventT[Any]) -> Taken:
        """Note a record as being worked on, in the order the stream gave it."""
        taken = Taken(event)
        self._taken[event.message.tp].append(taken)
        return taken

    async def done(self, taken: Taken) -> None:
        """The record is done: it is acknowledged, with the done ones after it, once the records
        before it are."""
        taken.done = True
        queue = self._taken[taken.event.message.tp]
        while queue and queue[0].done:
            await self._ack(queue.popleft().event)

    def waiting(self) -> int:
        """Records done but not yet acknowledged, behind one that is not done."""
        return sum(1 for queue in self._taken.values() for taken in queue if taken.done)
