"""The queue: the cases not closed yet, filtered, sorted and paged.

Read from the open-cases index (`CaseStore`'s sorted set: a case is in it from its alert's first
delivery until it is closed) and each case's record (`CaseStore.get_many`, a pipelined read per
chunk). A closed case is not in the queue: its page (`/console/cases/<alert id>`) is reached by
its id. A filter is
typed and validated from the page's query string: a value it does not know is a clear 400, not
an empty queue.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alert_engine.alerts import Alert
from alert_engine.cases import CLOSED, LABELS, Case, CaseState, CaseStore
from alert_engine.console.sla import sla_status, span_text
from alert_engine.rules.spec import Severity
from alert_engine.storage import redis_keys

PER_PAGE = 50
# Cases read per round trip: a queue of thousands in a few dozen, each short on the loop.
FETCH_CHUNK = 200
SEVERITY_RANK = {severity: rank for rank, severity in enumerate(Severity)}

Show = Literal["open", "unclaimed", "mine"]
Sort = Literal["oldest", "newest", "severity"]


class QueueFilter(BaseModel):
    """What the queue shows. `show`: every case not closed (`open`), those nobody has claimed
    (`unclaimed`), or those the signed-in member claimed (`mine`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    show: Show = "open"
    team: str | None = Field(default=None, max_length=100)
    route: str | None = Field(default=None, max_length=100)
    rule: str | None = Field(default=None, max_length=200)
    severity: Severity | None = None
    # Only cases at least this old (minutes since the alert's first delivery).
    min_age_minutes: int | None = Field(default=None, ge=0, le=60 * 24 * 365)
    # Only cases that missed a deadline of their route's SLA (to claim, or to resolve).
    sla_breached: bool = False
    sort: Sort = "oldest"
    page: int = Field(default=1, ge=1, le=100_000)

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> QueueFilter:
        """Raises `FilterError` naming the field."""
        values = {name: value.strip() for name, value in query.items() if value.strip()}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors()
            )
            raise FilterError(problems) from None

    def query(self, **changes: Any) -> dict[str, str]:
        """The query string of this filter (with `changes`), without defaults."""
        merged = self.model_copy(update=changes)
        defaults = QueueFilter()
        return {
            name: str(value).lower() if isinstance(value, bool) else str(value)
            for name, value in merged.model_dump(mode="json").items()
            if value is not None and value != getattr(defaults, name)
        }


class FilterError(ValueError):
    pass


@dataclass(frozen=True)
class QueueRow:
    alert_id: str
    rule: str
    severity: Severity
    route: str
    team: str
    customer: str
    rating: int | None
    state: CaseState
    state_label: str
    claimed_by: str | None
    delivered_at: float
    age_seconds: float
    # Where the case stands against its SLA (`Claim: 12 min left`; '' without one).
    sla: str = ""
    sla_breached: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "rule": self.rule,
            "severity": self.severity.value,
            "route": self.route,
            "team": self.team,
            "customer": self.customer,
            "rating": self.rating,
            "state": self.state.value,
            "state_label": self.state_label,
            "claimed_by": self.claimed_by,
            "delivered_at": datetime.fromtimestamp(self.delivered_at, UTC).isoformat(),
            "age": age_text(self.age_seconds),
            "sla": self.sla,
            "sla_breached": self.sla_breached,
        }


@dataclass(frozen=True)
class QueuePage:
    rows: Sequence[QueueRow]
    total: int
    page: int
    pages: int


def row_of(case: Case, delivered_at: float, now: float) -> QueueRow | None:
    """The queue's row of a case, or None for one closed or whose alert is gone."""
    if case.alert is None or case.state in CLOSED:
        return None
    alert = Alert.model_validate_json(case.alert)
    event = alert.event
    customer = event.get("customer")
    rating = event.get("rating")
    sla = sla_status(case, alert, datetime.fromtimestamp(now, UTC))
    return QueueRow(
        alert_id=alert.id,
        rule=alert.rule,
        severity=alert.severity,
        route=alert.route,
        team=str(event.get("team") or ""),
        customer=str(customer.get("name") or "") if isinstance(customer, dict) else "",
        rating=rating if isinstance(rating, int) and not isinstance(rating, bool) else None,
        state=case.state,
        state_label=LABELS.get(case.state, case.state.value),
        claimed_by=case.claimed_by,
        delivered_at=delivered_at,
        age_seconds=max(0.0, now - delivered_at),
        sla=sla.summary(),
        sla_breached=sla.breached,
    )


def select(rows: Iterable[QueueRow], chosen: QueueFilter, member_id: str) -> QueuePage:
    """The page of the rows the filter selects, in its order."""
    kept = [row for row in rows if _matches(row, chosen, member_id)]
    if chosen.sort == "severity":
        kept.sort(key=lambda row: (-SEVERITY_RANK[row.severity], row.delivered_at, row.alert_id))
    else:
        kept.sort(key=lambda row: (row.delivered_at, row.alert_id), reverse=chosen.sort == "newest")
    pages = max(1, -(-len(kept) // PER_PAGE))
    page = min(chosen.page, pages)
    start = (page - 1) * PER_PAGE
    return QueuePage(kept[start : start + PER_PAGE], len(kept), page, pages)


def _matches(row: QueueRow, chosen: QueueFilter, member_id: str) -> bool:
    if chosen.show == "unclaimed" and row.state is not CaseState.OPEN:
        return False
    if chosen.show == "mine" and row.claimed_by != member_id:
        return False
    for field, value in (("team", chosen.team), ("route", chosen.route), ("rule", chosen.rule)):
        if value is not None and getattr(row, field).casefold() != value.casefold():
            return False
    if chosen.severity is not None and row.severity is not chosen.severity:
        return False
    if chosen.sla_breached and not row.sla_breached:
        return False
    return chosen.min_age_minutes is None or row.age_seconds >= chosen.min_age_minutes * 60


async def open_rows(cases: CaseStore, now: float | None = None) -> list[QueueRow]:
    """Every case not closed, as queue rows. The records are read a chunk per round trip and
    the alerts parsed in a thread: thousands of alerts are a few hundred milliseconds of CPU,
    which the loop delivering alerts must not spend."""
    now = time.time() if now is None else now
    await cases.open_count(now)  # drops the index's entries of expired cases
    key = redis_keys.open_cases(cases.prefix)
    indexed: list[Any] = await cases.redis.zrange(key, 0, -1, withscores=True)
    entries = [(_text(alert_id), float(score)) for alert_id, score in indexed]
    found = await cases.get_many([alert_id for alert_id, _ in entries], FETCH_CHUNK)
    return await asyncio.to_thread(_rows, entries, found, now)


def _rows(
    entries: Sequence[tuple[str, float]], found: Sequence[Case], now: float
) -> list[QueueRow]:
    rows = []
    for (_, delivered_at), case in zip(entries, found, strict=True):
        row = row_of(case, delivered_at, now)
        if row is not None:
            rows.append(row)
    return rows


def age_text(seconds: float) -> str:
    return span_text(seconds)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
