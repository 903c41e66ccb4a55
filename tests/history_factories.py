"""Seeded histories for the history tests: each case's story (who claimed when, how it ended,
whether a survey went out and what came back), the Kafka records the engine writes for it, and
the figures computed from the stories alone (not from any record or table)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from alert_engine.alerts import Alert, alert_id
from alert_engine.cases import CaseEvent, CaseState, Rerating
from alert_engine.events import Stream
from alert_engine.followup.schedule import Settled
from alert_engine.followup.sends import FollowupSettled
from alert_engine.history.records import Rows, Source, TopicNames, read
from alert_engine.rules.spec import Severity
from tests.factories import rating
from tests.history_model import CaseFacts

TEAMS = ("orders", "billing", "returns")
AGENTS = ("Priya Nair", "Sam Ortiz", "Ana Lima")
MEMBERS = ("lee", "kim", "noor")
CHANNELS = ("chat", "phone", "email")
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Story:
    """One alert and what became of its case."""

    number: int
    fired_at: datetime
    team: str
    agent: str
    channel: str
    severity: Severity
    initial_rating: int | None
    initial_nps: int | None
    holdout: bool
    claimed_by: str | None
    claim_after: float | None
    # resolved_followup, resolved_no_followup, not_actionable, or None (still open).
    resolution: str | None
    resolve_after: float | None
    reopened: bool
    sent: bool
    answer_rating: int | None
    answer_nps: int | None

    @property
    def alert(self) -> Alert:
        event = rating(
            id=f"r-{self.number}",
            team=self.team,
            agent={"id": f"a-{self.agent[:3]}", "name": self.agent},
            channel=self.channel,
            customer={"id": f"c-{self.number}", "email": f"c{self.number}@example.com"},
            time=self.fired_at.isoformat(),
        )
        for name, value in (("rating", self.initial_rating), ("nps", self.initial_nps)):
            if value is None:
                del event[name]
            else:
                event[name] = value
        return Alert(
            id=alert_id("negative-rating", event["id"]),
            rule="negative-rating",
            severity=self.severity,
            route="default",
            key=event["id"],
            stream=Stream.RATINGS,
            event=event,
            values={"rating": self.initial_rating},
            event_time=self.fired_at,
            fired_at=self.fired_at,
            ruleset_version="test",
        )

    @property
    def claimed_at(self) -> datetime | None:
        if self.claim_after is None:
            return None
        return self.fired_at + timedelta(seconds=self.claim_after)

    @property
    def resolved_at(self) -> datetime | None:
        if self.resolve_after is None:
            return None
        return self.fired_at + timedelta(seconds=self.resolve_after)

    @property
    def reason(self) -> str:
        return ("refund", "apology", "call_back")[self.number % 3]

    @property
    def final_state(self) -> str | None:
        return None if self.reopened else self.resolution

    @property
    def member(self) -> str:
        """Who owns the case: its claimer, else whoever closed it (on the outbox page)."""
        if self.claimed_by:
            return self.claimed_by
        return "outbox" if self.resolution is not None else "-"

    def key(self, by: str) -> str:
        if by == "week":
            year, week, _ = self.fired_at.isocalendar()
            return f"{year}-W{week:02d}"
        if by == "month":
            return f"{self.fired_at:%Y-%m}"
        if by == "rule":
            return "negative-rating"
        if by == "route":
            return "default"
        if by == "severity":
            return self.severity.value
        if by == "reason":
            return self.reason if self.final_state is not None else "-"
        value: str = getattr(self, by)
        return value

    def records(self, topics: TopicNames) -> list[tuple[str, bytes, bytes]]:
        """(topic, key, value) in the order the engine writes them."""
        alert = self.alert
        key = alert.id.encode()
        out = [(topics.alerts, key, alert.to_json())]

        def case(
            state: CaseState, at: datetime, previous: CaseState, actor: str, **extra: str
        ) -> None:
            record = CaseEvent(
                alert_id=alert.id,
                state=state,
                previous_state=previous,
                actor=actor,
                at=at,
                alert=alert,
                **extra,  # the case lifecycle's reason codes, as its records carry them
            )
            out.append((topics.cases, key, record.to_json()))

        if self.holdout:
            case(CaseState.HOLDOUT, self.fired_at, CaseState.OPEN, "holdout")
        state = CaseState.OPEN
        if self.claimed_at is not None and self.claimed_by is not None:
            case(CaseState.CLAIMED, self.claimed_at, state, self.claimed_by)
            state = CaseState.CLAIMED
        if self.resolution is not None and self.resolved_at is not None:
            closed = CaseState(self.resolution)
            case(closed, self.resolved_at, state, self.claimed_by or "outbox", reason=self.reason)
            if self.reopened:
                case(
                    CaseState.REOPENED,
                    self.resolved_at + timedelta(minutes=5),
                    closed,
                    self.claimed_by or "outbox",
                )
        answered_at = (self.resolved_at or self.fired_at) + timedelta(days=1)
        if self.sent:
            settled = FollowupSettled(
                alert_id=alert.id,
                survey_id=f"sv-{self.number}",
                outcome=Settled.SENT,
                at=answered_at - timedelta(hours=1),
                holdout=self.holdout,
                rule=alert.rule,
            )
            out.append((topics.followups, key, settled.to_json()))
        if self.answer_rating is not None:
            answer = CaseEvent(
                alert_id=alert.id,
                state=CaseState.RERATED,
                actor="customer",
                at=answered_at,
                alert=alert,
                rerating=Rerating(
                    rating=self.answer_rating,
                    previous_rating=self.initial_rating,
                    nps=self.answer_nps,
                    rating_id=f"fu-{alert.id}",
                ),
            )
            out.append((topics.cases, key, answer.to_json()))
        return out

    def facts(self) -> CaseFacts:
        """The case as the plain-Python model of the figures takes it (`tests.history_model`)."""
        return CaseFacts(
            team=self.team,
            agent=self.agent,
            rule="negative-rating",
            alert_at=self.fired_at,
            holdout=self.holdout,
            initial_rating=self.initial_rating,
            initial_nps=self.initial_nps,
            claimed_at=self.claimed_at if self.claimed_by else None,
            resolution=self.final_state or "",
            followup="sent" if self.sent else "",
            followup_rating=self.answer_rating,
            followup_nps=self.answer_nps,
        )


def story(number: int = 1, **changes: object) -> Story:
    """A claimed case resolved with a follow-up survey, answered 4 stars after 1 (NPS 2 -> 9)."""
    base = Story(
        number=number,
        fired_at=START + timedelta(hours=number),
        team="orders",
        agent="Priya Nair",
        channel="chat",
        severity=Severity.HIGH,
        initial_rating=1,
        initial_nps=2,
        holdout=False,
        claimed_by="lee",
        claim_after=60.0,
        resolution="resolved_followup",
        resolve_after=600.0,
        reopened=False,
        sent=True,
        answer_rating=4,
        answer_nps=9,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@st.composite
def stories(draw: st.DrawFn, number: int) -> Story:
    fired_at = START + timedelta(minutes=draw(st.integers(0, 60 * 24 * 70)))
    holdout = draw(st.booleans())
    claimed_by = None if holdout else draw(st.none() | st.sampled_from(MEMBERS))
    claim_after = float(draw(st.integers(1, 7200))) if claimed_by else None
    resolution = (
        None
        if holdout
        else draw(
            st.none()
            | st.sampled_from(("resolved_followup", "resolved_no_followup", "not_actionable"))
        )
    )
    resolve_after = (claim_after or 0) + float(draw(st.integers(1, 86400))) if resolution else None
    reopened = resolution is not None and draw(st.integers(0, 5)) == 0
    sent = holdout or (resolution == "resolved_followup" and not reopened)
    sent = sent and draw(st.integers(0, 5)) > 0
    answered = sent and draw(st.booleans())
    return Story(
        number=number,
        fired_at=fired_at,
        team=draw(st.sampled_from(TEAMS)),
        agent=draw(st.sampled_from(AGENTS)),
        channel=draw(st.sampled_from(CHANNELS)),
        severity=draw(st.sampled_from([Severity.HIGH, Severity.CRITICAL])),
        initial_rating=draw(st.none() | st.integers(1, 3)),
        initial_nps=draw(st.none() | st.integers(0, 10)),
        holdout=holdout,
        claimed_by=claimed_by,
        claim_after=claim_after,
        resolution=resolution,
        resolve_after=resolve_after,
        reopened=reopened,
        sent=sent,
        answer_rating=draw(st.integers(1, 5)) if answered else None,
        answer_nps=draw(st.none() | st.integers(0, 10)) if answered else None,
    )


@st.composite
def histories(draw: st.DrawFn, min_size: int = 0, max_size: int = 40) -> list[Story]:
    count = draw(st.integers(min_size, max_size))
    return [draw(stories(number)) for number in range(count)]


def rows_of(stories: Iterable[Story], topics: TopicNames) -> Rows:
    """The rows the projection reads from the stories' records (offsets as if one partition)."""
    rows = Rows()
    offsets: dict[str, int] = {}
    for story in stories:
        for topic, _, value in story.records(topics):
            offset = offsets.get(topic, 0)
            offsets[topic] = offset + 1
            read(topics, Source(topic, 0, offset), value, rows)
    return rows


# --------------------------------------------------------------------------- expected figures


@dataclass(frozen=True)
class Expected:
    alerts: int
    claimed: int
    median_claim: float | None
    resolved: int
    median_resolve: float | None
    not_actionable: int
    still_open: int
    median_open_age: float | None
    sent: int
    answered: int
    recovered_paired: int
    holdout_paired: int
    recovered_mean_change: float | None
    holdout_mean_change: float | None


def expected(stories: Sequence[Story], until: datetime | None = None) -> Expected:
    """The figures of `stories`; open cases' ages at `until`."""
    open_ages = [
        (until - s.fired_at).total_seconds()
        for s in stories
        if until is not None and not s.holdout and s.final_state is None
    ]
    claims = [s.claim_after for s in stories if s.claimed_by and s.claim_after is not None]
    resolves = [
        s.resolve_after
        for s in stories
        if s.final_state in ("resolved_followup", "resolved_no_followup")
        and s.resolve_after is not None
    ]

    def changes(holdout: bool) -> list[int]:
        return [
            s.answer_rating - s.initial_rating
            for s in stories
            if s.holdout is holdout and s.answer_rating is not None and s.initial_rating is not None
        ]

    recovered, held = changes(False), changes(True)
    return Expected(
        alerts=len(stories),
        claimed=len(claims),
        median_claim=statistics.median(claims) if claims else None,
        resolved=len(resolves),
        median_resolve=statistics.median(resolves) if resolves else None,
        not_actionable=sum(s.final_state == "not_actionable" for s in stories),
        still_open=sum(not s.holdout and s.final_state is None for s in stories),
        median_open_age=statistics.median(open_ages) if open_ages else None,
        sent=sum(s.sent for s in stories),
        answered=sum(s.answer_rating is not None for s in stories),
        recovered_paired=len(recovered),
        holdout_paired=len(held),
        recovered_mean_change=statistics.fmean(recovered) if recovered else None,
        holdout_mean_change=statistics.fmean(held) if held else None,
    )
