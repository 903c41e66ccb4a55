"""The routing tree: which destinations an alert goes to, in the spirit of Alertmanager's.

`config/routing.yaml` (setting `ALERT_ENGINE_ROUTING_FILE`) names the destinations and the tree:

    destinations:
      outbox: {type: outbox}
      billing-slack: {type: slack, channel: C0123456789}
      leads-email: {type: email, to: [leads@example.com]}
    route:                         # the root: matches every alert, its destinations are the default
      destinations: [outbox]
      routes:
        - matchers: ["team = billing", "severity =~ high|critical"]
          destinations: [billing-slack]
          continue: true           # go on to the next sibling after this one matched
        - matchers: ["customer.tier = gold"]
          destinations: [leads-email]

A matcher is `field OP value` with OP one of `=`, `!=`, `=~` (regex, whole value), `!~`. Fields:
`rule`, `severity`, `route` (the rule's `route:`), `stream`, `labels.NAME` (or a bare label name),
and any event field by dotted path (`team`, `channel`, `customer.tier`, `agent.id`). A field the
alert lacks reads as "" as in Alertmanager. An alert descends into the first child that matches
(and the following ones while the matched child says `continue`); where no child matches, the node
itself is where it ends. A node without `destinations` inherits its parent's.

Loading never half-succeeds: every problem is reported with file, line and column.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alert_engine.alerts import Alert
from alert_engine.channels.email import EmailTemplates
from alert_engine.events import Stream
from alert_engine.rules import Problem, RulesetError
from alert_engine.templates import MessageTemplate, TemplateProblem
from alert_engine.yamlsource import LocatedDocument, Location, PathKey, YamlError, load_yaml

DestinationName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)]
ALERT_FIELDS = ("rule", "severity", "route", "stream", "key", "id")


class RoutingError(RulesetError):
    """The routing file has problems; each names file, line and column."""


class OutboxSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["outbox"]


class SlackSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["slack"]
    # A channel id (C0123...) or name; chat.postMessage accepts both.
    channel: Annotated[str, Field(min_length=1, max_length=80)]
    # A Jinja2 template (sandboxed) for a line shown under the title and as the notification
    # text, e.g. "{{ alert.team }}: call {{ alert.customer }} back". Shown as plain text.
    template: str | None = None


class EmailSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["email"]
    to: Annotated[list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]], Field(min_length=1)]
    # Jinja2 templates (sandboxed): the subject inline, the bodies as files relative to the
    # routing file. Each has a built-in default.
    subject: str | None = None
    text_template: Path | None = None
    html_template: Path | None = None


DestinationSpec = Annotated[OutboxSpec | SlackSpec | EmailSpec, Field(discriminator="type")]


class RouteSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str | None = None
    matchers: list[str] = Field(default_factory=list)
    destinations: list[DestinationName] | None = None
    continue_: bool = Field(default=False, alias="continue")
    routes: list[RouteSpec] = Field(default_factory=list)
    # Alerts of this route with the same values of these fields go out as one digest message:
    # the first waits `group_wait` for others, later ones at most every `group_interval`.
    # Inherited by child routes; `group_by: []` turns grouping off again.
    group_by: list[str] | None = None
    group_wait: timedelta | None = Field(default=None, ge=timedelta(0))
    group_interval: timedelta | None = Field(default=None, gt=timedelta(0))


class InhibitRuleSpec(BaseModel):
    """While an alert matching `source_matchers` is active (for `active_for` after it fired),
    alerts matching `target_matchers` with the same values of the `equal` fields are muted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_matchers: list[str] = Field(min_length=1)
    target_matchers: list[str] = Field(min_length=1)
    equal: list[str] = Field(default_factory=list)
    active_for: timedelta = Field(default=timedelta(minutes=30), gt=timedelta(0))


class RoutingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    destinations: dict[DestinationName, DestinationSpec]
    route: RouteSpec
    inhibit_rules: list[InhibitRuleSpec] = Field(default_factory=list)


@dataclass(frozen=True)
class InhibitRule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]
    active_for: timedelta

    def is_source(self, alert: Alert) -> bool:
        return all(matcher.matches(alert) for matcher in self.source)

    def is_target(self, alert: Alert) -> bool:
        return all(matcher.matches(alert) for matcher in self.target)

    def values(self, alert: Alert) -> str:
        return "\x1f".join(field_value(alert, name) for name in self.equal)


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


@dataclass(frozen=True)
class Grouping:
    by: tuple[str, ...]
    wait: timedelta
    interval: timedelta


@dataclass(frozen=True)
class Route:
    name: str
    matchers: tuple[Matcher, ...]
    destinations: tuple[str, ...]
    continue_: bool
    children: tuple[Route, ...]
    grouping: Grouping | None = None

    def matches(self, alert: Alert) -> bool:
        return all(matcher.matches(alert) for matcher in self.matchers)


@dataclass(frozen=True)
class RouteMatch:
    """Where an alert ended: the path of route names from the root, and its destinations."""

    path: tuple[str, ...]
    destinations: tuple[str, ...]
    grouping: Grouping | None = None


@dataclass(frozen=True)
class Routing:
    root: Route
    destinations: Mapping[str, DestinationSpec] = field(default_factory=dict)
    # Compiled email templates by destination name, for those that name any.
    email_templates: Mapping[str, EmailTemplates] = field(default_factory=dict)
    inhibit_rules: tuple[InhibitRule, ...] = ()
    slack_templates: Mapping[str, MessageTemplate] = field(default_factory=dict)

    def match(self, alert: Alert) -> list[RouteMatch]:
        return _walk(self.root, alert, ())

    def destinations_for(self, alert: Alert) -> list[str]:
        """Every destination the alert goes to, each once, in route order."""
        names: dict[str, None] = {}
        for found in self.match(alert):
            names.update(dict.fromkeys(found.destinations))
        return list(names)


def _walk(route: Route, alert: Alert, parent: tuple[str, ...]) -> list[RouteMatch]:
    path = (*parent, route.name)
    found: list[RouteMatch] = []
    for child in route.children:
        if child.matches(alert):
            found.extend(_walk(child, alert, path))
            if not child.continue_:
                break
    return found or [RouteMatch(path, route.destinations, route.grouping)]


def default_routing() -> Routing:
    """Without a routing file: every alert to the local outbox."""
    return Routing(Route("root", (), ("outbox",), False, ()), {"outbox": OutboxSpec(type="outbox")})


def load_routing(file: Path) -> Routing:
    try:
        document = load_yaml(file)
    except YamlError as exc:
        raise RoutingError([Problem(exc.location, exc.message)]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RoutingError([Problem(Location(file, 1, 1), f"cannot read: {exc}")]) from None
    return routing_from(document)


def routing_from(document: LocatedDocument) -> Routing:
    try:
        spec = RoutingSpec.model_validate(document.data)
    except ValidationError as exc:
        raise RoutingError(list(_validation_problems(document, exc))) from None
    problems: list[Problem] = []
    root = _build(spec.route, ("route",), "root", None, spec, document, problems)
    templates = _email_templates(spec, document, problems)
    slack_templates = {}
    for name, destination in spec.destinations.items():
        if isinstance(destination, SlackSpec) and destination.template is not None:
            try:
                slack_templates[name] = MessageTemplate(
                    destination.template, name=f"{name}.template", html=False
                )
            except TemplateProblem as exc:
                where = document.locate(("destinations", name, "template"))
                problems.append(Problem(where, exc.message))
    inhibit_rules = []
    for index, rule in enumerate(spec.inhibit_rules):
        compiled: dict[str, tuple[Matcher, ...]] = {}
        for side in ("source_matchers", "target_matchers"):
            matchers = []
            for position, text in enumerate(getattr(rule, side)):
                try:
                    matchers.append(Matcher.parse(text))
                except ValueError as exc:
                    where = document.locate(("inhibit_rules", index, side, position))
                    problems.append(Problem(where, str(exc)))
            compiled[side] = tuple(matchers)
        inhibit_rules.append(
            InhibitRule(
                compiled["source_matchers"],
                compiled["target_matchers"],
                tuple(rule.equal),
                rule.active_for,
            )
        )
    if problems:
        raise RoutingError(problems)
    return Routing(root, spec.destinations, templates, tuple(inhibit_rules), slack_templates)


def _email_templates(
    spec: RoutingSpec, document: LocatedDocument, problems: list[Problem]
) -> dict[str, EmailTemplates]:
    compiled: dict[str, EmailTemplates] = {}
    for name, destination in spec.destinations.items():
        if not isinstance(destination, EmailSpec):
            continue
        try:
            subject = (
                MessageTemplate(destination.subject, name=f"{name}.subject", html=False)
                if destination.subject
                else None
            )
            text, html = (
                MessageTemplate.from_file(document.file.parent / path, html=is_html)
                if path is not None
                else None
                for path, is_html in (
                    (destination.text_template, False),
                    (destination.html_template, True),
                )
            )
        except TemplateProblem as exc:
            where = document.locate(("destinations", name))
            if exc.file != f"{name}.subject":
                where = Location(Path(exc.file), exc.line, 1)
            problems.append(Problem(where, exc.message))
            continue
        compiled[name] = EmailTemplates(subject, text, html)
    return compiled


def _validation_problems(document: LocatedDocument, exc: ValidationError) -> Iterable[Problem]:
    for error in exc.errors(include_url=False):
        # Tagged unions add the tag to the path (`destinations.x.slack.channel`); YAML has none.
        loc = tuple(error["loc"])
        if len(loc) > 2 and loc[0] == "destinations" and loc[2] in ("outbox", "slack", "email"):
            loc = loc[:2] + loc[3:]
        where = ".".join(str(part) for part in loc)
        if error["type"] == "extra_forbidden":
            yield Problem(document.locate_key(loc), f"unknown key {where!r}")
        elif error["type"] == "missing":
            yield Problem(document.locate(loc[:-1]), f"missing required key {where!r}")
        else:
            yield Problem(document.locate(loc), f"{where}: {error['msg']}")


def _build(
    spec: RouteSpec,
    path: PathKey,
    default_name: str,
    inherited: tuple[str, ...] | None,
    routing: RoutingSpec,
    document: LocatedDocument,
    problems: list[Problem],
    parent_grouping: Grouping | None = None,
) -> Route:
    matchers: list[Matcher] = []
    for index, text in enumerate(spec.matchers):
        try:
            matchers.append(Matcher.parse(text))
        except ValueError as exc:
            problems.append(Problem(document.locate((*path, "matchers", index)), str(exc)))
    if path == ("route",) and matchers:
        problems.append(
            Problem(document.locate((*path, "matchers")), "the root route matches every alert")
        )
    destinations = tuple(spec.destinations) if spec.destinations is not None else inherited
    if destinations is None:
        problems.append(Problem(document.locate(path), "the root route needs `destinations`"))
        destinations = ()
    for index, name in enumerate(spec.destinations or ()):
        if name not in routing.destinations:
            known = ", ".join(sorted(routing.destinations)) or "none"
            problems.append(
                Problem(
                    document.locate((*path, "destinations", index)),
                    f"unknown destination {name!r} (defined: {known})",
                )
            )
    grouping = parent_grouping
    if spec.group_by is not None:
        grouping = (
            Grouping(
                tuple(spec.group_by),
                spec.group_wait if spec.group_wait is not None else timedelta(seconds=30),
                spec.group_interval if spec.group_interval is not None else timedelta(minutes=5),
            )
            if spec.group_by
            else None
        )
    elif grouping is not None and (spec.group_wait is not None or spec.group_interval is not None):
        grouping = Grouping(
            grouping.by,
            spec.group_wait if spec.group_wait is not None else grouping.wait,
            spec.group_interval if spec.group_interval is not None else grouping.interval,
        )
    name = spec.name or default_name
    children = tuple(
        _build(
            child,
            (*path, "routes", index),
            child.name or f"{name}.{index}",
            destinations,
            routing,
            document,
            problems,
            grouping,
        )
        for index, child in enumerate(spec.routes)
    )
    return Route(name, tuple(matchers), destinations, spec.continue_, children, grouping)


def describe(matches: Sequence[RouteMatch], destinations: Mapping[str, DestinationSpec]) -> str:
    """Human-readable result of routing one alert, for `alert-engine routes test`."""
    lines = []
    for found in matches:
        grouped = ""
        if found.grouping is not None:
            grouped = (
                f"  (grouped by {', '.join(found.grouping.by)}: wait "
                f"{found.grouping.wait.total_seconds():g}s, interval "
                f"{found.grouping.interval.total_seconds():g}s)"
            )
        lines.append(" > ".join(found.path) + grouped)
        for name in found.destinations:
            spec = destinations.get(name)
            lines.append(f"  {name}: {_destination_summary(spec)}")
    return "\n".join(lines)


def _destination_summary(spec: DestinationSpec | None) -> str:
    if isinstance(spec, SlackSpec):
        return f"slack channel {spec.channel}"
    if isinstance(spec, EmailSpec):
        return f"email to {', '.join(spec.to)}"
    if isinstance(spec, OutboxSpec):
        return "local outbox"
    return "undefined"


def example_alert(event_json: str | None, fields: Iterable[str]) -> Alert:
    """An alert made up from an event and `name=value` fields, for `alert-engine routes test`."""
    event: dict[str, Any] = orjson.loads(event_json) if event_json else {}
    if not isinstance(event, dict):
        raise ValueError("--event must be a JSON object")
    alert_fields: dict[str, Any] = {"rule": "example", "severity": "high", "route": "default"}
    labels: dict[str, str] = {}
    for pair in fields:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"expected name=value, got {pair!r}")
        if name in ("rule", "severity", "route"):
            alert_fields[name] = value
        elif name.startswith("labels."):
            labels[name.removeprefix("labels.")] = value
        else:
            target = event
            *parents, leaf = name.split(".")
            for part in parents:
                target = target.setdefault(part, {})
            target[leaf] = value
    now = datetime.now(UTC)
    try:
        return Alert(
            id="al-example",
            key=str(event.get("id", "example")),
            stream=Stream.RATINGS,
            event=event,
            values={},
            event_time=now,
            fired_at=now,
            ruleset_version="example",
            labels=labels,
            **alert_fields,
        )
    except ValidationError as exc:
        raise ValueError(str(exc)) from None
