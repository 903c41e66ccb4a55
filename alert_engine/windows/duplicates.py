"""The same event twice counts once: duplicates by event id, within the span of its windows.

A producer that retries, or a source that sends a rating again, puts the same event (the same
`id`) on the input topic twice. The filters raise one alert for it (the alert id is the rule's
and the event's, and delivery delivers an id once); a window would count it twice. So each
windows partition remembers the ids of the events its records counted (`WindowStore.seen`),
with the event time until which each counts as seen: the end of the longest window of its
stream's windowed rules plus grace (after that the event would be too late for any window),
at most `MAX_DEDUPE_SECONDS` (memory: an id per event and windows partition for that long).

An id is a duplicate for a record if an *earlier* record of the partition (a smaller offset)
counted it: a record replayed after a crash is not a duplicate of itself.
"""

from __future__ import annotations

from collections.abc import Iterable

from alert_engine.events import Stream
from alert_engine.windows.families import Family
from alert_engine.windows.store import WindowStore

# The longest an event id is remembered, in event time.
MAX_DEDUPE_SECONDS = 600.0


def dedupe_spans(families: dict[Stream, dict[str, tuple[Family, ...]]]) -> dict[Stream, float]:
    """Per stream, how long (event time) after an event its id counts as seen."""
    return {
        stream: min(
            MAX_DEDUPE_SECONDS,
            max(
                (
                    family.window.size + family.grace
                    for by_grouping in groupings.values()
                    for family in by_grouping
                ),
                default=0.0,
            ),
        )
        for stream, groupings in families.items()
    }


def duplicates(store: WindowStore, partition: int, offset: int, ids: Iterable[str]) -> set[str]:
    """The ids that an earlier record of `partition` counted (and the store still remembers:
    at least until their `until`, after which every window they fell in has closed, unless the
    span was cut at `MAX_DEDUPE_SECONDS`). An event the input agent sends again after a crash
    is a duplicate, not a late event."""
    found = set()
    for event_id in ids:
        seen = store.seen(partition, event_id)
        if seen is not None and seen < offset:
            found.add(event_id)
    return found
