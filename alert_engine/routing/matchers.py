"""Matchers: `field OP value`, the one condition language of routes, inhibition and silences."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from alert_engine.alerts import Alert

ALERT_FIELDS = ("rule", "severity", "route", "stream", "key", "id")


class Op(StrEnum):
    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"


_MATCHER = re.compile(r"^\s*([A-Za-z_][\w.-]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


@dataclass(frozen=True)
class Matcher:
    field: str
    op: Op
    value: str
    pattern: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, text: str) -> Matcher:
        found = _MATCHER.match(text)
        if found is None:
            raise ValueError(f"matcher {text!r} is not `field OP value` with OP one of = != =~ !~")
        name, op, value = found.group(1), Op(found.group(2)), found.group(3)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        pattern = None
        if op in (Op.RE, Op.NRE):
            try:
                pattern = re.compile(f"(?:{value})")
            except re.error as exc:
                raise ValueError(f"matcher {text!r}: invalid regular expression: {exc}") from None
        return cls(name, op, value, pattern)

    def matches(self, alert: Alert) -> bool:
        actual = field_value(alert, self.field)
        if self.op is Op.EQ:
            return actual == self.value
        if self.op is Op.NE:
            return actual != self.value
        assert self.pattern is not None
        found = self.pattern.fullmatch(actual) is not None
        return found if self.op is Op.RE else not found

    def __str__(self) -> str:
        return f"{self.field}{self.op.value}{self.value}"


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
