"""The routing tree: loading the routing file and walking an alert down its routes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from pydantic import ValidationError

from alert_engine.alerts import Alert
from alert_engine.calendars.business_time import BusinessCalendar
from alert_engine.calendars.intervals import CalendarError, TimeInterval, compile_intervals
from alert_engine.channels.templates import EmailTemplates, MessageTemplate, TemplateProblem
from alert_engine.problems import Location, Problem, ProblemsError
from alert_engine.routing.lint import routing_warnings
from alert_engine.routing.matchers import Matcher, field_value, parse_matchers
from alert_engine.routing.spec import (
    GROUP_BY_ALL,
    DestinationSpec,
    EmailSpec,
    OutboxSpec,
    RouteSpec,
    RoutingSpec,
    SlackSpec,
    SlaSpec,
)
from alert_engine.rules.yamlsource import LocatedDocument, PathKey, YamlError, load_yaml


class RoutingError(ProblemsError):
    """The routing file has problems; each names file, line and column."""


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
    repeat_interval: timedelta = timedelta(hours=4)
    calendar: BusinessCalendar | None = None
    sla: SlaSpec | None = None

    def matches(self, alert: Alert) -> bool:
        return all(matcher.matches(alert) for matcher in self.matchers)


@dataclass(frozen=True)
class RouteMatch:
    """Where an alert ended: the path of route names from the root, and its destinations."""

    path: tuple[str, ...]
    destinations: tuple[str, ...]
    grouping: Grouping | None = None
    # The route's working time (None: around the clock) and SLA.
    calendar: BusinessCalendar | None = None
    sla: SlaSpec | None = None


@dataclass(frozen=True)
class Routing:
    root: Route
    destinations: Mapping[str, DestinationSpec] = field(default_factory=dict)
    # Compiled email templates by destination name, for those that name any.
    email_templates: Mapping[str, EmailTemplates] = field(default_factory=dict)
    inhibit_rules: tuple[InhibitRule, ...] = ()
    slack_templates: Mapping[str, MessageTemplate] = field(default_factory=dict)
    # Where the file looks written for Alertmanager's meaning (`routing.lint`); none is fatal.
    warnings: tuple[Problem, ...] = ()

    def match(self, alert: Alert) -> list[RouteMatch]:
        return _walk(self.root, alert, ())

    def working_time(self, alert: Alert) -> tuple[BusinessCalendar | None, SlaSpec | None]:
        """The working time and SLA of the first route the alert takes (its case's team)."""
        first = self.match(alert)[0]
        return first.calendar, first.sla

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
    return found or [
        RouteMatch(path, route.destinations, route.grouping, route.calendar, route.sla)
    ]


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
    try:
        intervals = compile_intervals(spec.time_intervals)
    except CalendarError as exc:
        problems.append(Problem(document.locate(("time_intervals",)), str(exc)))
        intervals = {}
    root = _build(spec.route, ("route",), "root", None, spec, document, problems, intervals)
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
                    matchers.extend(parse_matchers(text))
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
    return Routing(
        root,
        spec.destinations,
        templates,
        tuple(inhibit_rules),
        slack_templates,
        tuple(routing_warnings(spec, document)),
    )


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


# Alertmanager's keys that this file spells otherwise.
_ALERTMANAGER_KEYS = {
    "receiver": "a route names its `destinations` here",
    "receivers": "destinations are defined under `destinations`",
    "match": 'write `matchers`, e.g. ["team = orders"]',
    "match_re": 'write `matchers` with =~, e.g. ["team =~ orders|billing"]',
    "source_match": "write `source_matchers`",
    "target_match": "write `target_matchers`",
}


def _validation_problems(document: LocatedDocument, exc: ValidationError) -> Iterable[Problem]:
    for error in exc.errors(include_url=False):
        # Tagged unions add the tag to the path (`destinations.x.slack.channel`); YAML has none.
        loc = tuple(error["loc"])
        if len(loc) > 2 and loc[0] == "destinations" and loc[2] in ("outbox", "slack", "email"):
            loc = loc[:2] + loc[3:]
        where = ".".join(str(part) for part in loc)
        if error["type"] == "extra_forbidden":
            hint = _ALERTMANAGER_KEYS.get(str(loc[-1]))
            message = f"unknown key {where!r}" + (f" ({hint})" if hint else "")
            yield Problem(document.locate_key(loc), message)
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
    intervals: Mapping[str, tuple[TimeInterval, ...]],
    parent_grouping: Grouping | None = None,
    parent_repeat: timedelta = timedelta(hours=4),
    parent_calendar: BusinessCalendar | None = None,
    parent_sla: SlaSpec | None = None,
) -> Route:
    matchers: list[Matcher] = []
    for index, text in enumerate(spec.matchers):
        try:
            matchers.extend(parse_matchers(text))
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
            if spec.group_by and spec.group_by != [GROUP_BY_ALL]
            else None
        )
    elif grouping is not None and (spec.group_wait is not None or spec.group_interval is not None):
        grouping = Grouping(
            grouping.by,
            spec.group_wait if spec.group_wait is not None else grouping.wait,
            spec.group_interval if spec.group_interval is not None else grouping.interval,
        )
    repeat = spec.repeat_interval if spec.repeat_interval is not None else parent_repeat
    calendar = _calendar(spec, path, intervals, document, problems, parent_calendar)
    sla = spec.sla if spec.sla is not None else parent_sla
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
            intervals,
            grouping,
            repeat,
            calendar,
            sla,
        )
        for index, child in enumerate(spec.routes)
    )
    return Route(
        name,
        tuple(matchers),
        destinations,
        spec.continue_,
        children,
        grouping,
        repeat,
        calendar,
        sla,
    )


def _calendar(
    spec: RouteSpec,
    path: PathKey,
    intervals: Mapping[str, tuple[TimeInterval, ...]],
    document: LocatedDocument,
    problems: list[Problem],
    inherited: BusinessCalendar | None,
) -> BusinessCalendar | None:
    if spec.business_hours is None and spec.holidays is None:
        return inherited
    unknown = [name for name in spec.holidays or () if name not in intervals]
    if unknown:
        known = ", ".join(sorted(intervals)) or "none"
        where = document.locate((*path, "holidays"))
        problems.append(
            Problem(where, f"unknown time interval(s) {', '.join(unknown)} (defined: {known})")
        )
        return inherited
    open_names = spec.business_hours
    if open_names is None:
        if inherited is None:
            where = document.locate((*path, "holidays"))
            problems.append(Problem(where, "holidays apply to business_hours: name those too"))
            return None
        # Holidays of their own on the parent's working hours: the parent's open intervals.
        return BusinessCalendar(
            inherited.open,
            tuple(item for name in spec.holidays or () for item in intervals[name]),
            inherited.name,
        )
    if not open_names:
        return None
    try:
        return BusinessCalendar.of(intervals, open_names, spec.holidays or ())
    except CalendarError as exc:
        problems.append(Problem(document.locate((*path, "business_hours")), str(exc)))
        return None
