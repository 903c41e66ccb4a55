"""Alert rules as written: the YAML rule file's keys, validated by pydantic, and its JSON Schema.

A rule file holds one rule, or several under a top-level `rules:` list:

    name: negative-rating
    description: Any rating of 1 or 2 stars.
    source: ratings
    condition: rating <= 2
    severity: high
    route: outbox

`alert_engine.rules.compiler` turns a validated `RuleSpec` into a compiled `Rule`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from alert_engine.durations import NonNegativeDuration, PositiveDuration
from alert_engine.events import Stream
from alert_engine.windows.definitions import WindowDuration, WindowSpec


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


RuleName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=100)]
Source = Annotated[str, Field(min_length=1, max_length=4000)]
AggregateName = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]*$", max_length=64)]
FragmentName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]
# The window shape of the table that holds ratings and interactions waiting for each other.
JOIN_SHAPE_PREFIX = "join-"
# Names a windowed rule's condition reads besides its aggregates.
WINDOW_VARIABLES = ("key",)


class ThrottleSpec(BaseModel):
    """`throttle: {period: 1h, key: customer.id}`: at most one alert per rule and key per period.

    The key is a CEL expression over the event; without one it is the alert's key (the group key
    of a windowed rule, the event id of a filter)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    period: WindowDuration
    key: Source | None = None


class JoinSpec(BaseModel):
    """`join: {within: 2h, condition: interaction.transfers >= 3}` on a ratings rule: the rating
    alerts only if its interaction (`interaction_id`), arriving before or after it with event
    times at most `within` apart, meets `condition` (CEL over `interaction`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    within: WindowDuration
    condition: Source


class FollowupPolicy(BaseModel):
    """A rule's follow-up survey policy; what it leaves out comes from the follow-up settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # False: cases of this rule never get a follow-up survey, even when resolved with follow-up.
    enabled: bool = True
    # After resolve time: `24h`, `1d`, seconds, or ISO 8601 (`P1D`).
    delay: NonNegativeDuration | None = None


class RuleSpec(BaseModel):
    """A rule as written by ops; unknown keys are errors, so a typo never silently does nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: RuleName
    description: str = ""
    source: Stream
    condition: Annotated[str, Field(min_length=1, max_length=4000)]
    severity: Severity = Severity.HIGH
    route: Annotated[str, Field(min_length=1, max_length=100)] = "default"
    enabled: bool = True
    labels: dict[str, str] = Field(default_factory=dict)
    followup: FollowupPolicy | None = None
    # An alert nobody claimed (or closed) within this time goes again through the routing tree
    # with the label `escalated=true`: `30m`, `1h30m`, seconds, or ISO 8601 (`PT15M`).
    escalate_after: PositiveDuration | None = None
    # Windowed rules: events passing `where` are grouped by `group_by` into windows, aggregated,
    # and `condition` reads the aggregates (and `key`) once `min_sample` events are in.
    where: Source | None = None
    group_by: Source | None = None
    window: WindowSpec | None = None
    aggregates: dict[AggregateName, Source] | None = None
    min_sample: int = Field(default=1, ge=1, le=1_000_000)
    throttle: ThrottleSpec | None = None
    join: JoinSpec | None = None

    @model_validator(mode="after")
    def _windowed_parts_together(self) -> RuleSpec:
        if self.join is not None and self.source is not Stream.RATINGS:
            raise ValueError("join is for ratings rules: a rating joined with its interaction")
        if self.join is not None and self.window is not None:
            raise ValueError("a rule has either a window or a join, not both")
        windowed = ("group_by", "window", "aggregates")
        given = [name for name in windowed if getattr(self, name) is not None]
        if given and len(given) < len(windowed):
            missing = ", ".join(name for name in windowed if name not in given)
            raise ValueError(
                f"a windowed rule needs group_by, window and aggregates; missing {missing}"
            )
        if not given:
            extra = [name for name in ("where", "min_sample") if name in self.model_fields_set]
            if extra:
                raise ValueError(f"{', '.join(extra)} only apply to windowed rules (with a window)")
        if self.aggregates is not None:
            if not self.aggregates:
                raise ValueError("aggregates must name at least one aggregate")
            clash = sorted(set(self.aggregates) & set(WINDOW_VARIABLES))
            if clash:
                raise ValueError(f"aggregate name(s) {', '.join(clash)} are reserved")
        return self

    @property
    def is_windowed(self) -> bool:
        return self.window is not None


class RuleDefaults(BaseModel):
    """`_defaults.yaml` in the rules directory: values every rule gets unless it sets its own.

    `labels` are merged (a rule's own win); `grace` and `min_sample` apply to windowed rules.
    A rule opts out of a default throttle with `throttle: null`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    severity: Severity | None = None
    route: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    enabled: bool | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    throttle: ThrottleSpec | None = None
    grace: WindowDuration | None = None
    min_sample: int | None = Field(default=None, ge=1, le=1_000_000)
    # Named CEL snippets a rule's expressions use as `$name` (see `alert_engine.rules.fragments`).
    fragments: dict[FragmentName, Source] = Field(default_factory=dict)

    def apply(self, entry: Any) -> Any:
        if not isinstance(entry, dict):
            return entry
        merged = dict(entry)
        for name in ("severity", "route", "enabled"):
            value = getattr(self, name)
            if value is not None:
                merged.setdefault(name, value.value if isinstance(value, Severity) else value)
        own_labels = entry.get("labels")
        if self.labels and (own_labels is None or isinstance(own_labels, dict)):
            merged["labels"] = {**self.labels, **(own_labels or {})}
        if self.throttle is not None and "throttle" not in entry:
            merged["throttle"] = self.throttle.model_dump(exclude_none=True)
        window = entry.get("window")
        if isinstance(window, dict):
            if self.grace is not None:
                merged["window"] = {"grace": self.grace, **window}
            if self.min_sample is not None:
                merged.setdefault("min_sample", self.min_sample)
        return merged


SCHEMA_ID = "https://alert-engine.example/rules.schema.json"


def rule_file_schema() -> dict[str, Any]:
    """The JSON Schema of a rule file (one rule, or several under `rules:`), for editors."""
    rule = RuleSpec.model_json_schema(mode="validation")
    definitions = rule.pop("$defs", {})
    definitions["Rule"] = rule
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "alert_engine rule file",
        "description": "One alert rule, or several under `rules:`. See docs/rules.md.",
        "$defs": definitions,
        "oneOf": [
            {"$ref": "#/$defs/Rule"},
            {
                "type": "object",
                "properties": {"rules": {"type": "array", "items": {"$ref": "#/$defs/Rule"}}},
                "required": ["rules"],
                "additionalProperties": False,
            },
        ],
    }
