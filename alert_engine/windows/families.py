"""Windowed rules as they are counted: families of rules that share one state per window, pane
groups that count a batch once for families of several window shapes, and the cohorts a reload
leaves in a window. What a window's bucket holds (`window_state`) is read only here."""

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


@dataclass(frozen=True)
class Family:
    """Windowed rules of one grouping that count the same events the same way: same window
    shape and grace, same `where`, same aggregates (names included).

    Their windows hold one shared state (`n` events counted, the aggregates `a`, the rules `m`
    counting in it and those that fired, `f`), updated once per event whatever the number of
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
    # Where the group's values are in an event's inputs (`Evaluator.inputs`).
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


def shared_state_key(state_ids: Iterable[str]) -> str:
    """The bucket key of the state shared by these rules; rule state ids never start with `*`."""
    digest = hashlib.sha256("\0".join(sorted(state_ids)).encode()).hexdigest()
    return f"*{digest[:16]}"


# A cohort's bucket key, state and members' state ids (None: all the family's rules).
Cohort = tuple[str, dict[str, Any], frozenset[str] | None]
WindowCheck = tuple[Rule, str, int, NumericCondition | None]


def windowed_min_sample(rule: Rule) -> int:
    assert rule.windowed is not None
    return rule.windowed.min_sample


def cohorts_of(family: Family, bucket: dict[str, Any]) -> list[Cohort]:
    """The states the family's rules count in, when they do not all share one: after a reload
    added or took out rules mid-window, or in a window written by an earlier version (one state
    per rule). Rearranges `bucket`; a new state is only added to it once it counted an event."""
    owner = {
        member: bucket_key
        for bucket_key, state in bucket.items()
        if bucket_key.startswith("*")
        for member in state["m"]
    }
    by_owner: dict[str | None, list[Rule]] = {}
    for rule in family.rules:
        state_id = rule.state_id
        bucket_key = owner.get(state_id)
        if bucket_key is None and state_id in bucket:
            # One rule's own state, as earlier versions kept it.
            old = bucket.pop(state_id)
            bucket_key = shared_state_key([state_id])
            bucket[bucket_key] = {
                "n": old["n"],
                "a": old["a"],
                "m": [state_id],
                "f": [state_id] if old["fired"] else [],
            }
        by_owner.setdefault(bucket_key, []).append(rule)
    cohorts: list[Cohort] = []
    for bucket_key, rules in by_owner.items():
        ids = [rule.state_id for rule in rules]
        new_key = shared_state_key(ids)
        if bucket_key is None:
            state = {
                "n": 0,
                "a": [aggregate.kind.initial() for aggregate in family.aggregates],
                "m": sorted(ids),
                "f": [],
            }
            cohorts.append((new_key, state, frozenset(ids)))
            continue
        state = bucket[bucket_key]
        gone = [member for member in state["m"] if member not in ids]
        if gone:
            # Rules no longer loaded keep what they had counted, as if they had their own state.
            bucket[shared_state_key(gone)] = {
                "n": state["n"],
                "a": copy.deepcopy(state["a"]),
                "m": gone,
                "f": [member for member in state["f"] if member in gone],
            }
            del bucket[bucket_key]
            state = {
                "n": state["n"],
                "a": state["a"],
                "m": sorted(ids),
                "f": [member for member in state["f"] if member in ids],
            }
            bucket[new_key] = state
            bucket_key = new_key
        cohorts.append((bucket_key, state, frozenset(ids)))
    return cohorts


def window_state(bucket: dict[str, Any], rule: Rule) -> dict[str, Any] | None:
    """A rule's state in one window's bucket: events counted `n`, aggregates `a`, `fired`."""
    for bucket_key, state in bucket.items():
        if bucket_key.startswith("*") and rule.state_id in state["m"]:
            return {"n": state["n"], "a": state["a"], "fired": rule.state_id in state["f"]}
    found: dict[str, Any] | None = bucket.get(rule.state_id)
    return found
