"""Kafka records read into the rows of the history tables.

The `cases` records are read field by field from their JSON, not through `CaseEvent`: records
written by an older or newer release (other states, more fields: reason codes, notes, assignees)
still project, and the whole record is kept as JSONB next to the columns. A record that cannot be
read at all is returned as `Unreadable` (with where it is and why): it stays in Kafka, and the
projection counts and logs it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from alert_engine.alerts import Alert
from alert_engine.events import describe_validation_error
from alert_engine.followup.sends import FollowupSettled

# The `cases` states written by the follow-up side, each with a table of its own.
RERATED = "rerated"
HOLDOUT = "holdout"


@dataclass(frozen=True)
class Source:
    """Where a record was read: its key in the history, with the ids."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class AlertRow:
    alert_id: str
    rule: str
    severity: str
    route: str
    team: str
    agent: str
    channel: str
    customer_id: str | None
    fired_at: datetime
    event_time: datetime
    initial_rating: int | None
    initial_nps: int | None
    record: str
    source: Source


@dataclass(frozen=True)
class TransitionRow:
    source: Source
    alert_id: str
    state: str
    previous_state: str | None
    action: str | None
    actor: str
    user_id: str | None
    at: datetime
    reason: str | None
    note: str | None
    assignee: str | None
    record: str


@dataclass(frozen=True)
class HoldoutRow:
    alert_id: str
    assigned_at: datetime
    source: Source


@dataclass(frozen=True)
class AnswerRow:
    rating_id: str
    alert_id: str
    rating: int
    previous_rating: int | None
    nps: int | None
    comment: str | None
    answered_at: datetime
    record: str
    source: Source


@dataclass(frozen=True)
class SendRow:
    survey_id: str
    alert_id: str
    outcome: str
    at: datetime
    holdout: bool
    record: str
    source: Source


@dataclass(frozen=True)
class Unreadable:
    source: Source
    reason: str


@dataclass
class Rows:
    """The rows of a batch of records, per table."""

    alerts: list[AlertRow] = field(default_factory=list)
    transitions: list[TransitionRow] = field(default_factory=list)
    holdouts: list[HoldoutRow] = field(default_factory=list)
    answers: list[AnswerRow] = field(default_factory=list)
    sends: list[SendRow] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)

    def __len__(self) -> int:
        return (
            len(self.alerts)
            + len(self.transitions)
            + len(self.holdouts)
            + len(self.answers)
            + len(self.sends)
        )


@dataclass(frozen=True)
class TopicNames:
    """Which topic carries which records."""

    alerts: str
    cases: str
    followups: str

    @property
    def all(self) -> tuple[str, str, str]:
        return (self.alerts, self.cases, self.followups)


class _Unreadable(ValueError):
    pass


def read(topics: TopicNames, source: Source, value: bytes | None, rows: Rows) -> None:
    """Adds the rows of one record to `rows` (or its `Unreadable`)."""
    try:
        if value is None:
            raise _Unreadable("a record without a value")
        if source.topic == topics.alerts:
            rows.alerts.append(alert_row(Alert.from_json(value), source))
        elif source.topic == topics.cases:
            _read_case(_object(value), source, rows)
        elif source.topic == topics.followups:
            rows.sends.append(_send_row(FollowupSettled.from_json(value), value, source))
        else:
            raise _Unreadable(f"not a topic of the history: {source.topic}")
    except ValidationError as exc:
        rows.unreadable.append(Unreadable(source, describe_validation_error(exc)))
    except (_Unreadable, orjson.JSONDecodeError) as exc:
        rows.unreadable.append(Unreadable(source, str(exc)))


def alert_row(alert: Alert, source: Source) -> AlertRow:
    event = alert.event
    agent = event.get("agent")
    customer = event.get("customer")
    customer_id = customer.get("id") if isinstance(customer, dict) else None
    return AlertRow(
        alert_id=text(alert.id),
        rule=text(alert.rule),
        severity=alert.severity.value,
        route=text(alert.route),
        team=text(str(event.get("team") or "")),
        agent=text(str(agent.get("name") or agent.get("id") or ""))
        if isinstance(agent, dict)
        else "",
        channel=text(str(event.get("channel") or "")),
        customer_id=text(str(customer_id)) if customer_id is not None else None,
        fired_at=alert.fired_at,
        event_time=alert.event_time,
        initial_rating=_small_int(event.get("rating")),
        initial_nps=_small_int(event.get("nps")),
        record=json_text(alert.model_dump(mode="json")),
        source=source,
    )


def _read_case(record: Mapping[str, Any], source: Source, rows: Rows) -> None:
    alert_id = _required_text(record, "alert_id")
    state = _required_text(record, "state")
    at = _time(record.get("at"), "at")
    if isinstance(record.get("alert"), dict):
        # The alert as delivered, also when its `alerts` record is gone (retention).
        rows.alerts.append(alert_row(Alert.model_validate(record["alert"]), source))
    if state == HOLDOUT:
        rows.holdouts.append(HoldoutRow(alert_id, at, source))
        return
    if state == RERATED:
        rerating = record.get("rerating")
        if not isinstance(rerating, dict) or _small_int(rerating.get("rating")) is None:
            raise _Unreadable("a rerated record without its rerating")
        rating = _small_int(rerating.get("rating"))
        assert rating is not None
        rows.answers.append(
            AnswerRow(
                rating_id=text(str(rerating.get("rating_id") or f"fu-{alert_id}")),
                alert_id=alert_id,
                rating=rating,
                previous_rating=_small_int(rerating.get("previous_rating")),
                nps=_small_int(rerating.get("nps")),
                comment=_optional_text(rerating.get("comment")),
                answered_at=at,
                record=json_text(_without_alert(record)),
                source=source,
            )
        )
        return
    rows.transitions.append(
        TransitionRow(
            source=source,
            alert_id=alert_id,
            state=state,
            previous_state=_optional_text(record.get("previous_state")),
            action=_optional_text(record.get("action")),
            actor=text(str(record.get("actor") or record.get("user_name") or "")),
            user_id=_optional_text(record.get("user_id")),
            at=at,
            reason=_optional_text(record.get("reason") or record.get("reason_code")),
            note=_optional_text(record.get("note")),
            assignee=_optional_text(record.get("assignee_name") or record.get("assignee") or None),
            record=json_text(_without_alert(record)),
        )
    )


def _send_row(settled: FollowupSettled, value: bytes, source: Source) -> SendRow:
    return SendRow(
        survey_id=text(settled.survey_id),
        alert_id=text(settled.alert_id),
        outcome=settled.outcome.value,
        at=settled.at,
        holdout=settled.holdout,
        record=json_text(orjson.loads(value)),
        source=source,
    )


def _without_alert(record: Mapping[str, Any]) -> dict[str, Any]:
    """The case record without its alert: the alert has its own row."""
    return {key: value for key, value in record.items() if key != "alert"}


def _object(value: bytes) -> dict[str, Any]:
    parsed = orjson.loads(value)
    if not isinstance(parsed, dict):
        raise _Unreadable("not a JSON object")
    return parsed


def _required_text(record: Mapping[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value:
        raise _Unreadable(f"{name}: a non-empty string is required")
    return text(value)


def _optional_text(value: object) -> str | None:
    return text(value) if isinstance(value, str) and value else None


def _time(value: object, name: str) -> datetime:
    if not isinstance(value, str):
        raise _Unreadable(f"{name}: an ISO 8601 time is required")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Unreadable(f"{name}: not an ISO 8601 time: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        raise _Unreadable(f"{name}: a time without its UTC offset: {value[:40]!r}")
    return parsed


def _small_int(value: object) -> int | None:
    """A rating or score: an int in PostgreSQL's smallint, else nothing."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if -32768 <= value <= 32767 else None


def text(value: str) -> str:
    """PostgreSQL's text cannot hold NUL: a customer's text with one loses only that."""
    return value.replace("\x00", "")


# A JSON \u0000 escape, not the text `\\u0000` (an escaped backslash before `u0000`).
_JSON_NUL = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


def json_text(value: object) -> str:
    """JSON for a jsonb column: jsonb cannot hold \\u0000 either."""
    return _JSON_NUL.sub(rb"\1", orjson.dumps(value)).decode()
