"""Records a stream skipped over are read again: every offset of the engine's topics is processed.

The engine's topics have no gaps (no compaction, no transactions), so a record whose offset is
beyond the next one expected of its partition means the consumer passed records by unprocessed.
Faust does that around a rebalance: it empties the streams' queues when it resumes the flow
(`FlowControlEvent.resume()`), after it has sought the partitions to their committed offsets, so
records fetched in between are dropped from the queue while the fetch goes on past them. Their
partition's later records are processed and acknowledged, and Faust's commit (which accepts a
run of acknowledged offsets one past the committed one, or any run while it knows no committed
offset) can move past the dropped ones: those alerts were late until the next rebalance, or lost.

Here the first record past a gap is not processed: the partition is sought back to the first
offset missing, and records beyond it are passed over (unacknowledged) until the missing one
comes. The seek is repeated every `RESEEK_SECONDS` while it has not come (at most
`RESEEKS` times): records Faust had fetched before the seek still go through its read-offset
filter, which then drops the records fetched again below them, so the first seek can be
undone by them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TP, EventT

log = logging.getLogger(__name__)

RESEEK_SECONDS = 0.5
RESEEKS = 40
_ANY = -1


@dataclass
class _Partition:
    expected: int
    # The offset sought back to, until its record comes.
    seeking: int | None = None


class Contiguity:
    """Per partition of one agent's stream, the offset its next record must have."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._partitions: dict[TP, _Partition] = {}
        self.sought = 0  # gaps sought back over: a figure for tests and logs
        self._reseeks: set[asyncio.Future[bool]] = set()

    def forget(self) -> None:
        """A rebalance: every partition starts again from where the consumer seeks it."""
        self._partitions.clear()

    async def admit(self, event: EventT[Any]) -> bool:
        """Whether to process the record; False for one past a gap (the gap is read again)."""
        message = event.message
        tp, offset = message.tp, message.offset
        state = self._partitions.get(tp)
        if state is None:
            # The first record since a rebalance: it should be the committed offset's.
            committed = self._committed(tp)
            state = self._partitions[tp] = _Partition(
                expected=offset if committed is None else committed
            )
        if state.expected == _ANY:
            state.expected = offset + 1
            return True
        if offset < state.expected:
            # Seen again (a seek back, a rebalance): processed again, as Faust would.
            return True
        if offset == state.expected:
            state.expected = offset + 1
            state.seeking = None
            return True
        if state.seeking == state.expected:
            return False  # the seek back is under way: its records come first
        log.warning(
            "%s[%d]: records %d..%d were passed over unprocessed (offset %d came next): "
            "reading them again",
            tp.topic,
            tp.partition,
            state.expected,
            offset - 1,
            offset,
        )
        if not await self._seek(tp, state.expected):
            # The partition is moving (revoked meanwhile): whoever has it next starts at its
            # committed offset, which is not past the gap. Processed, as before this check.
            state.expected = offset + 1
            return True
        state.seeking = state.expected
        self.sought += 1
        asyncio.get_running_loop().call_later(
            RESEEK_SECONDS, self._reseek, tp, state, state.expected, RESEEKS
        )
        return False

    async def _seek(self, tp: TP, offset: int) -> bool:
        try:
            await self.app.consumer.seek(tp, offset)
        except Exception:
            log.exception("%s[%d]: could not seek back to %d", tp.topic, tp.partition, offset)
            return False
        return True

    def _reseek(self, tp: TP, state: _Partition, offset: int, left: int) -> None:
        # Still waiting for the same record of the same assignment (a rebalance forgets it).
        if self._partitions.get(tp) is not state or state.seeking != offset:
            return
        if left <= 0:
            log.error(
                "%s[%d]: record %d did not come after %d seeks; processing what comes",
                tp.topic,
                tp.partition,
                offset,
                RESEEKS,
            )
            # The next record, whatever its offset, starts the partition again.
            self._partitions[tp] = _Partition(expected=_ANY)
            return
        reseek = asyncio.ensure_future(self._seek(tp, offset))
        self._reseeks.add(reseek)
        reseek.add_done_callback(self._reseeks.discard)
        asyncio.get_running_loop().call_later(
            RESEEK_SECONDS, self._reseek, tp, state, offset, left - 1
        )

    def _committed(self, tp: TP) -> int | None:
        # Faust keeps the offset it sought the partition to (its committed offset), None for 0
        # or for a partition never committed: then the first record sets the expectation.
        committed = getattr(self.app.consumer, "_committed_offset", {}).get(tp)
        return committed if isinstance(committed, int) and committed > 0 else None
