"""The window state record: what one entry of the `window-state` table holds, typed, and how the
JSON its changelog holds reads back, the shapes earlier versions wrote included.

An entry holds every window of one group key (`KeyState`): per window shape and window, a bucket
of the states the key's rules count in (`CohortState`), and per windows partition the offset of
the last `windows` record applied to it (`applied`). The state and that offset are one changelog
message: a worker killed outright replays the records after its last commit, and an entry
already holding a record's counts says so, so each record counts once (exactly once).

The other entries: a stream's watermark on a windows partition (`SourceMarks`), and what one
batch applied of a partition's records (`AppliedRecords`): the watermark each was judged against
and the ids of the events they counted, by which the same event sent twice counts once.

Faust's JSON codec (orjson) writes these dataclasses as objects of their fields; a worker reading
the changelog back gets plain JSON, which `key_state_of`, `bucket_of` and `applied_records_of` turn
into records again. Shapes written before (`{"n", "a", "m", "f"}` per cohort, `{"n", "a",
"fired"}` per rule, an entry that was only `{shape: {window: bucket}}`) read as the same records.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class CohortState:
    """The state of the rules that count together in one window (a rule family's, or part of
    it after a reload): the events counted, the aggregates' states (in the family's order), the
    state ids of the rules counting in it, and of those that fired in this window."""

    count: int
    aggregates: list[Any]
    members: list[str]
    fired: list[str] = field(default_factory=list)


# A window's bucket: the cohorts counting in it, by cohort key (`shared_state_key`). A join
# window holds the events waiting for their partner instead (`windows.joins`), as JSON.
Bucket = dict[str, CohortState]


@dataclass(slots=True)
class KeyState:
    """One table entry: all windows of one group key, and per windows partition the offset of
    the last `windows` record whose counts it holds."""

    windows: dict[str, dict[str, Any]] = field(default_factory=dict)
    applied: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class SourceMarks:
    """The latest event time of each source (input partition) of a stream's watermark on one
    windows partition (see `windows.watermarks`)."""

    marks: dict[int, float] = field(default_factory=dict)


@dataclass(slots=True)
class AppliedRecords:
    """What the windowed agent applied of one windows partition's records in one batch: per
    record (its offset) the watermark it was judged against, and the ids of the events the
    records counted, each with the offset of the record that counted it; kept until the
    partition's watermark passes `until` (event time: the latest end of a window those events
    fell in, plus grace). A record replayed after a crash is judged against the same watermark,
    and an event sent twice counts once."""

    watermarks: dict[int, float] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    until: float = -math.inf


def shared_state_key(state_ids: Iterable[str]) -> str:
    """The bucket key of the state shared by these rules; rule state ids never start with `*`."""
    digest = hashlib.sha256("\0".join(sorted(state_ids)).encode()).hexdigest()
    return f"*{digest[:16]}"


def cohort_of(bucket_key: str, value: Any) -> tuple[str, CohortState]:
    """A cohort as JSON (or a record already) under its bucket key: the new shape, the
    `{"n", "a", "m", "f"}` one, or one rule's own `{"n", "a", "fired"}` under its state id."""
    if value.__class__ is CohortState:
        return bucket_key, value
    if not isinstance(value, dict):
        raise ValueError(f"not a window state: {value!r}")
    if "count" in value:
        return bucket_key, CohortState(
            int(value["count"]),
            list(value["aggregates"]),
            list(value["members"]),
            list(value.get("fired", [])),
        )
    if "m" in value:
        return bucket_key, CohortState(
            int(value["n"]), list(value["a"]), list(value["m"]), list(value.get("f", []))
        )
    # One rule's own state, as the first versions kept it.
    return shared_state_key([bucket_key]), CohortState(
        int(value["n"]), list(value["a"]), [bucket_key], [bucket_key] if value["fired"] else []
    )


def is_join_waiting(value: Any) -> bool:
    """Whether a window's value is a join's waiting events, not a bucket of cohorts."""
    return isinstance(value, dict) and "ratings" in value and "interactions" in value


def bucket_of(value: Any) -> Any:
    """A window's bucket with its cohorts as records (changed in place where it can be); a
    join window's waiting events as they are."""
    if not value or is_join_waiting(value):
        return value
    for cohort in value.values():
        if cohort.__class__ is not CohortState:
            break
    else:
        return value
    converted = dict(cohort_of(bucket_key, cohort) for bucket_key, cohort in value.items())
    value.clear()
    value.update(converted)
    return value


def key_state_of(value: Any) -> KeyState:
    """A table entry as a record: a `KeyState` already, its JSON, or the JSON of an entry written
    before offsets were kept (every key a window shape)."""
    if value.__class__ is KeyState:
        return value
    if not isinstance(value, dict):
        raise ValueError(f"not a window state entry: {value!r}")
    if "applied" in value and isinstance(value.get("windows"), dict):
        windows, applied = value["windows"], value["applied"]
    else:
        windows, applied = value, {}
    return KeyState(
        {shape: dict(by_window) for shape, by_window in windows.items()},
        {int(partition): int(offset) for partition, offset in applied.items()},
    )


def source_marks_of(value: Any) -> SourceMarks:
    if value.__class__ is SourceMarks:
        return value
    marks = value.get("marks", {}) if isinstance(value, dict) else {}
    return SourceMarks({int(source): float(latest) for source, latest in marks.items()})


def applied_records_of(value: Any) -> AppliedRecords:
    if value.__class__ is AppliedRecords:
        return value
    return AppliedRecords(
        # JSON has no -inf (a watermark before any event): orjson writes null.
        {
            int(offset): -math.inf if mark is None else float(mark)
            for offset, mark in value["watermarks"].items()
        },
        {str(event_id): int(offset) for event_id, offset in value["ids"].items()},
        -math.inf if value.get("until") is None else float(value["until"]),
    )
