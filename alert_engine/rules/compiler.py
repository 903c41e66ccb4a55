"""From a rule file's YAML document to compiled rules, with every problem located.

Each entry is validated (`RuleSpec`), its CEL compiled, and every name it reads checked against
its stream's fields (or, for a windowed rule's condition, its aggregates), so that a typo is a
problem at load time with file, line and column, never a rule that silently never matches.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from alert_engine.conditions.expressions import (
    Condition,
    Expression,
    ExpressionError,
    compile_condition,
    compile_expression,
)
from alert_engine.events import MODELS, Stream
from alert_engine.problems import Location, Problem
from alert_engine.rules.fragments import expand_entry
from alert_engine.rules.ruleset import Rule, Windowed
from alert_engine.rules.spec import (
    WINDOW_VARIABLES,
    FollowupPolicy,
    JoinSpec,
    RuleDefaults,
    RuleSpec,
    ThrottleSpec,
)
from alert_engine.rules.yamlsource import LocatedDocument, PathKey, YamlError
from alert_engine.windows.aggregations import Aggregate, AggregateError, compile_aggregate
from alert_engine.windows.definitions import WindowSpec

# The setting that raises each of `YamlLimits`, named in the problem so the operator knows the knob.
LIMIT_SETTINGS = {
    "max_bytes": "ALERT_ENGINE_RULES_MAX_FILE_BYTES",
    "max_nodes": "ALERT_ENGINE_RULES_MAX_YAML_NODES",
}


def yaml_problem(exc: YamlError) -> Problem:
    setting = LIMIT_SETTINGS.get(exc.limit or "")
    message = f"{exc.message}; the limit is {setting}" if setting else exc.message
    return Problem(exc.location, message)


def unexpected_problem(exc: Exception) -> str:
    """A problem for what no check foresaw: the file is refused, the worker carries on."""
    if isinstance(exc, RecursionError):
        return "cannot load rule file: an expression or document is nested too deeply"
    return f"cannot load rule file: {type(exc).__name__}: {exc}"[:500]


def rules_in(document: LocatedDocument, defaults: RuleDefaults) -> tuple[list[Rule], list[Problem]]:
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
        condition = _compiled(
            compile_condition, spec.condition, condition_location, "condition", problems
        )
        if condition is None:
            continue
        windowed, windowed_problems = _compile_windowed(document, path, spec)
        if windowed_problems:
            problems.extend(windowed_problems)
            continue
        join_condition = None
        if spec.join is not None:
            where = document.locate((*path, "join", "condition"))
            join_condition = _compiled(
                compile_condition, spec.join.condition, where, "join condition", problems
            )
            if join_condition is None:
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
            throttle_key = _compiled(
                compile_expression, spec.throttle.key, where, "throttle key", problems
            )
            if throttle_key is None:
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


_Program = TypeVar("_Program", bound=Condition | Expression)


def _compiled(
    compile: Callable[[str], _Program],
    source: str,
    where: Location,
    what: str,
    problems: list[Problem],
) -> _Program | None:
    """`source` compiled; None, and the problem added to `problems`, if it does not compile."""
    try:
        return compile(source)
    except ExpressionError as exc:
        problems.append(Problem(where, f"{what} does not compile: {exc}"))
        return None


def _compile_windowed(
    document: LocatedDocument, path: PathKey, spec: RuleSpec
) -> tuple[Windowed | None, list[Problem]]:
    if spec.window is None or spec.group_by is None or spec.aggregates is None:
        return None, []
    problems: list[Problem] = []

    def expression(key: PathKey, source: str, what: str, *, condition: bool) -> Any:
        where = document.locate((*path, *key))
        compile: Callable[[str], Condition | Expression] = (
            compile_condition if condition else compile_expression
        )
        compiled = _compiled(compile, source, where, what, problems)
        if compiled is None:
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


def cross_rule_problems(rules: Sequence[Rule]) -> Iterable[Problem]:
    first_seen: dict[str, Rule] = {}
    for rule in rules:
        earlier = first_seen.setdefault(rule.name, rule)
        if earlier is not rule:
            yield Problem(
                rule.location,
                f"duplicate rule name {rule.name!r} (first defined at {earlier.location})",
            )
