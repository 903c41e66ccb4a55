"""The routing file's schema: destinations, the route tree and inhibition rules."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from alert_engine.calendars.intervals import NamedIntervalSpec
from alert_engine.durations import Duration, PositiveDuration
from alert_engine.routing.matchers import FIELD_NAME

GROUP_BY_ALL = "..."
_FIELD_NAME = re.compile(FIELD_NAME)
DestinationName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)]


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


class SlaSpec(BaseModel):
    """How soon a case of this route should be claimed and resolved, in its working time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    claim: PositiveDuration | None = None
    resolve: PositiveDuration | None = None


class RouteSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str | None = None
    matchers: list[str] = Field(default_factory=list)
    destinations: list[DestinationName] | None = None
    continue_: bool = Field(default=False, alias="continue")
    routes: list[RouteSpec] = Field(default_factory=list)
    # Alerts of this route with the same values of these fields go out as one digest message:
    # the first waits `group_wait` for others, later ones at most every `group_interval`.
    # Inherited by child routes; `group_by: []` turns grouping off again, and so does
    # `group_by: ['...']` (Alertmanager's "every label": each alert on its own).
    group_by: list[str] | None = None
    group_wait: Duration | None = Field(default=None, ge=timedelta(0))
    group_interval: Duration | None = Field(default=None, gt=timedelta(0))
    # Alertmanager's key, read and inherited the same way (default 4h); see `routes check`.
    repeat_interval: Duration | None = Field(default=None, gt=timedelta(0))
    # The team's working time, by names of `time_intervals`: when open (any of them holds) and
    # when closed although open (holidays). Escalation timers and the SLA run in it. Inherited;
    # `business_hours: []` is around the clock again.
    business_hours: list[str] | None = None
    holidays: list[str] | None = None
    sla: SlaSpec | None = None

    @field_validator("group_by")
    @classmethod
    def _group_by_names_fields(cls, names: list[str] | None) -> list[str] | None:
        if names is None or names == [GROUP_BY_ALL]:
            return names
        if GROUP_BY_ALL in names:
            raise ValueError("`...` stands alone: it groups by every field (as in Alertmanager)")
        for name in names:
            if not _FIELD_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a field name")
        return names


class InhibitRuleSpec(BaseModel):
    """While an alert matching `source_matchers` is active (for `active_for` after it fired),
    alerts matching `target_matchers` with the same values of the `equal` fields are muted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_matchers: list[str] = Field(min_length=1)
    target_matchers: list[str] = Field(min_length=1)
    equal: list[str] = Field(default_factory=list)
    active_for: Duration = Field(default=timedelta(minutes=30), gt=timedelta(0))


class RoutingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    destinations: dict[DestinationName, DestinationSpec]
    route: RouteSpec
    inhibit_rules: list[InhibitRuleSpec] = Field(default_factory=list)
    # Alertmanager's syntax: named working hours and holidays that routes refer to.
    time_intervals: list[NamedIntervalSpec] = Field(default_factory=list)
