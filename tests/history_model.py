"""An independent model of the outcome figures, in plain Python: the oracle the SQL report is
checked against (`test_history_report.py`'s differential test). It was the Redis-based report's
own code until the figures moved to the history in PostgreSQL; it ships no more, and lives here
as the second path the SQL must agree with.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

# What the model groups by (the SQL report knows more: route, severity, channel, month...).
DIMENSIONS = ("team", "agent", "rule", "week")
RESOLVED = ("resolved_followup", "resolved_no_followup")


@dataclass(frozen=True)
class CaseFacts:
    """One alert's case: what the figures are folded from."""

    team: str
    agent: str
    rule: str
    alert_at: datetime
    holdout: bool = False
    initial_rating: int | None = None
    initial_nps: int | None = None
    claimed_at: datetime | None = None
    resolution: str = ""
    followup: str = ""
    followup_rating: int | None = None
    followup_nps: int | None = None

    @property
    def week(self) -> str:
        year, week, _ = self.alert_at.isocalendar()
        return f"{year}-W{week:02d}"

    @property
    def answered(self) -> bool:
        return self.followup_rating is not None

    def key(self, dimension: str) -> str:
        value: str = getattr(self, dimension)
        return value


@dataclass(frozen=True)
class Cohort:
    """Follow-up answers of one cohort: recovered cases, or cases held out of recovery."""

    sent: int
    answered: int
    avg_initial: float | None
    avg_followup: float | None
    nps_before: float | None
    nps_after: float | None

    @property
    def response_rate(self) -> float | None:
        return self.answered / self.sent if self.sent else None

    @property
    def uplift(self) -> float | None:
        """Average follow-up rating over average initial rating, of the same answered cases."""
        if self.avg_initial is None or self.avg_followup is None or not self.avg_initial:
            return None
        return self.avg_followup / self.avg_initial


@dataclass(frozen=True)
class Figures:
    key: str
    alerts: int
    claimed: int
    median_claim_seconds: float | None
    resolved: int
    recovered: Cohort
    holdout: Cohort

    @property
    def recovery_lift(self) -> float | None:
        """How much more recovered customers rated up than held-out ones: the lift that is the
        recovery's own, not customers rating higher the second time anyway."""
        if self.recovered.uplift is None or not self.holdout.uplift:
            return None
        return self.recovered.uplift / self.holdout.uplift


def figures(cases: Iterable[CaseFacts], by: str) -> list[Figures]:
    """Figures per value of `by` (team, agent, rule or week), sorted by that value."""
    if by not in DIMENSIONS:
        raise ValueError(f"cannot group by {by!r} (one of: {', '.join(DIMENSIONS)})")
    groups: dict[str, list[CaseFacts]] = {}
    for case in cases:
        groups.setdefault(case.key(by), []).append(case)
    return [_figures(key, groups[key]) for key in sorted(groups)]


def total(cases: Iterable[CaseFacts]) -> Figures:
    return _figures("all", list(cases))


def _figures(key: str, cases: list[CaseFacts]) -> Figures:
    claim_seconds = [
        (case.claimed_at - case.alert_at).total_seconds()
        for case in cases
        if case.claimed_at is not None
    ]
    return Figures(
        key=key,
        alerts=len(cases),
        claimed=len(claim_seconds),
        median_claim_seconds=statistics.median(claim_seconds) if claim_seconds else None,
        resolved=sum(case.resolution in RESOLVED for case in cases),
        recovered=_cohort([case for case in cases if not case.holdout]),
        holdout=_cohort([case for case in cases if case.holdout]),
    )


def _cohort(cases: list[CaseFacts]) -> Cohort:
    paired = [case for case in cases if case.answered and case.initial_rating is not None]
    nps_paired = [
        case for case in paired if case.initial_nps is not None and case.followup_nps is not None
    ]
    return Cohort(
        sent=sum(case.followup == "sent" for case in cases),
        answered=sum(case.answered for case in cases),
        avg_initial=_mean(case.initial_rating for case in paired),
        avg_followup=_mean(case.followup_rating for case in paired),
        nps_before=nps([case.initial_nps for case in nps_paired]),
        nps_after=nps([case.followup_nps for case in nps_paired]),
    )


def nps(scores: Sequence[int | None]) -> float | None:
    """Net Promoter Score: % of 9-10 minus % of 0-6, from -100 to 100."""
    given = [score for score in scores if score is not None]
    if not given:
        return None
    promoters = sum(score >= 9 for score in given)
    detractors = sum(score <= 6 for score in given)
    return 100.0 * (promoters - detractors) / len(given)


def _mean(values: Iterable[int | None]) -> float | None:
    numbers = [value for value in values if value is not None]
    return statistics.fmean(numbers) if numbers else None
