"""Loading rules: every rule file of the rules directory and its `_defaults.yaml`, into one
`Ruleset` or one `RulesetError`.

Loading never half-succeeds: `load_ruleset` returns a complete `Ruleset` or raises `RulesetError`
listing every problem with its file, line and column, so a running worker keeps its old rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from alert_engine.conditions.expressions import ExpressionError, compile_expression
from alert_engine.problems import Location, Problem, ProblemsError
from alert_engine.rules.compiler import (
    cross_rule_problems,
    rules_in,
    unexpected_problem,
    yaml_problem,
)
from alert_engine.rules.fragments import FragmentError, expand
from alert_engine.rules.ruleset import Rule, Ruleset
from alert_engine.rules.spec import RuleDefaults
from alert_engine.rules.yamlsource import YamlError, YamlLimits, load_yaml

RULE_FILE_SUFFIXES = (".yaml", ".yml")


class RulesetError(ProblemsError):
    """The rules were not loaded: every problem of every rule file."""


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
        raise RulesetError([yaml_problem(exc)]) from None
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
            problems.append(yaml_problem(exc))
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(Location(file, 1, 1), f"cannot read rule file: {exc}"))
            continue
        except Exception as exc:
            # A hostile file is a problem of that file, never a crash of the worker loading it.
            problems.append(Problem(Location(file, 1, 1), unexpected_problem(exc)))
            continue
        try:
            file_rules, file_problems = rules_in(document, defaults)
        except Exception as exc:
            # e.g. a condition of thousands of `!` overflows the expression parsers' stack.
            problems.append(Problem(document.locate(()), unexpected_problem(exc)))
            continue
        rules.extend(file_rules)
        problems.extend(file_problems)

    problems.extend(cross_rule_problems(rules))
    if problems:
        raise RulesetError(problems)
    return Ruleset.of(rules)
