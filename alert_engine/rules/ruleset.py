"""The compiled rules: each `Rule` with its conditions compiled, and the `Ruleset` the evaluator
runs, indexed by stream, grouping and window shape at load time so the hot path only looks up."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from faust.windows import HoppingWindow

from alert_engine.conditions.expressions import Condition, Expression, functions_for
from alert_engine.events import Stream
from alert_engine.problems import Location
from alert_engine.rules.spec import JOIN_SHAPE_PREFIX, RuleSpec
from alert_engine.windows.aggregations import Aggregate
from alert_engine.windows.definitions import WindowSpec


@dataclass(frozen=True)
class Windowed:
    """A windowed rule's compiled parts."""

    group_by: Expression
    where: Condition | None
    aggregates: tuple[Aggregate, ...]
    window: WindowSpec
    min_sample: int

    @functools.cached_property
    def shape(self) -> str:
        return self.window.shape

    def expressions(self) -> Iterable[Condition | Expression]:
        yield self.group_by
        if self.where is not None:
            yield self.where
        yield from (agg.argument for agg in self.aggregates if agg.argument is not None)


@dataclass(frozen=True)
class Rule:
    spec: RuleSpec
    condition: Condition
    location: Location
    windowed: Windowed | None = None
    throttle_key: Expression | None = None
    # A join rule's condition over the joined interaction.
    join_condition: Condition | None = None
    # `spec.name`, read per rule per event: a plain attribute, not a property.
    name: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.spec.name)

    @functools.cached_property
    def state_id(self) -> str:
        """Names the rule's window state: a rule changed by a reload starts with fresh windows
        instead of reading aggregates it no longer computes."""
        digest = hashlib.sha256(orjson.dumps(self.spec.model_dump(mode="json"))).hexdigest()
        return f"{self.name}@{digest[:8]}"


@dataclass(frozen=True)
class Ruleset:
    rules: tuple[Rule, ...]
    version: str
    by_stream: dict[Stream, tuple[Rule, ...]] = field(repr=False)
    # The extension functions the rules of each stream call, registered once per event.
    functions: dict[Stream, dict[str, Callable[..., Any]]] = field(repr=False)
    # Windowed rules of each stream by grouping expression: an event is repartitioned once per
    # grouping, whatever the number of rules sharing it.
    windowed: dict[Stream, dict[str, tuple[Rule, ...]]] = field(repr=False)
    groupings: dict[Stream, dict[str, Expression]] = field(repr=False)
    # Window shape -> (a window of that shape, the longest grace of the rules using it).
    shapes: dict[str, tuple[WindowSpec, float]] = field(repr=False)
    # Functions the windowed rules' conditions over aggregates (and join conditions) call.
    window_functions: dict[str, Callable[..., Any]] = field(repr=False)
    # Ratings rules joined with their interaction.
    joins: tuple[Rule, ...] = field(default=(), repr=False)
    # The event fields some condition or expression of each stream reads: only these are
    # converted to CEL values per event.
    variables: dict[Stream, frozenset[str]] = field(default_factory=dict, repr=False)

    @property
    def join_shape(self) -> str | None:
        return next((shape for shape in self.shapes if shape.startswith(JOIN_SHAPE_PREFIX)), None)

    @classmethod
    def of(cls, rules: Iterable[Rule]) -> Ruleset:
        ordered = tuple(sorted(rules, key=lambda rule: rule.name))
        digest = hashlib.sha256(
            orjson.dumps([rule.spec.model_dump(mode="json") for rule in ordered])
        ).hexdigest()[:12]
        enabled = [rule for rule in ordered if rule.spec.enabled]
        by_stream = {
            stream: tuple(
                rule
                for rule in enabled
                if rule.spec.source is stream
                and rule.windowed is None
                and rule.join_condition is None
            )
            for stream in Stream
        }
        joins = tuple(rule for rule in enabled if rule.join_condition is not None)
        join_within = max((rule.spec.join.within for rule in joins if rule.spec.join), default=0.0)
        windowed: dict[Stream, dict[str, tuple[Rule, ...]]] = {stream: {} for stream in Stream}
        groupings: dict[Stream, dict[str, Expression]] = {stream: {} for stream in Stream}
        shapes: dict[str, tuple[WindowSpec, float]] = {}
        for rule in enabled:
            if rule.windowed is None:
                continue
            group = rule.windowed.group_by
            stream_rules = windowed[rule.spec.source]
            stream_rules[group.source] = (*stream_rules.get(group.source, ()), rule)
            groupings[rule.spec.source][group.source] = group
            spec, grace = shapes.get(rule.windowed.shape, (rule.windowed.window, 0.0))
            shapes[rule.windowed.shape] = (spec, max(grace, rule.windowed.window.grace))
        if joins:
            join_window = WindowSpec(size=join_within)
            shapes[f"{JOIN_SHAPE_PREFIX}{join_window.shape}"] = (join_window, 0.0)
        # Everything that runs against an event of each stream: filter and join conditions,
        # throttle keys, and the windowed rules' group_by, where and aggregate arguments.
        on_events: dict[Stream, list[Condition | Expression]] = {
            stream: [
                *(rule.condition for rule in rules),
                *(rule.condition for rule in joins if rule.spec.source is stream),
                *(
                    rule.throttle_key
                    for rule in enabled
                    if rule.spec.source is stream and rule.throttle_key is not None
                ),
                *(
                    expression
                    for group in windowed[stream].values()
                    for rule in group
                    if rule.windowed is not None
                    for expression in rule.windowed.expressions()
                ),
            ]
            for stream, rules in by_stream.items()
        }
        functions = {stream: functions_for(used) for stream, used in on_events.items()}
        variables = {
            # CEL's own list of names, not `variables`: that one leaves out names that are also
            # function names, and a field may be called like a function.
            stream: frozenset(
                name for expression in used for name in expression.program.variables()
            )
            for stream, used in on_events.items()
        }
        window_functions = functions_for(
            [
                *(rule.condition for rule in enabled if rule.windowed is not None),
                *(rule.join_condition for rule in joins if rule.join_condition is not None),
            ]
        )
        return cls(
            rules=ordered,
            version=digest,
            by_stream=by_stream,
            functions=functions,
            windowed=windowed,
            groupings=groupings,
            shapes=shapes,
            window_functions=window_functions,
            joins=joins,
            variables=variables,
        )

    def windows(self) -> dict[str, HoppingWindow]:
        """A Faust window for each window shape the rules use, by shape name."""
        return {shape: spec.faust_window(grace) for shape, (spec, grace) in self.shapes.items()}

    def get(self, name: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.name == name), None)
