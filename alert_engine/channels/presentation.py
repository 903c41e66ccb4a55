"""What a person sees of an alert, whatever the channel: who rated whom how (the headline),
stars, NPS, comment, how to reach the customer and their local time, when, links.

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
from alert_engine.delivery.escalation import is_escalated


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


def _title(alert: Alert, title: str) -> str:
    if is_escalated(alert):
        title = f"Escalated, nobody claimed it: {title}"
    return clean_text(title, 150)


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
    # How to reach the customer (left out where the team must not see it: `show_contact`), and
    # their local time at the rating (`14:05 Europe/Paris (UTC+01:00)`).
    email: str | None = None
    phone: str | None = None
    local_time: str | None = None
    # When the customer rated (seconds since the epoch), and as text in UTC.
    rated_epoch: int | None = None
    rated_at: str | None = None
    # The route's SLA deadlines (seconds since the epoch), if it has one.
    claim_by_epoch: int | None = None
    resolve_by_epoch: int | None = None

    @property
    def claim_by(self) -> str | None:
        return _utc_text(self.claim_by_epoch)

    @property
    def resolve_by(self) -> str | None:
        return _utc_text(self.resolve_by_epoch)

    @classmethod
    def of(
        cls, alert: Alert, links: LinkTemplates | None = None, *, contact: bool = True
    ) -> AlertView:
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
        if isinstance(rating, int):
            title = headline(customer, agent, rating)
        return cls(
            alert_id=alert.id,
            title=_title(alert, title),
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
            email=_contact(event, "customer.email") if contact else None,
            phone=_contact(event, "customer.phone") if contact else None,
            local_time=local_time(alert.event_time, _get(event, "customer.timezone")),
            rated_epoch=int(alert.event_time.timestamp()),
            rated_at=f"{alert.event_time.astimezone(UTC):%Y-%m-%d %H:%M} UTC",
            claim_by_epoch=_epoch(alert.sla.claim_by if alert.sla else None),
            resolve_by_epoch=_epoch(alert.sla.resolve_by if alert.sla else None),
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
        aggregates = ", ".join(
            f"{name}={_number(value)}" for name, value in sorted(window.aggregates.items())
        )
        comment = event.get("comment") if about_customer else None
        return cls(
            alert_id=alert.id,
            title=_title(alert, title),
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
            ("Email", self.email),
            ("Phone", self.phone),
            ("Customer's time", self.local_time),
            ("Agent", self.agent),
            ("Team", self.team),
            ("Channel", self.channel),
            (RATED, self.rated_at),
            (CLAIM_BY, self.claim_by),
            (RESOLVE_BY, self.resolve_by),
            ("Severity", self.severity),
            ("Rule", self.rule),
            ("Fired on", self.values),
            ("Sample", self.sample),
        ]
        return [(label, value) for label, value in pairs if value]


# The labels of times Slack shows in each reader's own time zone.
RATED = "Rated"
CLAIM_BY = "Claim by"
RESOLVE_BY = "Resolve by"


def _epoch(at: datetime | None) -> int | None:
    return None if at is None else int(at.timestamp())


def _utc_text(epoch: int | None) -> str | None:
    return None if epoch is None else f"{datetime.fromtimestamp(epoch, UTC):%Y-%m-%d %H:%M} UTC"


def headline(customer: str | None, agent: str | None, rating: int) -> str:
    """`Jordan Lee (gold) rated Priya Nair 1★`: who rated whom how."""
    who = customer or "A customer"
    return f"{who} rated {agent} {rating}★" if agent else f"{who} rated {rating}★"


def local_time(at: datetime, zone_name: str | None) -> str | None:
    """`14:05 Europe/Paris (UTC+01:00)`: the customer's time at `at`, for calling back at a
    decent hour; None without a (known) time zone."""
    if not zone_name:
        return None
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    local = at.astimezone(zone)
    offset = local.strftime("%z")
    return clean_text(f"{local:%H:%M} {zone_name} (UTC{offset[:3]}:{offset[3:]})", 100)


def _contact(event: dict[str, Any], path: str) -> str | None:
    value = _get(event, path)
    return clean_text(value, 200) if value else None


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
