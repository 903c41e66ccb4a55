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

A matcher is `field OP value` with OP one of `=`, `!=`, `=~` (regex, whole value), `!~`, parsed
and matched as Alertmanager does (`matchers`: its escapes, Go's RE2 regexes, its anchoring). Fields:
`rule`, `severity`, `route` (the rule's `route:`), `stream`, `labels.NAME` (or a bare label name),
and any event field by dotted path (`team`, `channel`, `customer.tier`, `agent.id`). A field the
alert lacks reads as "" as in Alertmanager. An alert descends into the first child that matches
(and the following ones while the matched child says `continue`); where no child matches, the node
itself is where it ends. A node without `destinations` inherits its parent's.

Loading never half-succeeds: every problem is reported with file, line and column.
"""

from alert_engine.durations import format_duration, parse_duration
from alert_engine.routing.explain import describe, example_alert
from alert_engine.routing.matchers import ALERT_FIELDS, Matcher, Op, field_value, parse_matchers
from alert_engine.routing.spec import (
    DestinationName,
    DestinationSpec,
    EmailSpec,
    InhibitRuleSpec,
    OutboxSpec,
    RouteSpec,
    RoutingSpec,
    SlackSpec,
)
from alert_engine.routing.tree import (
    Grouping,
    InhibitRule,
    Route,
    RouteMatch,
    Routing,
    RoutingError,
    default_routing,
    load_routing,
    routing_from,
)

__all__ = [
    "ALERT_FIELDS",
    "DestinationName",
    "DestinationSpec",
    "EmailSpec",
    "Grouping",
    "InhibitRule",
    "InhibitRuleSpec",
    "Matcher",
    "Op",
    "OutboxSpec",
    "Route",
    "RouteMatch",
    "RouteSpec",
    "Routing",
    "RoutingError",
    "RoutingSpec",
    "SlackSpec",
    "default_routing",
    "describe",
    "example_alert",
    "field_value",
    "format_duration",
    "load_routing",
    "parse_duration",
    "parse_matchers",
    "routing_from",
]
