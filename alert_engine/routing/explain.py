"""What `alert-engine routes test` shows: an example alert and the routes it takes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from alert_engine.alerts import Alert
from alert_engine.durations import format_duration
from alert_engine.events import Stream
from alert_engine.routing.spec import DestinationSpec, EmailSpec, OutboxSpec, SlackSpec
from alert_engine.routing.tree import RouteMatch


def describe(matches: Sequence[RouteMatch], destinations: Mapping[str, DestinationSpec]) -> str:
    """Human-readable result of routing one alert, for `alert-engine routes test`."""
    lines = []
    for found in matches:
        grouped = ""
        if found.grouping is not None:
            grouped = (
                f"  (grouped by {', '.join(found.grouping.by)}: wait "
                f"{format_duration(found.grouping.wait)}, interval "
                f"{format_duration(found.grouping.interval)})"
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
