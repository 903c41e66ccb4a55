"""What a person sees of an alert, whatever the channel: stars, NPS, comment, who and where, links.

Every channel renders from `AlertView`; each escapes it for its own format (Slack, HTML, text).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alert_engine.alerts import Alert, AlertWindow


@dataclass(frozen=True)
class LinkTemplates:
    """URL templates with `{customer_id}`, `{interaction_id}`, `{agent_id}`, `{rating_id}`."""

    customer: str | None = None
    interaction: str | None = None

    def customer_url(self, alert: Alert) -> str | None:
        return _fill(self.customer, alert)

    def interaction_url(self, alert: Alert) -> str | None:
        return _fill(self.interaction, alert)


def _fill(template: str | None, alert: Alert) -> str | None:
    if not template:
        return None
    ids = {
        "customer_id": _get(alert.event, "customer.id"),
        "interaction_id": _get(alert.event, "interaction_id") or _get(alert.event, "id"),
        "agent_id": _get(alert.event, "agent.id"),
        "rating_id": _get(alert.event, "id"),
    }
    if any(f"{{{name}}}" in template and not value for name, value in ids.items()):
        return None
    # Ids come from events: quoted, so none can change the URL's shape.
    return template.format(**{name: quote(value or "", safe="") for name, value in ids.items()})


def _get(event: dict[str, Any], path: str) -> str | None:
    value: Any = event
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return None if value is None or isinstance(value, dict | list) else str(value)


def clean_text(text: str, limit: int = 2000) -> str:
    """Customer text without control characters (newlines and tabs kept), cut to `limit`."""
    kept = "".join(
        char for char in text if char in "\n\t" or not unicodedata.category(char).startswith("C")
    )
    return kept if len(kept) <= limit else kept[: limit - 1] + "…"


@dataclass(frozen=True)
class AlertView:
    alert_id: str
    title: str
    severity: str
    rule: str
    stars: str | None
    nps: str | None
    comment: str | None
    customer: str | None
    agent: str | None
    team: str | None
    channel: str | None
    customer_url: str | None
    interaction_url: str | None
    values: str
    # What the alert is about (the event id, or a windowed rule's group key), and a windowed
    # rule's group ("queue returns"), window, and events counted.
    key: str = ""
    group: str | None = None
    window: str | None = None
    window_start: str | None = None
    window_end: str | None = None
    sample: str | None = None

    @classmethod
    def of(cls, alert: Alert, links: LinkTemplates | None = None) -> AlertView:
        if alert.window is not None:
            return cls._of_window(alert, alert.window, links or LinkTemplates())
        links = links or LinkTemplates()
        event = alert.event
        rating = event.get("rating")
        stars = "★" * rating + "☆" * (5 - rating) if isinstance(rating, int) else None
        nps = _get(event, "nps")
        customer = _get(event, "customer.name") or _get(event, "customer.id")
        tier = _get(event, "customer.tier")
        if customer and tier:
            customer = f"{customer} ({tier})"
        agent = _get(event, "agent.name") or _get(event, "agent.id")
        comment = event.get("comment")
        title = f"{alert.rule} [{alert.severity.value}]"
        if stars:
            title = f"{rating}★ rating: {title}"
        if alert.labels.get("escalated") == "true":
            title = f"Escalated, nobody claimed it: {title}"
        return cls(
            alert_id=alert.id,
            title=clean_text(title, 150),
            severity=alert.severity.value,
            rule=alert.rule,
            stars=stars,
            nps=f"{nps}/10" if nps is not None else None,
            comment=clean_text(comment) if isinstance(comment, str) and comment else None,
            customer=clean_text(customer, 200) if customer else None,
            agent=clean_text(agent, 200) if agent else None,
            team=clean_text(_get(event, "team") or "", 200) or None,
            channel=clean_text(_get(event, "channel") or "", 200) or None,
            customer_url=links.customer_url(alert),
            interaction_url=links.interaction_url(alert),
            values=clean_text(
                ", ".join(f"{name}={value}" for name, value in sorted(alert.values.items())), 500
            ),
            key=alert.key,
        )

    @classmethod
    def _of_window(cls, alert: Alert, window: AlertWindow, links: LinkTemplates) -> AlertView:
        """A windowed rule's alert is about its group over the window, not about the event
        that happened to be counted last: the title names the group, the facts say the window,
        what fired and over how many events. Who the group is (the customer, agent, team) is
        shown only when the rule groups by them; one customer's stars and comment only when the
        group is that customer."""
        event = alert.event
        field = window.group_by.strip()
        group = clean_text(f"{_field_label(field)} {window.key}", 200)
        about_customer = field.startswith("customer")
        customer = None
        if about_customer:
            customer = _get(event, "customer.name") or _get(event, "customer.id")
        agent = _get(event, "agent.name") if field.startswith("agent") else None
        title = f"{alert.rule} [{alert.severity.value}]: {group}"
        if alert.labels.get("escalated") == "true":
            title = f"Escalated, nobody claimed it: {title}"
        aggregates = ", ".join(
            f"{name}={_number(value)}" for name, value in sorted(window.aggregates.items())
        )
        comment = event.get("comment") if about_customer else None
        return cls(
            alert_id=alert.id,
            title=clean_text(title, 150),
            severity=alert.severity.value,
            rule=alert.rule,
            stars=None,
            nps=None,
            comment=clean_text(comment) if isinstance(comment, str) and comment else None,
            customer=clean_text(customer, 200) if customer else None,
            agent=clean_text(agent, 200) if agent else None,
            team=None,
            channel=None,
            customer_url=links.customer_url(alert) if about_customer else None,
            interaction_url=None,
            values=clean_text(f"{aggregates} (condition: {window.condition})", 500),
            key=window.key,
            group=group,
            window=window_text(window.start, window.end, alert.labels.get("timezone")),
            window_start=window.start.isoformat(),
            window_end=window.end.isoformat(),
            sample=f"{window.sample} events (min_sample {window.min_sample})",
        )

    def facts(self) -> list[tuple[str, str]]:
        """The labelled facts shown under the title, those the alert has."""
        pairs = [
            ("Group", self.group),
            ("Window", self.window),
            ("Rating", self.stars),
            ("NPS", self.nps),
            ("Customer", self.customer),
            ("Agent", self.agent),
            ("Team", self.team),
            ("Channel", self.channel),
            ("Rule", self.rule),
            ("Fired on", self.values),
            ("Sample", self.sample),
        ]
        return [(label, value) for label, value in pairs if value]


def window_text(start: datetime, end: datetime, zone_name: str | None) -> str:
    """`2026-03-02 14:00-14:30 Europe/London`: in the zone the rule's `timezone` label names
    (the team's), else UTC."""
    zone: Any = UTC
    if zone_name:
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            zone_name = None
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    shown = f"{local_start:%Y-%m-%d %H:%M}-"
    shown += (
        f"{local_end:%H:%M}"
        if local_end.date() == local_start.date()
        else f"{local_end:%Y-%m-%d %H:%M}"
    )
    return f"{shown} {zone_name or 'UTC'}"


def _field_label(field: str) -> str:
    """`queue` for `queue`, `agent` for `agent.id`: how the group's field reads on a card."""
    if field.endswith(".id") and field.count(".") == 1 and field[:-3].isidentifier():
        return field[:-3]
    return field


def _number(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
