"""Receiving: one record of the `windows` topic applied to the window state exactly once.

A record carries, per group key, the partial states the input agent folded and the events they
counted (`windows.hop`), and events that travel whole (items: joins, values that JSON would
change, records of other versions). Applying it:

- **Once.** Each group key's entry holds the offset of the last record of its windows partition
  applied to it (`KeyState.applied`), written in the same changelog message as its windows. A
  worker killed outright replays the records after its last offset commit; an entry that
  already holds one is left as it is (its alerts went to Kafka before the state was written).
- **Judged alike.** A record is judged against the watermark before it; the store keeps that
  value per record (`WindowStore.judged`), so a replayed record is judged against the same one,
  not against a watermark its own batch moved since.
- **The same event twice counts once** (`windows.duplicates`): a group key's partial states
  that include an event an earlier record counted are folded again without it, from the values
  the record carries per event.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from alert_engine.alerts import Alert
from alert_engine.conditions.expressions import Activation
from alert_engine.events import Event, EventRejected, Stream, validate_event
from alert_engine.stats import Stats
from alert_engine.windows.counting import Partial, Partials, Validated, inputs_fit
from alert_engine.windows.duplicates import duplicates
from alert_engine.windows.families import Family, PaneGroup
from alert_engine.windows.firing import Firing
from alert_engine.windows.folding import Folder
from alert_engine.windows.hop import ReceivedBatch, Regroup, ShippedGroup
from alert_engine.windows.joins import JOIN_GROUPING, Joins
from alert_engine.windows.layout import Layout
from alert_engine.windows.store import StateKey, WindowStore, state_key
from alert_engine.windows.watermarks import Watermarks

log = logging.getLogger(__name__)

# Offsets for records applied without one (in-process callers, replays): increasing, so a
# later record is never taken for one applied already.
_UNNAMED_OFFSETS = itertools.count()


def unnamed_offset() -> int:
    return next(_UNNAMED_OFFSETS)


@dataclass(frozen=True, slots=True)
class Receiver:
    """Applies records of the windows topic for the rules of one `Layout` (replaced by a
    reload), with the windowed half's folder, firing, joins and watermarks."""

    layout: Layout
    folder: Folder
    firing: Firing
    joins: Joins
    watermarks: Watermarks
    stats: Stats
    activation: Callable[[Stream, Event], Activation]

    def apply(
        self,
        batch: ReceivedBatch,
        store: WindowStore,
        *,
        partition: int,
        offset: int | None = None,
    ) -> list[Alert]:
        """A record of the windows topic at `offset` of `partition`: the partial states of its
        group keys (`Folder.fold`) merged into their windows, and each item's event counted in its
        group's windows, each group key's state once (see the module).

        A partial is merged into the family of the rules in force with the same id (same
        grouping, window, `where` and aggregates); one of a family no longer loaded (a reload
        in between) is left out. Items are counted from their inputs if computed for this
        `inputs_version`, else evaluated from the event, as a replay does (joins, values
        that do not travel as JSON, records of earlier versions). An event is validated only
        if a rule fires on it."""
        stream = batch.stream
        if offset is None:
            offset = unnamed_offset()
        layout, firing, watermarks = self.layout, self.firing, self.watermarks
        if not watermarks.known(stream, partition):
            # Started, or took the partition over: the watermark its last owner persisted.
            watermarks.of(stream, partition).restore(store.marks(stream.value, partition))
        judged = store.judged(partition, offset)
        # Lateness is judged against this partition's watermark over all the sources of its
        # events, before this record (the sender judged against its own input partition's).
        watermark = watermarks.of(stream, partition).value() if judged is None else judged
        store.note_record(partition, offset, watermark, {})
        span = layout.dedupe_spans.get(stream, 0.0)
        validated: dict[int, Validated] = {}

        def event_of(index: int) -> Validated:
            if index not in validated:
                validated[index] = self._validated(stream, batch.events[index])
            return validated[index]

        alerts: list[Alert] = []
        # The group keys this record changed, and the event ids it counted (until when seen).
        applied: set[StateKey] = set()
        counted: dict[str, float] = {}
        by_id = layout.counted_ids[stream]
        windowed_in = self.stats.windowed_in
        for group in batch.groups:
            windowed_in[stream.value] += group.events
            counted_ids = by_id.get(group.grouping)
            if counted_ids is None:
                continue
            twice = duplicates(store, partition, offset, group.ids())
            for sent in group.counted:
                event_id = sent[0]
                if event_id in twice:
                    continue
                until = sent[1] + span
                if until > counted.get(event_id, -math.inf):
                    counted[event_id] = until
            skey = state_key(group.grouping, group.key)
            if store.applied(skey, partition) >= offset:
                continue  # applied before a crash: its state says so
            applied.add(skey)
            partials = self._shipped(group, counted_ids)
            if twice:
                partials = self._without(stream, group, twice, batch.version, partials)
            if partials:
                alerts.extend(
                    firing.merge(
                        stream,
                        group.grouping,
                        group.key,
                        self.folder.in_windows(partials),
                        store,
                        watermark,
                        event_of,
                    )
                )

        shipped_inputs = batch.version == layout.inputs_version
        families_of = layout.families[stream]
        # An event twice in one record (items of one group key): counted once.
        here: set[tuple[str, str, str]] = set()
        for item in batch.items:
            index = item.event
            skey = state_key(item.grouping, item.key)
            fields = batch.events[index]
            event_id = fields.get("id")
            if item.grouping != JOIN_GROUPING and event_id.__class__ is str and batch.times:
                assert isinstance(event_id, str)
                if (item.grouping, item.key, event_id) in here or duplicates(
                    store, partition, offset, (event_id,)
                ):
                    continue
                here.add((item.grouping, item.key, event_id))
                until = batch.times[index] + span
                counted[event_id] = max(counted.get(event_id, -math.inf), until)
            if skey not in applied and store.applied(skey, partition) >= offset:
                continue
            applied.add(skey)
            inputs = item.inputs
            if (
                shipped_inputs
                and inputs is not None
                and inputs_fit(families_of.get(item.grouping), inputs)
            ):
                timestamp = batch.times[index]
            else:
                found = event_of(index)
                if found is None:
                    continue
                event, activation = found
                if item.grouping == JOIN_GROUPING:
                    windowed_in[stream.value] += 1
                    regroup = Regroup(stream, item.grouping, item.key)
                    alerts.extend(self.joins.join(regroup, event, store, activation))
                    continue
                # Counted from the event: its values computed here, as a replay does.
                inputs = self.folder.inputs(families_of.get(item.grouping, ()), activation)
                timestamp = event.time.timestamp()
            windowed_in[stream.value] += 1
            if inputs is not None:
                alerts.extend(
                    firing.count(
                        stream,
                        item.grouping,
                        item.key,
                        inputs,
                        timestamp,
                        store,
                        watermark,
                        partial(event_of, index),
                    )
                )

        for skey in applied:
            store.set_applied(skey, partition, offset)
        store.note_record(partition, offset, watermark, counted)
        for source, mark in batch.sources:
            watermarks.advance(stream, partition, mark, source)
        store.set_marks(stream.value, partition, watermarks.of(stream, partition).snapshot())
        return alerts

    def _shipped(
        self, group: ShippedGroup, counted_ids: dict[str, Family | PaneGroup]
    ) -> list[Partial]:
        """The group's partial states, each with the family or pane group of the rules in
        force it was counted for (left out: those no rule in force counts)."""
        partials: list[Partial] = []
        for counted_id, start, end, count, states, index in group.partials:
            counted = counted_ids.get(counted_id)
            if counted is None:
                continue
            if counted.accepts(states):
                partials.append(Partial(counted, start, end, count, states, index))
            else:
                log.warning("unreadable window state on the windows topic: %r", states)
        return partials

    def _without(
        self,
        stream: Stream,
        group: ShippedGroup,
        twice: set[str],
        version: str,
        shipped: list[Partial],
    ) -> list[Partial]:
        """The group's partial states without the events in `twice`, folded again from the
        values the record carries per event. The shipped states, duplicates and all, when the
        values were computed for another layout of the rules (a reload changed the windowed
        rules between the two agents, and an event came twice across it)."""
        layout = self.layout
        families = layout.families[stream].get(group.grouping)
        same_layout = version.rsplit("-", 1)[-1] == layout.inputs_version.rsplit("-", 1)[-1]
        if not same_layout:
            return shipped
        into: Partials = {}
        # The sender counted these already (late events, misses): not counted again.
        folder = self.folder.counting_into(Stats())
        for event_id, time, mark, values in group.counted:
            if event_id in twice:
                continue
            inputs = _inputs(values)
            if inputs is None or not inputs_fit(families, inputs):
                return shipped
            folder.fold(stream, group.grouping, inputs, float(time), float(mark), into, None)
        # The event shown by an alert: the one the shipped state counted last (the same id,
        # if it was a duplicate).
        refs = {(counted_id, start): index for counted_id, start, _, _, _, index in group.partials}
        last = max(refs.values(), default=0)
        return [
            Partial(
                p.counted,
                p.start,
                p.end,
                p.events,
                p.states,
                refs.get((p.counted.id, p.start), last),
            )
            for p in into.values()
        ]

    def _validated(self, stream: Stream, fields: dict[str, Any]) -> Validated:
        try:
            event = validate_event(stream, fields)
        except EventRejected as exc:
            # Validated before it was sent: only a foreign producer could get here.
            log.warning("invalid event on the windows topic: %s", exc)
            return None
        return event, self.activation(stream, event)


def _inputs(values: Any) -> tuple[list[Any] | None, ...] | None:
    if values.__class__ is not list or not all(
        value is None or value.__class__ is list for value in values
    ):
        return None
    return tuple(values)
