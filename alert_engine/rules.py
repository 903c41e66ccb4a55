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

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alert_engine.events import MODELS, Stream
from alert_engine.expressions import Condition, ExpressionError, compile_condition, functions_for
from alert_engine.yamlsource import LocatedDocument, Location, PathKey, YamlError, load_yaml

RULE_FILE_SUFFIXES = (".yaml", ".yml")


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


RuleName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=100)]


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
class Rule:
    spec: RuleSpec
    condition: Condition
    location: Location

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class Ruleset:
    rules: tuple[Rule, ...]
    version: str
    by_stream: dict[Stream, tuple[Rule, ...]] = field(repr=False)
    # The extension functions the rules of each stream call, registered once per event.
    functions: dict[Stream, dict[str, Callable[..., Any]]] = field(repr=False)

    @classmethod
    def of(cls, rules: Iterable[Rule]) -> Ruleset:
        ordered = tuple(sorted(rules, key=lambda rule: rule.name))
        digest = hashlib.sha256(
            orjson.dumps([rule.spec.model_dump(mode="json") for rule in ordered])
        ).hexdigest()[:12]
        by_stream = {
            stream: tuple(
                rule for rule in ordered if rule.spec.source is stream and rule.spec.enabled
            )
            for stream in Stream
        }
        functions = {
            stream: functions_for(rule.condition for rule in rules)
            for stream, rules in by_stream.items()
        }
        return cls(rules=ordered, version=digest, by_stream=by_stream, functions=functions)

    def get(self, name: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.name == name), None)


def load_ruleset(directory: Path, *, routes: Iterable[str] | None = None) -> Ruleset:
    """Every rule file below `directory` (sorted, recursively), or every problem found in them.

    `routes`, when given, are the destination names a rule may route to.
    """
    if not directory.is_dir():
        raise RulesetError([Problem(Location(directory, 1, 1), "rules directory not found")])
    files = sorted(
        path
        for path in directory.rglob("*")
        if path.suffix in RULE_FILE_SUFFIXES
        and path.is_file()
        # Hidden files and directories are skipped: a Kubernetes ConfigMap volume holds each file
        # twice, once in a hidden `..<timestamp>` directory.
        and not any(part.startswith(".") for part in path.relative_to(directory).parts)
    )
    return load_rule_files(files, routes=routes)


def load_rule_files(files: Iterable[Path], *, routes: Iterable[str] | None = None) -> Ruleset:
    problems: list[Problem] = []
    rules: list[Rule] = []
    for file in files:
        try:
            document = load_yaml(file)
        except YamlError as exc:
            problems.append(Problem(exc.location, exc.message))
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(Location(file, 1, 1), f"cannot read rule file: {exc}"))
            continue
        file_rules, file_problems = _rules_in(document)
        rules.extend(file_rules)
        problems.extend(file_problems)

    problems.extend(_cross_rule_problems(rules, routes))
    if problems:
        raise RulesetError(problems)
    return Ruleset.of(rules)


def _rules_in(document: LocatedDocument) -> tuple[list[Rule], list[Problem]]:
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
    for path, entry in located:
        try:
            spec = RuleSpec.model_validate(entry)
        except ValidationError as exc:
            problems.extend(_validation_problems(document, path, exc))
            continue
        condition_location = document.locate((*path, "condition"))
        try:
            condition = compile_condition(spec.condition)
        except ExpressionError as exc:
            problems.append(Problem(condition_location, f"condition does not compile: {exc}"))
            continue
        unknown = _unknown_fields(spec.source, condition)
        if unknown:
            known = ", ".join(sorted(_stream_fields(spec.source)))
            problems.append(
                Problem(
                    condition_location,
                    f"condition reads unknown field(s) {', '.join(unknown)} "
                    f"of stream {spec.source.value} (known: {known})",
                )
            )
            continue
        rules.append(Rule(spec=spec, condition=condition, location=document.locate(path)))
    return rules, problems


def _stream_fields(stream: Stream) -> set[str]:
    return set(MODELS[stream].model_fields) | {"stream"}


def _unknown_fields(stream: Stream, condition: Condition) -> list[str]:
    known = _stream_fields(stream)
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
            model = FollowupPolicy if loc[:1] == ("followup",) else RuleSpec
            allowed = ", ".join(model.model_fields)
            yield Problem(
                document.locate_key((*path, *loc)), f"unknown key {where!r} (allowed: {allowed})"
            )
            continue
        elif error["type"] == "missing":
            message = f"missing required key {where!r}"
            yield Problem(document.locate(path), message)
            continue
        else:
            message = f"{where}: {error['msg']}"
        yield Problem(document.locate((*path, *loc)), message)


def _cross_rule_problems(rules: Sequence[Rule], routes: Iterable[str] | None) -> Iterable[Problem]:
    first_seen: dict[str, Rule] = {}
    for rule in rules:
        earlier = first_seen.setdefault(rule.name, rule)
        if earlier is not rule:
            yield Problem(
                rule.location,
                f"duplicate rule name {rule.name!r} (first defined at {earlier.location})",
            )
    if routes is not None:
        known_routes = set(routes)
        for rule in rules:
            if rule.spec.route not in known_routes:
                yield Problem(
                    rule.location,
                    f"rule {rule.name!r} routes to unknown destination {rule.spec.route!r} "
                    f"(configured: {', '.join(sorted(known_routes)) or 'none'})",
                )
