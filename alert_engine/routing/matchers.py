"""Matchers: `field OP value`, the one condition language of routes, inhibition and silences."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import re2

from alert_engine.alerts import Alert

ALERT_FIELDS = ("rule", "severity", "route", "stream", "key", "id")


class Op(StrEnum):
    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"


# Alertmanager's `pkg/labels/parse.go`, with Go's `\s` and `$` (Python's `\s` is Unicode's, and
# its `$` also matches before a final line feed). Field names also take `.` and `-`: they are
# dotted paths into the event (`customer.tier`).
FIELD_NAME = "[A-Za-z_][A-Za-z0-9_:.-]*"
_SPACE = "[\t\n\f\r ]"
_MATCHER = re.compile(
    rf"\A{_SPACE}*({FIELD_NAME}){_SPACE}*(=~|=|!=|!~){_SPACE}*(.*?){_SPACE}*\Z",
    re.DOTALL,
)
_RE2_OPTIONS = re2.Options()
# Otherwise RE2 writes every refused pattern to stderr through absl, past the problem list.
_RE2_OPTIONS.log_errors = False


class _Regex(Protocol):
    def search(self, text: bytes) -> object | None: ...


@dataclass(frozen=True)
class Matcher:
    """`field OP value`. Regexes are RE2's syntax (Go's, as in Alertmanager), anchored the way
    Alertmanager anchors them: the text `^(?:` + value + `)$` is what is compiled."""

    field: str
    op: Op
    value: str
    pattern: _Regex | None = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.op in (Op.RE, Op.NRE) and self.pattern is None:
            object.__setattr__(self, "pattern", compile_regex(self.value))

    @classmethod
    def parse(cls, text: str) -> Matcher:
        found = _MATCHER.match(text)
        if found is None:
            raise ValueError(f"matcher {text!r} is not `field OP value` with OP one of = != =~ !~")
        try:
            value = unescape(found.group(3))
            return cls(found.group(1), Op(found.group(2)), value)
        except ValueError as exc:
            raise ValueError(f"matcher {text!r}: {exc}") from None

    def matches(self, alert: Alert) -> bool:
        actual = field_value(alert, self.field)
        if self.op is Op.EQ:
            return actual == self.value
        if self.op is Op.NE:
            return actual != self.value
        assert self.pattern is not None
        # Bytes: the wrapper maps str offsets back to characters, three times slower. Field
        # values come from JSON and hold no lone surrogates; should one come, it cannot fail.
        found = self.pattern.search(actual.encode(errors="surrogatepass")) is not None
        return found if self.op is Op.RE else not found

    def __str__(self) -> str:
        """As Alertmanager prints a matcher: `team="orders"`, which parses back to the same."""
        escaped = self.value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        return f'{self.field}{self.op.value}"{escaped}"'


def parse_matchers(line: str) -> list[Matcher]:
    """One entry of a `matchers:` list, as Alertmanager's config reads it (`ParseMatchers`):
    several matchers separated by commas outside double quotes, optionally in `{...}`."""
    line = line.removeprefix("{").removesuffix("}")
    tokens: list[str] = []
    token: list[str] = []
    inside_quotes = escaped = False
    for char in line:
        if char == "," and not inside_quotes:
            tokens.append("".join(token))
            token = []
            continue
        if char == '"':
            if escaped:
                escaped = False
            else:
                inside_quotes = not inside_quotes
        elif char == "\\":
            escaped = not escaped
        elif char != ",":
            escaped = False
        token.append(char)
    last = "".join(token).strip(" \t\n\f\r\v")
    if last:
        tokens.append(last)
    try:
        return [Matcher.parse(text) for text in tokens]
    except ValueError as exc:
        if len(tokens) < 2:
            raise
        raise ValueError(
            f"{exc} (in {line!r}, a comma outside double quotes separates matchers, as in "
            "Alertmanager: quote the value)"
        ) from None


def unescape(raw: str) -> str:
    """A matcher's value as Alertmanager reads it: optionally in double quotes; `\\"`, `\\\\` and
    `\\n` are escapes, any other backslash is itself; a double quote elsewhere is an error."""
    quoted = raw.startswith('"')
    if quoted:
        raw = raw[1:]
    try:
        raw.encode()
    except UnicodeEncodeError:
        raise ValueError(f"value not valid UTF-8: {raw!r}") from None
    value: list[str] = []
    escaped = False
    last = len(raw) - 1
    for position, char in enumerate(raw):
        if escaped:
            escaped = False
            value.append({"n": "\n", '"': '"', "\\": "\\"}.get(char, "\\" + char))
        elif char == "\\" and position < last:
            escaped = True
        elif char == '"':
            if not quoted or position < last:
                raise ValueError("value contains unescaped double quote")
            quoted = False
        else:
            value.append(char)
    if quoted:
        raise ValueError("value contains unescaped double quote")
    return "".join(value)


def compile_regex(value: str) -> _Regex:
    refused = _go_refuses(value)
    if refused is None:
        try:
            compiled: _Regex = re2.compile(f"^(?:{value})$".encode(), _RE2_OPTIONS)
            return compiled
        except re2.error as exc:
            # Said about the value as written where it is wrong on its own (nearly always).
            refused = _re2_problem(value) or _re2_problem(f"^(?:{value})$") or str(exc)
    raise ValueError(f"invalid regular expression: {refused}")


def _re2_problem(regex: str) -> str | None:
    try:
        re2.compile(regex, _RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        return detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
    return None


def _go_refuses(regex: str) -> str | None:
    """What RE2 takes and Go's regexp (so Alertmanager) does not: `\\C`, one byte of a character."""
    position = 0
    while position < len(regex) - 1:
        if regex[position] == "\\":
            following = regex[position + 1]
            if following == "Q":
                end = regex.find("\\E", position + 2)
                if end < 0:
                    return None
                position = end + 2
                continue
            if following == "C":
                return "invalid escape sequence: \\C"
            position += 2
            continue
        position += 1
    return None


def field_value(alert: Alert, name: str) -> str:
    """The alert's value for a matcher field, as text; "" when it has none."""
    value: Any
    if name in ALERT_FIELDS:
        value = getattr(alert, name)
    elif name.startswith("labels."):
        value = alert.labels.get(name.removeprefix("labels."))
    elif name in alert.labels:
        value = alert.labels[name]
    else:
        value = alert.event
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
