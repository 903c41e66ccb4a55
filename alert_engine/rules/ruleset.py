"""Alert rules: YAML files in `rules/`, validated and compiled into a `Ruleset` at load time.

A rule file holds one rule, or several under a top-level `rules:` list:

    name: negative-rating
    description: Any rating of 1 or 2 stars.
    source: ratings
    condition: rating <= 2
    severity: high
    route: outbox

Loading never half-succeeds: `load_ruleset` returns a complete `Ruleset` or raises `RulesetError`
listing every problem with its file, line and column, so a running worker keeps its old rules.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import orjson
from faust.windows import HoppingWindow
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from alert_engine.conditions.expressions import (
    Condition,
    Expression,
    ExpressionError,
    compile_condition,
    compile_expression,
    functions_for,
)
from alert_engine.events import MODELS, Stream
from alert_engine.rules.fragments import FragmentError, expand, expand_entry
from alert_engine.rules.yamlsource import (
    LocatedDocument,
    Location,
    PathKey,
    YamlError,
    YamlLimits,
    load_yaml,
)
from alert_engine.windows.aggregations import Aggregate, AggregateError, compile_aggregate
from alert_engine.windows.definitions import Duration, WindowSpec

RULE_FILE_SUFFIXES = (".yaml", ".yml")


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


RuleName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=100)]
Source = Annotated[str, Field(min_length=1, max_length=4000)]
AggregateName = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]*$", max_length=64)]
FragmentName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]
# The window shape of the table that holds ratings and interactions waiting for each other.
JOIN_SHAPE_PREFIX = "join-"
# Names a windowed rule's condition reads besides its aggregates.
WINDOW_VARIABLES = ("key",)


class ThrottleSpec(BaseModel):
    """`throttle: {period: 1h, key: customer.id}`: at most one alert per rule and key per period.

    The key is a CEL expression over the event; without one it is the alert's key (the group key
    of a windowed rule, the event id of a filter)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    period: Duration
    key: Source | None = None


class JoinSpec(BaseModel):
    """`join: {within: 2h, condition: interaction.transfers >= 3}` on a ratings rule: the rating
    alerts only if its interaction (`interaction_id`), arriving before or after it with event
    times at most `within` apart, meets `condition` (CEL over `interaction`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    within: Duration
    condition: Source


class FollowupPolicy(BaseModel):
    """A rule's follow-up survey policy; what it leaves out comes from the follow-up settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # False: cases of this rule never get a follow-up survey, even when resolved with follow-up.
    enabled: bool = True
    # After resolve time: seconds, `HH:MM:SS` or an ISO 8601 duration (`P1D`, `PT24H`).
    delay: timedelta | None = Field(default=None, ge=timedelta(0))


class RuleSpec(BaseModel):
    """A rule as written by ops; unknown keys are errors, so a typo never silently does nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: RuleName
    description: str = ""
    source: Stream
    condition: Annotated[str, Field(min_length=1, max_length=4000)]
    severity: Severity = Severity.HIGH
    route: Annotated[str, Field(min_length=1, max_length=100)] = "default"
    enabled: bool = True
    labels: dict[str, str] = Field(default_factory=dict)
    followup: FollowupPolicy | None = None
    # An alert nobody claimed (or closed) within this time goes again through the routing tree
    # with the label `escalated=true`: seconds, or ISO 8601 (`PT15M`).
    escalate_after: timedelta | None = Field(default=None, gt=timedelta(0))
    # Windowed rules: events passing `where` are grouped by `group_by` into windows, aggregated,
    # and `condition` reads the aggregates (and `key`) once `min_sample` events are in.
    where: Source | None = None
    group_by: Source | None = None
    window: WindowSpec | None = None
    aggregates: dict[AggregateName, Source] | None = None
    min_sample: int = Field(default=1, ge=1, le=1_000_000)
    throttle: ThrottleSpec | None = None
    join: JoinSpec | None = None

    @model_validator(mode="after")
    def _windowed_parts_together(self) -> RuleSpec:
        if self.join is not None and self.source is not Stream.RATINGS:
            raise ValueError("join is for ratings rules: a rating joined with its interaction")
        if self.join is not None and self.window is not None:
            raise ValueError("a rule has either a window or a join, not both")
        windowed = ("group_by", "window", "aggregates")
        given = [name for name in windowed if getattr(self, name) is not None]
        if given and len(given) < len(windowed):
            missing = ", ".join(name for name in windowed if name not in given)
            raise ValueError(
                f"a windowed rule needs group_by, window and aggregates; missing {missing}"
            )
        if not given:
            extra = [name for name in ("where", "min_sample") if name in self.model_fields_set]
            if extra:
                raise ValueError(f"{', '.join(extra)} only apply to windowed rules (with a window)")
        if self.aggregates is not None:
            if not self.aggregates:
                raise ValueError("aggregates must name at least one aggregate")
            clash = sorted(set(self.aggregates) & set(WINDOW_VARIABLES))
            if clash:
                raise ValueError(f"aggregate name(s) {', '.join(clash)} are reserved")
        return self

    @property
    def is_windowed(self) -> bool:
        return self.window is not None


class RuleDefaults(BaseModel):
    """`_defaults.yaml` in the rules directory: values every rule gets unless it sets its own.

    `labels` are merged (a rule's own win); `grace` and `min_sample` apply to windowed rules.
    A rule opts out of a default throttle with `throttle: null`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    severity: Severity | None = None
    route: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    enabled: bool | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    throttle: ThrottleSpec | None = None
    grace: Duration | None = None
    min_sample: int | None = Field(default=None, ge=1, le=1_000_000)
    # Named CEL snippets a rule's expressions use as `$name` (see `alert_engine.rules.fragments`).
    fragments: dict[FragmentName, Source] = Field(default_factory=dict)

    def apply(self, entry: Any) -> Any:
        if not isinstance(entry, dict):
            return entry
        merged = dict(entry)
        for name in ("severity", "route", "enabled"):
            value = getattr(self, name)
            if value is not None:
                merged.setdefault(name, value.value if isinstance(value, Severity) else value)
        own_labels = entry.get("labels")
        if self.labels and (own_labels is None or isinstance(own_labels, dict)):
            merged["labels"] = {**self.labels, **(own_labels or {})}
        if self.throttle is not None and "throttle" not in entry:
            merged["throttle"] = self.throttle.model_dump(exclude_none=True)
        window = entry.get("window")
        if isinstance(window, dict):
            if self.grace is not None:
                merged["window"] = {"grace": self.grace, **window}
            if self.min_sample is not None:
                merged.setdefault("min_sample", self.min_sample)
        return merged


@dataclass(frozen=True)
class Problem:
    location: Location
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class RulesetError(Exception):
    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


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


SCHEMA_ID = "https://alert-engine.example/rules.schema.json"


def rule_file_schema() -> dict[str, Any]:
    """The JSON Schema of a rule file (one rule, or several under `rules:`), for editors."""
    rule = RuleSpec.model_json_schema(mode="validation")
    definitions = rule.pop("$defs", {})
    definitions["Rule"] = rule
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "alert_engine rule file",
        "description": "One alert rule, or several under `rules:`. See docs/rules.md.",
        "$defs": definitions,
        "oneOf": [
            {"$ref": "#/$defs/Rule"},
            {
                "type": "object",
                "properties": {"rules": {"type": "array", "items": {"$ref": "#/$defs/Rule"}}},
                "required": ["rules"],
                "additionalProperties": False,
            },
        ],
    }


def load_ruleset(directory: Path, *, limits: YamlLimits | None = None) -> Ruleset:
    """Every rule file below `directory` (sorted, recursively), or every problem found in them."""
    if not directory.is_dir():
        raise RulesetError([Problem(Location(directory, 1, 1), "rules directory not found")])
    # Files starting with `_` are not rules: `_defaults.yaml` holds the defaults.
    files = sorted(
        path
        for path in directory.rglob("*")
        if path.suffix in RULE_FILE_SUFFIXES
        and path.is_file()
        # Hidden files and directories are skipped: a Kubernetes ConfigMap volume holds each file
        # twice, once in a hidden `..<timestamp>` directory.
        and not any(part.startswith(".") for part in path.relative_to(directory).parts)
        # `_defaults.yaml` and other `_` files are not rules.
        and not path.name.startswith("_")
    )
    defaults_file = next(
        (directory / name for name in DEFAULTS_FILES if (directory / name).is_file()), None
    )
    return load_rule_files(files, defaults_file=defaults_file, limits=limits)


DEFAULTS_FILES = ("_defaults.yaml", "_defaults.yml")


def load_defaults(file: Path, *, limits: YamlLimits | None = None) -> RuleDefaults:
    """Raises `RulesetError` with the defaults file's own lines."""
    try:
        document = load_yaml(file, limits=limits)
    except YamlError as exc:
        raise RulesetError([_yaml_problem(exc)]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesetError([Problem(Location(file, 1, 1), f"cannot read: {exc}")]) from None
    try:
        defaults = RuleDefaults.model_validate(document.data or {})
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            where = ".".join(str(part) for part in loc)
            if error["type"] == "extra_forbidden":
                allowed = ", ".join(RuleDefaults.model_fields)
                message = f"unknown key {where!r} in defaults (allowed: {allowed})"
                problems.append(Problem(document.locate_key(loc), message))
            else:
                text = error["msg"].removeprefix("Value error, ")
                problems.append(Problem(document.locate(loc), f"{where}: {text}"))
        raise RulesetError(problems) from None
    problems = []
    for name, source in defaults.fragments.items():
        location = document.locate(("fragments", name))
        try:
            expand(source, {})
            compile_expression(source)
        except FragmentError:
            problems.append(
                Problem(location, f"fragment {name!r} uses `$`: a fragment cannot use another")
            )
        except ExpressionError as exc:
            problems.append(Problem(location, f"fragment {name!r} does not compile: {exc}"))
    if problems:
        raise RulesetError(problems)
    return defaults


def load_rule_files(
    files: Iterable[Path],
    *,
    defaults_file: Path | None = None,
    limits: YamlLimits | None = None,
) -> Ruleset:
    problems: list[Problem] = []
    rules: list[Rule] = []
    defaults = RuleDefaults()
    if defaults_file is not None:
        try:
            defaults = load_defaults(defaults_file, limits=limits)
        except RulesetError as exc:
            problems.extend(exc.problems)
    for file in files:
        try:
            document = load_yaml(file, limits=limits)
        except YamlError as exc:
            problems.append(_yaml_problem(exc))
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(Location(file, 1, 1), f"cannot read rule file: {exc}"))
            continue
        except Exception as exc:
            # A hostile file is a problem of that file, never a crash of the worker loading it.
            problems.append(Problem(Location(file, 1, 1), _unexpected(exc)))
            continue
        try:
            file_rules, file_problems = _rules_in(document, defaults)
        except Exception as exc:
            # e.g. a condition of thousands of `!` overflows the expression parsers' stack.
            problems.append(Problem(document.locate(()), _unexpected(exc)))
            continue
        rules.extend(file_rules)
        problems.extend(file_problems)

    problems.extend(_cross_rule_problems(rules))
    if problems:
        raise RulesetError(problems)
    return Ruleset.of(rules)


# The setting that raises each of `YamlLimits`, named in the problem so the operator knows the knob.
LIMIT_SETTINGS = {
    "max_bytes": "ALERT_ENGINE_RULES_MAX_FILE_BYTES",
    "max_nodes": "ALERT_ENGINE_RULES_MAX_YAML_NODES",
}


def _yaml_problem(exc: YamlError) -> Problem:
    setting = LIMIT_SETTINGS.get(exc.limit or "")
    message = f"{exc.message}; the limit is {setting}" if setting else exc.message
    return Problem(exc.location, message)


def _unexpected(exc: Exception) -> str:
    """A problem for what no check foresaw: the file is refused, the worker carries on."""
    if isinstance(exc, RecursionError):
        return "cannot load rule file: an expression or document is nested too deeply"
    return f"cannot load rule file: {type(exc).__name__}: {exc}"[:500]


def _rules_in(
    document: LocatedDocument, defaults: RuleDefaults
) -> tuple[list[Rule], list[Problem]]:
    data = document.data
    if isinstance(data, dict) and set(data) == {"rules"}:
        entries = data["rules"]
        if not isinstance(entries, list):
            where = document.locate(("rules",))
            return [], [Problem(where, "`rules` must be a list of rules")]
        located: list[tuple[PathKey, Any]] = [
            (("rules", i), entry) for i, entry in enumerate(entries)
        ]
    elif isinstance(data, dict):
        located = [((), data)]
    else:
        return [], [
            Problem(document.locate(()), "a rule file must be a mapping (one rule) or `rules:`")
        ]

    rules: list[Rule] = []
    problems: list[Problem] = []
    for path, written in located:
        entry, fragment_problems = expand_entry(written, defaults.fragments)
        if fragment_problems:
            problems.extend(
                Problem(document.locate((*path, *key)), f"{'.'.join(key)}: {message}")
                for key, message in fragment_problems
            )
            continue
        try:
            spec = RuleSpec.model_validate(defaults.apply(entry))
        except ValidationError as exc:
            problems.extend(_validation_problems(document, path, exc))
            continue
        condition_location = document.locate((*path, "condition"))
        try:
            condition = compile_condition(spec.condition)
        except ExpressionError as exc:
            problems.append(Problem(condition_location, f"condition does not compile: {exc}"))
            continue
        windowed, windowed_problems = _compile_windowed(document, path, spec)
        if windowed_problems:
            problems.extend(windowed_problems)
            continue
        join_condition = None
        if spec.join is not None:
            where = document.locate((*path, "join", "condition"))
            try:
                join_condition = compile_condition(spec.join.condition)
            except ExpressionError as exc:
                problems.append(Problem(where, f"join condition does not compile: {exc}"))
                continue
            unknown = _unknown_names(join_condition, {"interaction"})
            if unknown:
                problems.append(
                    Problem(
                        where,
                        f"join condition reads {', '.join(unknown)}: it reads the joined "
                        "interaction as `interaction` (e.g. interaction.transfers >= 3)",
                    )
                )
                continue
        throttle_key = None
        if spec.throttle is not None and spec.throttle.key is not None:
            where = document.locate((*path, "throttle", "key"))
            try:
                throttle_key = compile_expression(spec.throttle.key)
            except ExpressionError as exc:
                problems.append(Problem(where, f"throttle key does not compile: {exc}"))
                continue
            problem = _field_problem(spec.source, throttle_key, "throttle key", where)
            if problem is not None:
                problems.append(problem)
                continue
        if windowed is not None:
            known_names = {agg.name for agg in windowed.aggregates} | set(WINDOW_VARIABLES)
            unknown = _unknown_names(condition, known_names)
            if unknown:
                problems.append(
                    Problem(
                        condition_location,
                        f"condition reads {', '.join(unknown)}, which is not an aggregate of "
                        f"this rule (a windowed rule's condition reads its aggregates: "
                        f"{', '.join(sorted(known_names))})",
                    )
                )
                continue
        else:
            problem = _field_problem(spec.source, condition, "condition", condition_location)
            if problem is not None:
                problems.append(problem)
                continue
        rules.append(
            Rule(
                spec=spec,
                condition=condition,
                location=document.locate(path),
                windowed=windowed,
                throttle_key=throttle_key,
                join_condition=join_condition,
            )
        )
    return rules, problems


def _compile_windowed(
    document: LocatedDocument, path: PathKey, spec: RuleSpec
) -> tuple[Windowed | None, list[Problem]]:
    if spec.window is None or spec.group_by is None or spec.aggregates is None:
        return None, []
    problems: list[Problem] = []

    def expression(key: PathKey, source: str, what: str, *, condition: bool) -> Any:
        where = document.locate((*path, *key))
        try:
            compiled = compile_condition(source) if condition else compile_expression(source)
        except ExpressionError as exc:
            problems.append(Problem(where, f"{what} does not compile: {exc}"))
            return None
        problem = _field_problem(spec.source, compiled, what, where)
        if problem is not None:
            problems.append(problem)
            return None
        return compiled

    group_by = expression(("group_by",), spec.group_by, "group_by", condition=False)
    where = (
        expression(("where",), spec.where, "where", condition=True)
        if spec.where is not None
        else None
    )
    aggregates: list[Aggregate] = []
    for name, source in spec.aggregates.items():
        location = document.locate((*path, "aggregates", name))
        try:
            aggregate = compile_aggregate(name, source)
        except AggregateError as exc:
            problems.append(Problem(location, f"aggregate {name!r}: {exc}"))
            continue
        if aggregate.argument is not None:
            problem = _field_problem(
                spec.source, aggregate.argument, f"aggregate {name!r}", location
            )
            if problem is not None:
                problems.append(problem)
                continue
        aggregates.append(aggregate)
    if problems:
        return None, problems
    return Windowed(
        group_by=group_by,
        where=where,
        aggregates=tuple(aggregates),
        window=spec.window,
        min_sample=spec.min_sample,
    ), []


def _field_problem(
    stream: Stream, expression: Condition | Expression, what: str, where: Location
) -> Problem | None:
    unknown = _unknown_names(expression, _stream_fields(stream))
    if not unknown:
        return None
    known = ", ".join(sorted(_stream_fields(stream)))
    return Problem(
        where,
        f"{what} reads unknown field(s) {', '.join(unknown)} "
        f"of stream {stream.value} (known: {known})",
    )


def _stream_fields(stream: Stream) -> set[str]:
    return set(MODELS[stream].model_fields) | {"stream"}


def _unknown_names(condition: Condition | Expression, known: set[str]) -> list[str]:
    # Names bound inside comprehensions (`x` in `tags.exists(x, ...)`) are reported as variables
    # too; they are not event fields, so they only count when used outside such a macro.
    bound = set(_comprehension_variables(condition.source))
    return [name for name in condition.variables if name not in known and name not in bound]


def _comprehension_variables(source: str) -> Iterable[str]:
    for match in re.finditer(
        r"\.(?:all|exists|exists_one|map|filter)\(\s*([A-Za-z_]\w*)\s*,", source
    ):
        yield match.group(1)


def _validation_problems(
    document: LocatedDocument, path: PathKey, exc: ValidationError
) -> Iterable[Problem]:
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        where = ".".join(str(part) for part in loc)
        if error["type"] == "extra_forbidden":
            nested: dict[Any, type[BaseModel]] = {
                "window": WindowSpec,
                "throttle": ThrottleSpec,
                "join": JoinSpec,
                "followup": FollowupPolicy,
            }
            model = nested.get(loc[0], RuleSpec) if len(loc) > 1 else RuleSpec
            allowed = list(model.model_fields)
            guess = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            hint = f"did you mean {guess[0]!r}? " if guess else ""
            yield Problem(
                document.locate_key((*path, *loc)),
                f"unknown key {where!r} ({hint}allowed: {', '.join(allowed)})",
            )
            continue
        elif error["type"] == "missing":
            message = f"missing required key {where!r}"
            yield Problem(document.locate(path), message)
            continue
        else:
            text = error["msg"].removeprefix("Value error, ")
            message = f"{where}: {text}" if where else text
        yield Problem(document.locate((*path, *loc)), message)


def _cross_rule_problems(rules: Sequence[Rule]) -> Iterable[Problem]:
    first_seen: dict[str, Rule] = {}
    for rule in rules:
        earlier = first_seen.setdefault(rule.name, rule)
        if earlier is not rule:
            yield Problem(
                rule.location,
                f"duplicate rule name {rule.name!r} (first defined at {earlier.location})",
            )
