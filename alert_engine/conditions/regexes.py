"""Regular expressions in conditions: RE2, compiled once, bounded in size.

CEL specifies `matches` with RE2's syntax and semantics (cel-go and cel-cpp run RE2). The CEL
library the engine runs (cel-rust, through `common-expression-language`) implements it with Rust's
`regex` crate: no backtracking, but it compiles the pattern again at every call, and a match costs
time in proportion to the pattern's compiled size times the text's length. A pattern a few bytes
long can stand for thousands of states: `(?:a?){3000}a{3000}` cost 172 ms and more per event,
`\\w{1,50}` 120 ms (Unicode classes, recompiled each time).

So a condition's `matches` calls run `re2Matches` instead (the source is rewritten when it
compiles; the rule keeps the text its author wrote): Google's RE2, each pattern compiled once,
a match linear in the text, and a pattern refused if its program exceeds `MAX_PROGRAM_SIZE`
instructions (RE2 itself refuses a repetition above 1000, nested ones multiplied). A literal
pattern is checked when the rules load; one read from the event is checked at its first use and
fails that evaluation like any CEL error.

RE2 as CEL specifies it differs from the Rust engine in a few places: `\\d`, `\\w`, `\\s` and `\\b`
are ASCII (use `\\pL`, `\\p{Nd}` for Unicode letters and digits), and `(?x)`, nested classes and
class set operations (`[a-z&&[^aeiou]]`) are refused: RE2 has no such syntax.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any, NamedTuple

import re2

from alert_engine.problems import AlertEngineError
from alert_engine.rules.fragments import string_end

# The function conditions' `matches` calls are rewritten to (camelCase like CEL's own extensions).
MATCH_FUNCTION = "re2Matches"
# RE2 instructions. An ordinary pattern is tens (`(?i)\brefund|chargeback` is 24); `\pL+` is
# 1,201 (the UTF-8 forms of every letter). The worst 64 KB text takes tens of milliseconds at the
# limit, a 1 KB comment well under one.
MAX_PROGRAM_SIZE = 2000


class RegexError(AlertEngineError, ValueError):
    """A pattern RE2 refuses, or one too large to run on every event."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 logs to stderr; the error is reported with its rule.
    return options


_OPTIONS = _options()


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    """The compiled pattern, or the `RegexError` it gives: a bad pattern read from events is
    refused from the cache, not compiled again for each event."""
    if _rust_class_syntax(pattern):
        # RE2 would read them as plain characters: a different pattern, silently.
        return RegexError(
            "nested classes and class set operations (`[a-z&&[^aeiou]]`, `[\\w--\\d]`) "
            "are not RE2 syntax"
        )
    try:
        compiled = re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        return RegexError(detail.decode() if isinstance(detail, bytes) else str(detail))
    size = compiled.programsize
    if size > MAX_PROGRAM_SIZE:
        return RegexError(
            f"too large: {size:,} RE2 instructions, at most {MAX_PROGRAM_SIZE:,} (a counted "
            "repetition repeats its part: `(a|b){500}` is 1,504)"
        )
    return compiled


def _rust_class_syntax(pattern: str) -> bool:
    """Whether a character class holds `[` (not `[:alpha:]`), `&&`, `--` or `~~`: Rust's regex
    syntax for nested classes and set operations, which the engine before RE2 accepted."""
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if char != "[":
            i += 1
            continue
        i += 1
        if i < n and pattern[i] == "^":
            i += 1
        if i < n and pattern[i] == "]":
            i += 1  # a leading `]` is a member
        while i < n and pattern[i] != "]":
            if pattern[i] == "\\":
                i += 2
                continue
            if pattern.startswith("[:", i):
                end = pattern.find(":]", i + 2)
                i = n if end < 0 else end + 2
                continue
            if pattern[i] == "[" or pattern[i : i + 2] in ("&&", "--", "~~"):
                return True
            i += 1
        i += 1
    return False


def check_pattern(pattern: str) -> None:
    """Raises `RegexError` if conditions cannot use `pattern`."""
    found = _compiled(pattern)
    if isinstance(found, RegexError):
        raise found


def matches(text: Any, pattern: Any) -> bool:
    """CEL's `text.matches(pattern)` / `matches(text, pattern)`: RE2 finds `pattern` in `text`."""
    if not isinstance(text, str) or not isinstance(pattern, str):
        raise TypeError(
            f"matches takes a string and a string pattern, not {type(text).__name__} "
            f"and {type(pattern).__name__}"
        )
    found = _compiled(pattern)
    if isinstance(found, RegexError):
        raise found
    return found.search(text) is not None


class Rewritten(NamedTuple):
    source: str
    # The pattern arguments written as string literals (CEL source, quotes included).
    literals: tuple[str, ...]


def rewrite_matches(source: str) -> Rewritten:
    """`source` with every `matches(` call (method or function form) calling `MATCH_FUNCTION`."""
    tokens = list(_tokens(source))
    out: list[str] = []
    literals: list[str] = []
    copied = 0
    for index, token in enumerate(tokens):
        if token.text != "matches" or token.kind != "name":
            continue
        if index + 1 >= len(tokens) or tokens[index + 1].text != "(":
            continue  # a field called `matches`, not a call
        out.append(source[copied : token.start])
        out.append(MATCH_FUNCTION)
        copied = token.end
        pattern = _last_argument(tokens, index + 2)
        if len(pattern) == 1 and pattern[0].kind == "string":
            literals.append(pattern[0].text)
    out.append(source[copied:])
    return Rewritten("".join(out), tuple(literals))


class _Token(NamedTuple):
    kind: str  # "name", "string", "punct"
    text: str
    start: int
    end: int


def _tokens(source: str) -> Iterator[_Token]:
    i, n = 0, len(source)
    while i < n:
        char = source[i]
        if char.isspace():
            i += 1
        elif source.startswith("//", i):
            newline = source.find("\n", i)
            i = n if newline < 0 else newline
        elif char in "'\"":
            end = string_end(source, i)
            yield _Token("string", source[i:end], i, end)
            i = end
        elif char.isalpha() or char == "_":
            end = i + 1
            while end < n and (source[end].isalnum() or source[end] == "_"):
                end += 1
            if end < n and source[end] in "'\"" and source[i:end].lower() in ("r", "b", "rb", "br"):
                # A prefixed literal, r'...' or b'...': one string token.
                close = string_end(source, end)
                yield _Token("string", source[i:close], i, close)
                i = close
                continue
            yield _Token("name", source[i:end], i, end)
            i = end
        else:
            yield _Token("punct", char, i, i + 1)
            i += 1


def _last_argument(tokens: list[_Token], start: int) -> list[_Token]:
    """The tokens of the last top-level argument of the call whose arguments begin at `start`."""
    depth = 0
    argument: list[_Token] = []
    for token in tokens[start:]:
        if token.kind == "punct" and token.text in "([{":
            depth += 1
        elif token.kind == "punct" and token.text in ")]}":
            if depth == 0:
                return argument
            depth -= 1
        elif depth == 0 and token.kind == "punct" and token.text == ",":
            argument = []
            continue
        argument.append(token)
    return argument
