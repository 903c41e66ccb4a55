"""Rules grouped by the first guard of their condition (`rating <= 2 && ...`): when the guard
is false for an event, every rule of the group is, and none of their conditions runs. Filters
and windowed rule families both check their rules so."""

from __future__ import annotations

from alert_engine.conditions.fastpaths import NumericCondition
from alert_engine.rules.ruleset import Rule

GuardGroup = tuple[NumericCondition | None, tuple[tuple[int, Rule], ...]]


def guard_groups(rules: tuple[Rule, ...]) -> tuple[GuardGroup, ...]:
    """Filter rules grouped by their first guard (`rating <= 2 && ...`): when it is false for an
    event, the whole group is, and none of its conditions runs. Rules keep their position, so
    matches come out in rule order."""
    groups: dict[str | None, tuple[NumericCondition | None, list[tuple[int, Rule]]]] = {}
    for position, rule in enumerate(rules):
        guards = rule.condition.guards
        guard = guards[0] if guards else None
        key = guard.source if guard is not None else None
        groups.setdefault(key, (guard, []))[1].append((position, rule))
    return tuple((guard, tuple(members)) for guard, members in groups.values())
