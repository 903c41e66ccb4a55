"""Warnings for a routing file that loads but looks written for Alertmanager's meaning where the
engine means something else on purpose (docs/channels.md, "Where routing differs from
Alertmanager"). `alert-engine routes check` prints them; none stops a worker."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from alert_engine.problems import Location, Problem
from alert_engine.routing.matchers import Matcher, Op, parse_matchers
from alert_engine.routing.spec import GROUP_BY_ALL, RouteSpec, RoutingSpec
from alert_engine.rules.yamlsource import LocatedDocument, PathKey

ON_ITS_OWN = "each alert on its own card"


def routing_warnings(spec: RoutingSpec, document: LocatedDocument) -> list[Problem]:
    found = list(_route(spec.route, ("route",), grouped=False, document=document))
    for index, rule in enumerate(spec.inhibit_rules):
        for side in ("source_matchers", "target_matchers"):
            path = ("inhibit_rules", index, side)
            found.extend(_matchers(getattr(rule, side), path, document))
        if "alertname" in rule.equal:
            position = rule.equal.index("alertname")
            found.append(
                Problem(document.locate(("inhibit_rules", index, "equal", position)), _ALERTNAME)
            )
    return found


_ALERTNAME = (
    "'alertname' is no alert field here (the rule's name is `rule`): it reads as \"\" unless "
    "a rule sets a label `alertname`"
)


def _route(
    route: RouteSpec, path: PathKey, *, grouped: bool, document: LocatedDocument
) -> Iterator[Problem]:
    def at(*key: str | int) -> Location:
        return document.locate((*path, *key))

    root = path == ("route",)
    if root and route.continue_:
        yield Problem(
            at("continue"),
            "`continue` on the root route has no effect, the root has no siblings "
            "(Alertmanager refuses it)",
        )
    if route.repeat_interval is not None:
        yield Problem(
            at("repeat_interval"),
            "repeat_interval has no effect here: an alert is delivered once and its case "
            "follows it, where Alertmanager notifies again while an alert keeps firing; to "
            "remind about an alert nobody claimed, set `escalate_after` on its rule",
        )
    yield from _matchers(route.matchers, (*path, "matchers"), document)
    if route.group_by == []:
        yield Problem(
            at("group_by"),
            f"group_by: [] turns grouping off: {ON_ITS_OWN} (in Alertmanager it makes one group "
            "of all the route's alerts)",
        )
    elif route.group_by == [GROUP_BY_ALL]:
        yield Problem(
            at("group_by"),
            f"group_by: ['...'] groups by every field: {ON_ITS_OWN}, as in Alertmanager "
            "(here `group_by: []` says the same)",
        )
    elif route.group_by:
        seen: set[str] = set()
        for index, name in enumerate(route.group_by):
            if name in seen:
                yield Problem(
                    at("group_by", index),
                    f"group_by names {name!r} twice (Alertmanager refuses it); once is enough",
                )
            seen.add(name)
            if name == "alertname":
                yield Problem(at("group_by", index), _ALERTNAME)
    if route.group_by is not None:
        grouped = bool(route.group_by) and route.group_by != [GROUP_BY_ALL]
    timing = next(
        (key for key in ("group_wait", "group_interval") if getattr(route, key) is not None),
        None,
    )
    if not grouped and timing is not None:
        yield Problem(
            at(timing),
            f"{timing} has no effect without group_by: {ON_ITS_OWN} (recovery work needs one "
            "card per case), where Alertmanager would make one group of the route's alerts; "
            "set group_by, e.g. [team], to send digests",
        )
    for index, child in enumerate(route.routes):
        yield from _route(child, (*path, "routes", index), grouped=grouped, document=document)


def _matchers(texts: Sequence[str], path: PathKey, document: LocatedDocument) -> Iterator[Problem]:
    for index, text in enumerate(texts):
        try:
            parsed = parse_matchers(text)
        except ValueError:
            continue  # reported as a problem when the routing loads
        where = document.locate((*path, index))
        for matcher in parsed:
            value = matcher.value
            if len(value) >= 2 and value[0] == value[-1] == "'":
                # Printed by hand: the unquoted value need not be a valid regex.
                written = str(Matcher(matcher.field, Op.EQ, value[1:-1])).replace(
                    "=", matcher.op, 1
                )
                yield Problem(
                    where,
                    f"matcher {text!r}: single quotes are part of the value (as in "
                    f"Alertmanager), so it matches {value} with its quotes; write {written} for "
                    f"{value[1:-1]!r}",
                )
            if matcher.field == "alertname":
                yield Problem(where, f"matcher {text!r}: {_ALERTNAME}")
