"""Windowed rules, evaluated: where a batch of events becomes window counts and alerts.

Windowed rules take steps, because a window's state must live on the partition of its group key:
`Evaluator.regroup` names the group keys an event belongs to, each with what the rules of that
grouping count of it (`Folder.inputs`); `fold` (`windows.folding`) counts a batch of events into
partial states per group key, rule family and window (live, in the input agent; they travel to
the windows topic, see `windows.hop`); the windowed agent applies each record once
(`windowed_batch`, `windows.receiving`), and `Firing.merge` (`windows.firing`) adds the partial
states to the key's windows in a `WindowStore` and fires a rule the first time its condition
holds in a window after a batch. It needs the validated event only to build an alert. A replay
counts each event as a record of its own (`count_alone`): its rules fire on the very event.
Lateness is judged against `windows.watermarks`.

`WindowedRules` is the windowed half of `Evaluator`: it holds the state that outlives a reload
(the watermarks, the folder's caches) and rebuilds the rest from each ruleset (`Layout`); of the
filter side it takes plain callables, an event's activation and the building of an alert.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from alert_engine.alerts import Alert
from alert_engine.conditions.expressions import Activation
from alert_engine.events import Event, Stream
from alert_engine.rules.ruleset import Ruleset
from alert_engine.stats import Stats
from alert_engine.windows.counting import Validated
from alert_engine.windows.duplicates import duplicates
from alert_engine.windows.firing import BuildAlert, Firing
from alert_engine.windows.folding import Folder
from alert_engine.windows.hop import Regroup
from alert_engine.windows.joins import JOIN_GROUPING, Joins
from alert_engine.windows.layout import Layout
from alert_engine.windows.receiving import Receiver, unnamed_offset
from alert_engine.windows.store import WindowStore
from alert_engine.windows.watermarks import Watermarks

# `Stream.value` goes through an enum descriptor; this is a dict lookup.
_STREAM_NAMES = {stream: stream.value for stream in Stream}


class WindowedRules:
    """The windowed rules and joins of a ruleset (swapped by a reload, `ruleset`), over the
    events of both streams: their layout, the watermarks per stream and windows partition, and
    the caches of window ranges."""

    def __init__(
        self,
        ruleset: Ruleset,
        *,
        stats: Stats,
        clock: Callable[[], datetime],
        activation: Callable[[Stream, Event], Activation],
        build_alert: BuildAlert,
        watermarks: Watermarks,
    ) -> None:
        self.stats = stats
        self._clock = clock
        self._activation = activation
        self._build_alert = build_alert
        self.watermarks = watermarks
        layout = Layout.of(ruleset)
        self.folder = Folder(layout, stats)
        self._take(layout)

    @property
    def ruleset(self) -> Ruleset:
        return self.layout.ruleset

    @ruleset.setter
    def ruleset(self, ruleset: Ruleset) -> None:
        # Swapped by a reload between two events: the families, the firing and the joins go
        # with it; the watermarks and the window ranges stay.
        layout = Layout.of(ruleset)
        self.folder.reload(layout)
        self._take(layout)

    def _take(self, layout: Layout) -> None:
        self.layout = layout
        ruleset = layout.ruleset
        self.firing = Firing(ruleset, self.folder, self.stats, self._clock, self._build_alert)
        self.joins = Joins(ruleset, self.stats, self._clock, self._activation, self._build_alert)
        self.receiver = Receiver(
            layout,
            self.folder,
            self.firing,
            self.joins,
            self.watermarks,
            self.stats,
            self._activation,
        )

    def count_alone(
        self,
        stream: Stream,
        event: Event,
        activation: Activation,
        groups: list[Regroup],
        store: WindowStore,
        *,
        partition: int,
        source: int | None = None,
    ) -> list[Alert]:
        """The event counted in the windows of its `groups` (`Evaluator.regroup`) as a record
        of its own on `partition`, as the windowed agent counts one: for replays and rule tests,
        whose rules fire on the very event. `source`: the input partition the event came from,
        for a watermark over several (as live); by default the partition's own."""
        timestamp = event.time.timestamp()
        # Every event moves the watermark, also one that no windowed rule counts (live, its
        # time travels with the next event that goes to a windows partition).
        watermark = self.watermarks.advance(stream, partition, timestamp, source)
        found: Validated = (event, activation)
        # Each event a record of its own: an event sent twice counts once, as live.
        offset = unnamed_offset()
        counts = True
        alerts: list[Alert] = []
        name = _STREAM_NAMES[stream]
        windowed_in = self.stats.windowed_in
        for group in groups:
            if group.grouping == JOIN_GROUPING:
                windowed_in[name] += 1
                # A join's step moves the partition's own source as well (as it always has).
                self.watermarks.advance(stream, partition, timestamp)
                alerts.extend(self.joins.join(group, event, store, activation))
                continue
            if counts and group.inputs is not None:
                if duplicates(store, partition, offset, (event.id,)):
                    counts = False
                else:
                    until = timestamp + self.layout.dedupe_spans.get(stream, 0.0)
                    store.note_record(partition, offset, watermark, {event.id: until})
            if not counts:
                continue
            windowed_in[name] += 1
            if group.inputs is not None:
                alerts.extend(
                    self.firing.count(
                        stream,
                        group.grouping,
                        group.key,
                        group.inputs,
                        timestamp,
                        store,
                        watermark,
                        lambda: found,
                    )
                )
        return alerts
