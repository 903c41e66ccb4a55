"""What a rule has counted for a key, read from a replay's store: for `rules test`, which shows
each event's window. The state's layout stays in `windows.state` and `windows.families`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alert_engine.rules.ruleset import Rule
from alert_engine.windows.families import rule_state
from alert_engine.windows.state import CohortState, is_join_waiting
from alert_engine.windows.store import MemoryWindowStore, state_key


def rule_windows(
    store: MemoryWindowStore, rule: Rule, key: str
) -> list[tuple[tuple[float, float], CohortState]]:
    """Every window of the rule's shape the key has state in, with the rule's state there."""
    assert rule.windowed is not None
    found = []
    for shape, window, bucket in store.windows_of(state_key(rule.windowed.group_by.source, key)):
        if shape != rule.windowed.shape or is_join_waiting(bucket):
            continue
        state = rule_state(bucket, rule)
        if state is not None:
            found.append((window, state))
    return found


def window_results(
    store: MemoryWindowStore, rule: Rule, key: str, timestamp: float
) -> tuple[datetime, dict[str, Any]] | None:
    """The oldest window of the rule holding `timestamp` that counted for `key` (with hopping
    windows, the one that has seen the most): its start and the aggregates' results."""
    assert rule.windowed is not None
    holding = [
        (window, state)
        for window, state in rule_windows(store, rule, key)
        # A range ends 0.1 s before the next window starts (Faust's ranges).
        if window[0] <= timestamp < window[1] + 0.1
    ]
    if not holding:
        return None
    window, state = min(holding, key=lambda entry: entry[0])
    results = {
        aggregate.name: aggregate.result(current)
        for aggregate, current in zip(rule.windowed.aggregates, state.aggregates, strict=True)
    }
    return datetime.fromtimestamp(window[0], UTC), results
