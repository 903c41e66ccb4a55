"""The two input streams and their validation at the edge.

Events arrive as JSON bytes. `decode_event` either returns a validated, immutable event or raises
`EventRejected` with a reason a person can act on; the caller dead-letters the original bytes.
Validation is strict: `"5"` is not a rating, `true` is not a count and `"12.5"` is not seconds.
One leniency is kept on purpose: the event time may be an ISO-8601 string with an offset (JSON has
no time type) or a number of epoch seconds, never milliseconds (no guessing by magnitude). Unknown
fields are kept, so producers can add context (a customer tier, a store id) and rules can read it
before the schema names it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from alert_engine.problems import AlertEngineError

# Ids and names are keys in tables, Slack text and Redis keys: bound them.
ShortText = Annotated[str, Field(min_length=1, max_length=256)]
# A duration: a JSON number (an integer is fine), finite, never text or a boolean.
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]

_NUMBER_TEXT = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _epoch_seconds(value: Any) -> Any:
    """A number is epoch seconds, whatever its size: Pydantic would read one beyond 2e10 as
    milliseconds, so that `1.7e12` (a time in milliseconds sent as seconds) became 2023."""
    if isinstance(value, str):
        # Pydantic's lax parsing reads numeric text as a timestamp, milliseconds included. (An
        # ISO time has a colon, a number none: most events need no pattern matched.)
        if ":" not in value and _NUMBER_TEXT.fullmatch(value):
            raise ValueError("epoch seconds must be a JSON number, not text")
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(
                "epoch seconds out of range (a time is read as seconds, never milliseconds)"
            ) from None
    return value  # anything else (a boolean) the datetime validator refuses


# Event time: an ISO-8601 string with an offset, or epoch seconds (strict mode alone refuses
# strings, which JSON times are).
EventTime = Annotated[AwareDatetime, BeforeValidator(_epoch_seconds), Field(strict=False)]


class Stream(StrEnum):
    RATINGS = "ratings"
    INTERACTIONS = "interactions"


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


class Customer(_Model):
    id: ShortText
    name: str | None = Field(default=None, max_length=256)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=64)
    tier: str | None = Field(default=None, max_length=64)
    timezone: str | None = Field(default=None, max_length=64)


class Agent(_Model):
    id: ShortText
    name: str | None = Field(default=None, max_length=256)


class Rating(_Model):
    """A survey response: the initial rating of a contact, or a follow-up after recovery."""

    id: ShortText
    rating: int = Field(ge=1, le=5, description="stars, 1-5")
    nps: int | None = Field(default=None, ge=0, le=10)
    comment: str | None = Field(default=None, max_length=5000)
    customer: Customer
    agent: Agent
    team: ShortText
    channel: ShortText
    interaction_id: str | None = Field(default=None, min_length=1, max_length=256)
    time: EventTime
    survey: Literal["initial", "follow_up"] = "initial"
    alert_id: str | None = Field(default=None, max_length=128)


class Interaction(_Model):
    """A contact handled by an agent: a call, chat or email, with its service figures."""

    id: ShortText
    agent: Agent
    team: ShortText
    queue: ShortText
    channel: ShortText
    customer: Customer | None = None
    wait_seconds: Seconds
    handle_seconds: Seconds = 0
    hold_seconds: Seconds = 0
    transfers: int = Field(default=0, ge=0)
    outcome: str | None = Field(default=None, max_length=64)
    time: EventTime


Event = Rating | Interaction

# The deepest nesting of objects and arrays an event may have, the event itself one level (the
# default of `ALERT_ENGINE_EVENTS_MAX_DEPTH`, and the most it may be). Later stages put the event
# inside records of their own (an alert, an outbox line, a `windows` record, a few levels each)
# and orjson writes at most 255 levels and reads 1,024: past that an event crashed the agent
# that encoded it, and a `windows` record holding it could not be read.
MAX_DEPTH = 64

MODELS: Mapping[Stream, type[Rating] | type[Interaction]] = {
    Stream.RATINGS: Rating,
    Stream.INTERACTIONS: Interaction,
}


class EventRejected(AlertEngineError):
    """An input event that cannot be evaluated; `reason` is a short, stable label for counting."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def decode_event(
    stream: Stream, raw: bytes | None, *, max_bytes: int, max_depth: int = MAX_DEPTH
) -> Event:
    """The validated event of the JSON text `raw`; raises `EventRejected`."""
    if raw is None or not raw:
        raise EventRejected("empty", "the message has no value")
    if len(raw) > max_bytes:
        raise EventRejected("too_large", f"{len(raw)} bytes, the limit is {max_bytes}")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EventRejected("not_json", str(exc)) from None
    if not isinstance(data, dict):
        raise EventRejected("not_object", f"expected a JSON object, got {type(data).__name__}")
    too_deep = field_too_deep(raw, data, max_depth)
    if too_deep is not None:
        raise EventRejected(
            "invalid", f"{too_deep}: nested deeper than {max_depth} levels, the limit"
        )
    duplicate = duplicate_key(raw, data)
    if duplicate is not None:
        raise EventRejected("invalid", f"duplicate key {duplicate!r}")
    return validate_event(stream, data)


def field_too_deep(raw: bytes, data: dict[str, Any], max_depth: int) -> str | None:
    """The first top-level field of the event `data` (parsed from `raw`) holding objects or
    arrays nested deeper than `max_depth` levels, the event itself counting as one; or None.
    Nesting takes a bracket a level, so an event with few brackets needs no look (most)."""
    if raw.count(b"{") + raw.count(b"[") <= max_depth:
        return None
    for name, value in data.items():
        if isinstance(value, dict | list) and _deeper_than(value, max_depth - 1):
            return name
    return None


def _deeper_than(value: dict[str, Any] | list[Any], levels: int) -> bool:
    """Whether `value` nests more than `levels` levels of objects and arrays, itself one. Looks
    level by level, without recursion: no depth of input can exhaust the stack."""
    level: list[Any] = [value]
    while level:
        if levels == 0:
            return True
        levels -= 1
        level = [
            child
            for container in level
            for child in (container.values() if isinstance(container, dict) else container)
            if isinstance(child, dict | list)
        ]
    return False


def duplicate_key(raw: bytes, data: Any) -> str | None:
    """The path of a key that occurs twice in one object of the JSON text `raw` (which orjson
    parsed into `data`, keeping the last value), or None.

    orjson cannot report duplicates, so they are found by counting: every member of an object
    has one colon outside strings, and orjson writes colons inside strings as they are. Parsed
    without a loss, `data` encodes to exactly as many colons as `raw` holds; a dropped member
    takes its colon with it. Only an escaped colon (`\\u003a`) breaks the count: then, and to
    name the key, the text is parsed again by the standard library with every member kept.
    """
    if b"\\u003" not in raw and raw.count(b":") == orjson.dumps(data).count(b":"):
        return None
    try:
        parsed = json.loads(raw, object_pairs_hook=_first_duplicate)
    except ValueError:  # pragma: no cover - orjson parsed it: a stricter parser
        return None
    return ".".join(parsed.path) if isinstance(parsed, _Duplicate) else None


class _Duplicate:
    """What the standard parser returns for an object with a duplicate key at `path`."""

    def __init__(self, path: list[str]) -> None:
        self.path = path


def _first_duplicate(pairs: list[tuple[str, Any]]) -> dict[str, Any] | _Duplicate:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            return _Duplicate([key])
        inner = _inner_duplicate(value)
        if inner is not None:
            return _Duplicate([key, *inner])
        seen[key] = value
    return seen


def _inner_duplicate(value: Any) -> list[str] | None:
    if isinstance(value, _Duplicate):
        return value.path
    if isinstance(value, list):
        for index, item in enumerate(value):
            inner = _inner_duplicate(item)
            if inner is not None:
                return [str(index), *inner]
    return None


def validate_event(stream: Stream, data: dict[str, Any]) -> Event:
    """An event from its parsed JSON object; raises `EventRejected`."""
    try:
        return MODELS[stream].model_validate(data)
    except ValidationError as exc:
        raise EventRejected("invalid", describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError, limit: int = 5) -> str:
    """`rating: Input should be less than or equal to 5 (got 7); team: Field required`."""
    parts = []
    for error in exc.errors(include_url=False)[:limit]:
        where = ".".join(str(part) for part in error["loc"]) or "event"
        message = error["msg"]
        if error["type"] != "missing":
            message += f" (got {_short_repr(error.get('input'))})"
        parts.append(f"{where}: {message}")
    if exc.error_count() > limit:
        parts.append(f"and {exc.error_count() - limit} more")
    return "; ".join(parts)


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def event_fields(event: Event) -> dict[str, Any]:
    """The event as rules see it: plain values, extras included, `stream` added."""
    fields = event.model_dump()
    fields["stream"] = (
        Stream.RATINGS.value if isinstance(event, Rating) else Stream.INTERACTIONS.value
    )
    return fields
