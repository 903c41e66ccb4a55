"""Shared condition fragments: named CEL snippets defined once in `_defaults.yaml`.

    fragments:
      vip: customer.tier in ['gold', 'platinum']
      long_hold: hold_seconds > 300

A rule writes `$vip` wherever a CEL expression is allowed (`condition`, `where`, `group_by`, an
aggregate's argument, `join.condition`, `throttle.key`); when rules load, `$vip` becomes
`(customer.tier in ['gold', 'platinum'])` and the result is compiled like any condition, so a
fragment costs nothing per event. A `$` inside a string literal is text, not a fragment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from alert_engine.problems import AlertEngineError

FRAGMENT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# The keys of a rule (as written in YAML) whose values are CEL expressions.
EXPRESSION_KEYS: tuple[tuple[str, ...], ...] = (
    ("condition",),
    ("where",),
    ("group_by",),
    ("join", "condition"),
    ("throttle", "key"),
)


class FragmentError(AlertEngineError, ValueError):
    pass


def expand(source: str, fragments: Mapping[str, str]) -> str:
    """`source` with every `$name` outside string literals replaced by `(fragment)`."""
    out: list[str] = []
    i, n = 0, len(source)
    while i < n:
        char = source[i]
        if char in "'\"":
            end = string_end(source, i)
            out.append(source[i:end])
            i = end
        elif char == "$":
            match = FRAGMENT_NAME.match(source, i + 1)
            if match is None:
                raise FragmentError("`$` must be followed by a fragment name, as in `$vip`")
            name = match.group()
            if name not in fragments:
                known = ", ".join(f"${known}" for known in sorted(fragments)) or "none"
                raise FragmentError(
                    f"unknown fragment ${name} (fragments in _defaults.yaml: {known})"
                )
            out.append(f"({fragments[name]})")
            i = match.end()
        else:
            out.append(char)
            i += 1
    return "".join(out)


def expand_entry(
    entry: object, fragments: Mapping[str, str]
) -> tuple[object, list[tuple[tuple[str, ...], str]]]:
    """A rule as written, with the fragments in its expressions expanded, and the problems as
    (key path, message)."""
    if not isinstance(entry, dict):
        return entry, []
    expanded = dict(entry)
    problems: list[tuple[tuple[str, ...], str]] = []

    def expanded_at(container: dict[str, object], key: str, path: tuple[str, ...]) -> None:
        value = container.get(key)
        if not isinstance(value, str):
            return
        try:
            container[key] = expand(value, fragments)
        except FragmentError as exc:
            problems.append((path, str(exc)))

    for path in EXPRESSION_KEYS:
        container = expanded
        for part in path[:-1]:
            inner = container.get(part)
            if not isinstance(inner, dict):
                break
            container = container[part] = dict(inner)
        else:
            expanded_at(container, path[-1], path)
    aggregates = expanded.get("aggregates")
    if isinstance(aggregates, dict):
        expanded["aggregates"] = aggregates = dict(aggregates)
        for name in aggregates:
            if isinstance(name, str):
                expanded_at(aggregates, name, ("aggregates", name))
    return expanded, problems


def string_end(source: str, start: int) -> int:
    """The index after the string literal opening at `start` (CEL: '..', "..", '''..''',
    \"\"\"..\"\"\", raw strings keep backslashes but still end at their quote)."""
    raw = start > 0 and source[start - 1] in "rR"
    quote = source[start]
    triple = source.startswith(quote * 3, start)
    delimiter = quote * 3 if triple else quote
    i = start + len(delimiter)
    while i < len(source):
        if not raw and source[i] == "\\":
            i += 2
            continue
        if source.startswith(delimiter, i):
            return i + len(delimiter)
        i += 1
    return len(source)  # unterminated: CEL's compiler reports it
