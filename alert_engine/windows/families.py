"""Windowed rules as they are counted: families of rules that share one state per window, pane
groups that count a batch once for families of several window shapes, and the cohorts a reload
leaves in a window. What a window's state holds is `windows.state`."""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from faust.windows import HoppingWindow

from alert_engine.conditions.expressions import Condition, Expression
from alert_engine.conditions.fastpaths import NumericCondition
from alert_engine.conditions.guards import guard_groups
from alert_engine.rules.ruleset import Rule
from alert_engine.windows.aggregations import Aggregate
from alert_engine.windows.state import Bucket, CohortState, bucket_of, shared_state_key


@dataclass(frozen=True)
class Family:
    """Windowed rules of one grouping that count the same events the same way: same window
    shape and grace, same `where`, same aggregates (names included).

    Their windows hold one shared state (`CohortState`: events counted, the aggregates, the
    rules counting in it and those that fired), updated once per event whatever the number of
    rules, and their conditions read one context built once per window. Rules share a state only
    if they started counting on the same event: a rule added by a reload starts a state of its
    own, a rule taken out leaves with a copy of it."""

    rules: tuple[Rule, ...]
    shape: str
    grace: float
    where: Condition | None
    aggregates: tuple[Aggregate, ...]
    # Per aggregate: its fold and check functions (see `Kind`), and whether it takes an argument
    # (a null one is skipped).
    steps: tuple[tuple[Callable[[Any, Any], Any], Callable[[Any], Any], bool], ...]
    # Names `where` and the aggregates' arguments: the key of their values for an event (a
    # string: its hash is computed once).
    inputs: str
    # The key of the `where` value for an event (`?` and its source: the same source as an
    # argument gives a value, not a boolean), and the arguments (None for `count()`).
    where_key: str
    arguments: tuple[Expression | None, ...]
    # The key of the checked values (`folds_for`) for an event: `inputs` and the aggregates' kinds.
    folds: str
    # The smallest `min_sample` of the rules: below it, no condition is evaluated.
    min_sample: int
    # The rules grouped by the first guard of their condition (see `guard_groups`), each with
    # its state id, `min_sample` and the Python form of its condition.
    checks: tuple[tuple[NumericCondition | None, tuple[WindowCheck, ...]], ...]
    # The aggregates the conditions read: name, position, result function; and whether they
    # read `key`.
    reads: tuple[tuple[str, int, Callable[[Any], Any]], ...]
    reads_key: bool
    # The bucket key of the state shared by all of `rules`.
    key: str
    # The window of `shape`, and what names the family on the windows topic (`fold`): its
    # grouping, shape, grace, `where` and aggregates, whatever the rules.
    window: HoppingWindow
    id: str
    # Per aggregate: how a partial state of a batch merges into the window's, and whether a
    # value read from the windows topic is a state.
    merges: tuple[Callable[[Any, Any], Any], ...]
    validators: tuple[Callable[[Any], bool], ...]

    def initial(self) -> list[Any]:
        """The aggregates' states before any event."""
        return [aggregate.kind.initial() for aggregate in self.aggregates]

    def accepts(self, states: Any) -> bool:
        """Whether `states` (from the windows topic) are states of the family's aggregates."""
        if states.__class__ is not list or len(states) != len(self.validators):
            return False
        # A loop, not `all()` over a generator: it runs per partial state of every record.
        for accepts, state in zip(self.validators, states, strict=True):  # noqa: SIM110
            if not accepts(state):
                return False
        return True


def families_of(rules: Iterable[Rule], windows: dict[str, HoppingWindow]) -> tuple[Family, ...]:
    found: dict[tuple[Any, ...], list[Rule]] = {}
    for rule in rules:
        windowed = rule.windowed
        assert windowed is not None
        signature = (
            windowed.shape,
            windowed.window.grace,
            windowed.where.source if windowed.where is not None else None,
            tuple(
                (aggregate.name, aggregate.function, aggregate.source)
                for aggregate in windowed.aggregates
            ),
        )
        found.setdefault(signature, []).append(rule)
    families = []
    for members in found.values():
        windowed = members[0].windowed
        assert windowed is not None
        read = {name for rule in members for name in rule.condition.program.variables()}
        family_signature = (
            windowed.group_by.source,
            windowed.shape,
            windowed.window.grace,
            windowed.where.source if windowed.where is not None else None,
            [
                (aggregate.name, aggregate.function, aggregate.source)
                for aggregate in windowed.aggregates
            ],
        )
        families.append(
            Family(
                rules=tuple(members),
                window=windows[windowed.shape],
                id=hashlib.sha256(orjson.dumps(family_signature)).hexdigest()[:16],
                merges=tuple(aggregate.kind.merge for aggregate in windowed.aggregates),
                validators=tuple(aggregate.kind.accepts for aggregate in windowed.aggregates),
                shape=windowed.shape,
                grace=windowed.window.grace,
                where=windowed.where,
                aggregates=windowed.aggregates,
                checks=tuple(
                    (
                        guard,
                        tuple(
                            (rule, rule.state_id, windowed_min_sample(rule), rule.condition.numeric)
                            for _, rule in rules
                        ),
                    )
                    for guard, rules in guard_groups(tuple(members))
                ),
                reads=tuple(
                    (aggregate.name, i, aggregate.kind.result)
                    for i, aggregate in enumerate(windowed.aggregates)
                    if aggregate.name in read
                ),
                reads_key="key" in read,
                key=shared_state_key([rule.state_id for rule in members]),
                inputs="\x00".join(
                    (
                        "inputs",
                        windowed.where.source if windowed.where is not None else "",
                        *(
                            aggregate.argument.source if aggregate.argument is not None else ""
                            for aggregate in windowed.aggregates
                        ),
                    )
                ),
                where_key="?" + windowed.where.source if windowed.where is not None else "",
                folds="\x00".join(
                    (
                        "folds",
                        windowed.where.source if windowed.where is not None else "",
                        *(
                            f"{aggregate.function}\x01"
                            + (aggregate.argument.source if aggregate.argument is not None else "")
                            for aggregate in windowed.aggregates
                        ),
                    )
                ),
                arguments=tuple(aggregate.argument for aggregate in windowed.aggregates),
                steps=tuple(
                    (aggregate.kind.fold, aggregate.kind.check, aggregate.argument is not None)
                    for aggregate in windowed.aggregates
                ),
                min_sample=min(
                    rule.windowed.min_sample for rule in members if rule.windowed is not None
                ),
            )
        )
    return tuple(families)


@dataclass(frozen=True)
class PaneGroup:
    """The families of one grouping that count the same values (same `where` and aggregate
    functions and arguments) in windows of different shapes.

    The input agent counts a batch once per pane of the group, the longest span that divides
    every family's step (windows start at whole steps, so a pane lies in whole windows), and
    the windowed agent adds a pane's counts to each window that holds it: one count per event
    and group instead of one per family and window (a rule set with 15-minute, 30-minute and
    hourly windows, and an hourly one every 15 minutes, counts an event once, not 7 times)."""

    id: str
    families: tuple[Family, ...]
    # Where the group's values are in an event's inputs (`Folder.inputs`).
    first: int
    pane: float
    rules: tuple[Rule, ...]

    def initial(self) -> list[Any]:
        return self.families[0].initial()

    def accepts(self, states: Any) -> bool:
        return self.families[0].accepts(states)


def pane_groups_of(families: tuple[Family, ...]) -> tuple[PaneGroup, ...]:
    found: dict[str, list[tuple[int, Family]]] = {}
    for position, family in enumerate(families):
        found.setdefault(family.folds, []).append((position, family))
    groups = []
    for folds, members in found.items():
        pane = math.gcd(*(int(family.window.step) for _, family in members))
        groups.append(
            PaneGroup(
                # Not a family id (16 hex digits): both name partial states on the topic.
                id="p" + hashlib.sha256(folds.encode()).hexdigest()[:16],
                families=tuple(family for _, family in members),
                first=members[0][0],
                pane=float(pane),
                rules=tuple(rule for _, family in members for rule in family.rules),
            )
        )
    return tuple(groups)


# A cohort's bucket key, state and members' state ids (None: all the family's rules).
Cohort = tuple[str, CohortState, frozenset[str] | None]
WindowCheck = tuple[Rule, str, int, NumericCondition | None]


def windowed_min_sample(rule: Rule) -> int:
    assert rule.windowed is not None
    return rule.windowed.min_sample


def cohorts_of(family: Family, bucket: Bucket) -> list[Cohort]:
    """The states the family's rules count in, when they do not all share one: after a reload
    added or took out rules mid-window. Rearranges `bucket`; a new state is only added to it
    once it counted an event."""
    owner = {member: bucket_key for bucket_key, state in bucket.items() for member in state.members}
    by_owner: dict[str | None, list[Rule]] = {}
    for rule in family.rules:
        by_owner.setdefault(owner.get(rule.state_id), []).append(rule)
    cohorts: list[Cohort] = []
    for bucket_key, rules in by_owner.items():
        ids = [rule.state_id for rule in rules]
        new_key = shared_state_key(ids)
        if bucket_key is None:
            fresh = CohortState(0, family.initial(), sorted(ids))
            cohorts.append((new_key, fresh, frozenset(ids)))
            continue
        state = bucket[bucket_key]
        gone = [member for member in state.members if member not in ids]
        if gone:
            # Rules no longer loaded keep what they had counted, as if they had their own state.
            bucket[shared_state_key(gone)] = CohortState(
                state.count,
                copy.deepcopy(state.aggregates),
                gone,
                [member for member in state.fired if member in gone],
            )
            del bucket[bucket_key]
            state = CohortState(
                state.count,
                state.aggregates,
                sorted(ids),
                [member for member in state.fired if member in ids],
            )
            bucket[new_key] = state
            bucket_key = new_key
        cohorts.append((bucket_key, state, frozenset(ids)))
    return cohorts


def rule_state(bucket: Bucket, rule: Rule) -> CohortState | None:
    """The state a rule counts in, in one window's bucket (read as `windows.state` reads it)."""
    for state in bucket_of(bucket).values():
        if rule.state_id in state.members:
            return state  # type: ignore[no-any-return]
    return None
