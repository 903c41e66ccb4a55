"""How far event time has got: the watermark that decides when a window takes no more events.

A windows partition receives a group key's events from every partition of the input stream, and
those partitions move through event time at their own pace: keyed production makes them uneven,
and a worker catching up after an outage reads one partition's backlog faster than another's. As
in Flink and Kafka Streams, the watermark is therefore the *minimum* over the input partitions
(sources) of the latest event time each has shown: a window that ended more than its grace
before it cannot get another in-order event from any source. Judging lateness against the fastest
partition instead counted most of a slow partition's events late.

The sources are known in advance (the input topic's partitions): a partition that has sent
nothing yet holds the watermark back too, or a worker starting on a backlog would judge one
partition's events by another's that happened to be read first.

A source that has not moved its latest time for `idle_seconds` (wall clock) is idle and no longer
holds the watermark back, so one quiet partition cannot keep every window open forever; when
every source is idle the watermark is the latest time of any.

The sources' latest times are kept with the window state (`snapshot`, `restore`): a restarted
worker, or one that took the partition over in a rebalance, judges lateness as the last one did,
instead of accepting events into windows that already closed. A restored source counts as having
just moved: its idle timeout starts again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alert_engine.events import Stream

# A source that has shown no newer event for this long (seconds of wall time) is idle.
DEFAULT_IDLE_SECONDS = 30.0


@dataclass
class SourceTime:
    """The latest event time a source has shown, and when (monotonic clock) it last moved."""

    latest: float
    moved_at: float


@dataclass
class Watermark:
    """The watermark of one stream on one partition, over the sources its events come from."""

    idle_seconds: float = DEFAULT_IDLE_SECONDS
    clock: Callable[[], float] = time.monotonic
    sources: dict[int, SourceTime] = field(default_factory=dict)

    @classmethod
    def over(
        cls,
        expected: Iterable[int],
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> Watermark:
        """A watermark held back by each of the `expected` sources until it sends an event or
        has been idle for `idle_seconds`."""
        started = clock()
        return cls(
            idle_seconds, clock, {source: SourceTime(-math.inf, started) for source in expected}
        )

    def advance(self, source: int, timestamp: float) -> float:
        """Source `source` showed an event at `timestamp`; the watermark after it."""
        known = self.sources.get(source)
        if known is None:
            self.sources[source] = SourceTime(timestamp, self.clock())
        elif timestamp > known.latest:
            known.latest = timestamp
            known.moved_at = self.clock()
        return self.value()

    def snapshot(self) -> dict[int, float]:
        """The latest time of every source that has shown one, to persist."""
        return {
            source: known.latest
            for source, known in self.sources.items()
            if math.isfinite(known.latest)
        }

    def restore(self, latest: dict[int, float]) -> None:
        """Take persisted latest times back; a source's time never moves backwards."""
        now = self.clock()
        for source, timestamp in latest.items():
            known = self.sources.get(source)
            if known is None:
                self.sources[source] = SourceTime(timestamp, now)
            elif timestamp > known.latest:
                known.latest = timestamp
                known.moved_at = now

    def value(self) -> float:
        """The minimum latest time over the sources that are not idle (-inf with none)."""
        if not self.sources:
            return -math.inf
        if len(self.sources) == 1:
            return next(iter(self.sources.values())).latest
        now = self.clock()
        active = [
            known.latest
            for known in self.sources.values()
            if now - known.moved_at <= self.idle_seconds
        ]
        if not active:
            return max(known.latest for known in self.sources.values())
        return min(active)


class Watermarks:
    """The watermarks of one evaluator: one per stream and windows partition, over the input
    partitions its events come from (`input_partitions`; none: a replay, whose source is the
    partition itself)."""

    def __init__(self, idle_seconds: float = DEFAULT_IDLE_SECONDS, input_partitions: int = 0):
        self.idle_seconds = idle_seconds
        self.input_partitions = input_partitions
        self.by_partition: dict[tuple[Stream, int], Watermark] = {}

    def forget(self) -> None:
        """Partitions moved (a rebalance): each windows partition's watermark is read again
        from the store, where its last owner left it."""
        self.by_partition.clear()

    def known(self, stream: Stream, partition: int) -> bool:
        """Whether this partition's watermark is in memory (not yet: read it from the store)."""
        return (stream, partition) in self.by_partition

    def of(self, stream: Stream, partition: int) -> Watermark:
        found = self.by_partition.get((stream, partition))
        if found is None:
            found = self.by_partition[(stream, partition)] = Watermark.over(
                range(self.input_partitions), self.idle_seconds
            )
        return found

    def advance(
        self, stream: Stream, partition: int, timestamp: float, source: int | None = None
    ) -> float:
        """The partition's watermark after its source `source` (an input partition; default
        the partition itself) showed an event at `timestamp`."""
        return self.of(stream, partition).advance(
            partition if source is None else source, timestamp
        )

    def latest(self, partition: int) -> float:
        """The latest watermark of any stream on `partition`: windows there whose end is this
        far behind are done (the store drops them)."""
        return max(
            (mark.value() for (_, at), mark in self.by_partition.items() if at == partition),
            default=-math.inf,
        )
