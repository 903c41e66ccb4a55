"""What the history's figures are, shared by every way of computing them: the dimensions a view
filters and groups by, the query (`ReportQuery`), the figures' records (`Report`, `ReportRow`,
`Cohort`, `HoldoutLift`, `SlaShare`) and the folded cases as the report reads them (`CASES`).

`queries` (from `case_facts`), `rollups` and `planner` (from the daily roll-ups) and `trends`
import these; this module imports none of them, so their imports run one way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from alert_engine.history.welch import welch_interval

# What rows group by; the first seven also filter.
FILTERS = ("team", "agent", "rule", "route", "severity", "channel", "member", "reason")
DIMENSIONS = (*FILTERS, "week", "month")
RESOLVED = ("resolved_followup", "resolved_no_followup")
# Cases not closed (held-out cases are never open: they are not delivered for action).
OPEN = ("open", "claimed", "reopened")
CONFIDENCE = 0.95


@dataclass(frozen=True)
class ReportQuery:
    """Alerts fired in [since, until), those matching every filter, grouped by `by`."""

    since: datetime
    until: datetime
    by: str = "team"
    filters: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.by not in DIMENSIONS:
            raise ValueError(f"cannot group by {self.by!r} (one of: {', '.join(DIMENSIONS)})")
        unknown = sorted(set(self.filters) - set(FILTERS))
        if unknown:
            raise ValueError(f"cannot filter by {unknown} (only by: {', '.join(FILTERS)})")
        if self.since.tzinfo is None or self.until.tzinfo is None:
            raise ValueError("since and until need a time zone")
        if self.until <= self.since:
            raise ValueError("until must be after since")

    def params(self) -> dict[str, Any]:
        """The range and the filters' values, as every view's SQL names them: `since`, `until`,
        `filter_<name>`."""
        found: dict[str, Any] = {"since": self.since, "until": self.until}
        found.update({f"filter_{name}": value for name, value in self.filters.items()})
        return found


@dataclass(frozen=True)
class HoldoutLift:
    """How much more recovered customers' ratings rose than held-out customers' (in stars, mean
    follow-up minus initial rating): the rise that is the recovery's own, beyond what a second
    rating gives anyway. Holdout cases are chosen at random, so the difference is causal."""

    stars: float
    low: float
    high: float
    recovered_n: int
    holdout_n: int


@dataclass(frozen=True)
class Cohort:
    """Follow-up figures of recovered cases, or of cases held out of recovery."""

    sent: int
    answered: int
    # Answered cases whose alert had an initial rating: the rating figures are theirs.
    paired: int
    avg_initial: float | None
    avg_followup: float | None
    # Sample variance of (follow-up - initial) over the paired cases (None below two).
    change_variance: float | None
    nps_before: float | None
    nps_after: float | None

    @property
    def response_rate(self) -> float | None:
        return self.answered / self.sent if self.sent else None

    @property
    def uplift(self) -> float | None:
        if self.avg_initial is None or self.avg_followup is None or not self.avg_initial:
            return None
        return self.avg_followup / self.avg_initial

    @property
    def mean_change(self) -> float | None:
        if self.avg_initial is None or self.avg_followup is None:
            return None
        return self.avg_followup - self.avg_initial


@dataclass(frozen=True)
class ReportRow:
    key: str
    alerts: int
    claimed: int
    median_claim_seconds: float | None
    resolved: int
    median_resolve_seconds: float | None
    not_actionable: int
    # Cases still open (or claimed, or reopened) now, of the alerts in range, and the median of
    # their ages at the end of the range (the backlog and how long it has waited).
    still_open: int
    median_open_age_seconds: float | None
    recovered: Cohort
    holdout: Cohort

    @property
    def sent(self) -> int:
        return self.recovered.sent + self.holdout.sent

    @property
    def answered(self) -> int:
        return self.recovered.answered + self.holdout.answered

    @property
    def response_rate(self) -> float | None:
        return self.answered / self.sent if self.sent else None

    @property
    def recovery_lift(self) -> float | None:
        """Recovered uplift over holdout uplift (as `outcomes.Figures.recovery_lift`)."""
        if self.recovered.uplift is None or not self.holdout.uplift:
            return None
        return self.recovered.uplift / self.holdout.uplift

    @cached_property
    def holdout_lift(self) -> HoldoutLift | None:
        # Computed once per row: the t quantile's bisection is costly, and a page asks for it
        # several times per group (4 weeks by agent: 800 quantiles, 0.8 s of the page).
        return holdout_lift(self.recovered, self.holdout)


@dataclass(frozen=True)
class Report:
    query: ReportQuery
    rows: list[ReportRow]
    total: ReportRow


def holdout_lift(recovered: Cohort, holdout: Cohort) -> HoldoutLift | None:
    """Welch's interval for the difference of the two cohorts' mean rating change; None unless
    each cohort has two paired answers."""
    if (
        recovered.mean_change is None
        or holdout.mean_change is None
        or recovered.change_variance is None
        or holdout.change_variance is None
    ):
        return None
    stars = recovered.mean_change - holdout.mean_change
    low, high = welch_interval(
        stars,
        (recovered.change_variance, recovered.paired),
        (holdout.change_variance, holdout.paired),
        CONFIDENCE,
    )
    return HoldoutLift(stars, low, high, recovered.paired, holdout.paired)


_NO_ANSWERS = Cohort(0, 0, 0, None, None, None, None, None)
EMPTY = ReportRow("all", 0, 0, None, 0, None, 0, 0, None, _NO_ANSWERS, _NO_ANSWERS)


@dataclass(frozen=True)
class SlaShare:
    """Cases whose alert carried a claim-by time (its route has an SLA), and those of them
    claimed by then."""

    with_sla: int
    claimed_in_time: int

    @property
    def share(self) -> float | None:
        return self.claimed_in_time / self.with_sla if self.with_sla else None


# One row per alert in the range (`facts` folds each alert's case from the log).
CASES = """
SELECT alert_id, fired_at, rule, severity, route, team, agent, channel, member, initial_rating,
       initial_nps, holdout, claimed_at, state, state_at, COALESCE(reason, '-') AS reason, sent,
       followup_rating, followup_nps,
       to_char(fired_at AT TIME ZONE 'UTC', 'IYYY-"W"IW') AS week,
       to_char(fired_at AT TIME ZONE 'UTC', 'YYYY-MM') AS month
FROM case_facts
WHERE fired_at >= %(since)s AND fired_at < %(until)s
"""
