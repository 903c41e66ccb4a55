"""The dashboard's view model: a `Report` (and its trend) as the cells the page shows, every value
as text (nothing only in a hover title), and the legend told from what the data holds.

The headline columns come first after the group's name (the lift beyond the holdout, the recovery
lift): they are what the page is for, and stay in view at 1,280 px. Holdout columns are shown only
when the range has held-out cases, and then the legend says what they are.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from alert_engine.history.backlog import Backlog
from alert_engine.history.presentation import duration, meaning
from alert_engine.history.queries import HoldoutLift, Report, ReportRow
from alert_engine.history.reasons import NO_CODE, top_codes
from alert_engine.history.trends import SlaShare


def number(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def pair(before: float | None, after: float | None, digits: int = 1) -> str:
    if before is None and after is None:
        return "-"
    return f"{number(before, digits)} → {number(after, digits)}"


def stars(lift: HoldoutLift | None) -> str:
    return "-" if lift is None else f"{lift.stars:+.2f}"


def interval(lift: HoldoutLift | None) -> str:
    return "-" if lift is None else f"{lift.low:+.2f} to {lift.high:+.2f}"


@dataclass(frozen=True)
class Column:
    name: str
    label: str
    cell: Callable[[ReportRow], str]
    headline: bool = False
    holdout: bool = False


COLUMNS: tuple[Column, ...] = (
    Column("lift", "Lift beyond holdout (stars)", lambda r: stars(r.holdout_lift), True, True),
    Column("lift_ci", "95% CI", lambda r: interval(r.holdout_lift), True, True),
    Column(
        "samples",
        "n recovered / held out",
        lambda r: f"{r.recovered.paired} / {r.holdout.paired}",
        True,
        True,
    ),
    Column("recovery_lift", "Recovery lift", lambda r: number(r.recovery_lift, 2, "x"), True, True),
    Column("uplift", "Uplift", lambda r: number(r.recovered.uplift, 2, "x"), True),
    Column(
        "holdout_uplift", "Holdout uplift", lambda r: number(r.holdout.uplift, 2, "x"), True, True
    ),
    Column(
        "rating",
        "Rating before → after",
        lambda r: pair(r.recovered.avg_initial, r.recovered.avg_followup),
    ),
    Column("alerts", "Alerts", lambda r: str(r.alerts)),
    Column("claimed", "Claimed", lambda r: str(r.claimed)),
    Column("to_claim", "Median to claim", lambda r: duration(r.median_claim_seconds)),
    Column("to_resolve", "Median to resolve", lambda r: duration(r.median_resolve_seconds)),
    Column("not_actionable", "Not actionable", lambda r: share(r.not_actionable, r.alerts)),
    Column("response", "Follow-up response", lambda r: share(r.answered, r.sent)),
)


@dataclass(frozen=True)
class Row:
    key: str
    cells: Sequence[tuple[Column, str]]
    total: bool = False


@dataclass(frozen=True)
class Bar:
    """A value as text, and its length as a share of the column's largest (0-100)."""

    text: str
    percent: float


@dataclass(frozen=True)
class TrendRow:
    period: str
    alerts: Bar
    sla: str
    to_claim: str
    to_resolve: str
    # Cases open at the period's end, and their median age then.
    backlog: str
    backlog_age: str
    # The period's closed cases by reason code: the view's top codes, then the rest.
    reasons: str
    not_actionable: str
    response: str
    rating: str
    nps: str
    uplift: Bar


@dataclass(frozen=True)
class Leader:
    """The group whose recovery lifted ratings most beyond the holdout."""

    key: str
    lift: HoldoutLift


@dataclass(frozen=True)
class Headline:
    lift: HoldoutLift | None
    sentence: str
    wait: str
    resolve: str
    leader: Leader | None = None


def leader(rows: Sequence[ReportRow]) -> Leader | None:
    """Among two or more groups with a lift, the highest (ties: the first by name)."""
    lifted = [(row.key, row.holdout_lift) for row in rows if row.holdout_lift is not None]
    if len(lifted) < 2:
        return None
    key, lift = max(lifted, key=lambda pair: pair[1].stars if pair[1] else 0.0)
    assert lift is not None
    return Leader(key, lift)


@dataclass(frozen=True)
class DashboardView:
    report: Report
    columns: Sequence[Column]
    rows: Sequence[Row]
    headline: Headline
    has_holdout: bool
    trend: Sequence[TrendRow]
    has_sla: bool
    # What the trend is made of, unrounded (its CSV).
    trend_report: Report
    slas: Mapping[str, SlaShare]
    backlogs: Mapping[str, Backlog]
    reasons: Mapping[str, Counter[str]]
    # The reason codes the trend names (the rest are "other").
    top_reasons: Sequence[str]

    @property
    def empty(self) -> bool:
        return self.report.total.alerts == 0

    @property
    def top_reason_labels(self) -> list[str]:
        return [code_label(code) for code in self.top_reasons]


def has_holdout(row: ReportRow) -> bool:
    return bool(row.holdout.sent or row.holdout.answered)


def _bar(value: float | None, highest: float, text: str) -> Bar:
    if value is None or highest <= 0:
        return Bar(text, 0.0)
    return Bar(text, round(100.0 * value / highest, 1))


# Reason codes named in the trend, at most (the rest are "other": a cell stays short at 52 rows).
TOP_REASONS = 3


def code_label(code: str) -> str:
    return "no code" if code == NO_CODE else code


def reasons_text(counts: Counter[str], top: Sequence[str]) -> str:
    """`refund 40%, apology 30%, other 30% of 10`: the top codes in the view's order (each period
    alike, to read down the column), then the rest."""
    closed = counts.total()
    if not closed:
        return "-"
    parts = [f"{code_label(code)} {share(counts[code], closed)}" for code in top if counts[code]]
    rest = closed - sum(counts[code] for code in top)
    if rest:
        parts.append(f"other {share(rest, closed)}")
    return f"{', '.join(parts)} of {closed}"


def trend_rows(
    trend: Report,
    slas: Mapping[str, SlaShare],
    backlogs: Mapping[str, Backlog],
    reasons: Mapping[str, Counter[str]],
    top: Sequence[str],
) -> list[TrendRow]:
    most = max((row.alerts for row in trend.rows), default=0)
    top_uplift = max((row.recovered.uplift or 0.0 for row in trend.rows), default=0.0)
    out = []
    for row in trend.rows:
        sla = slas.get(row.key, SlaShare(0, 0))
        backlog = backlogs.get(row.key, Backlog(0, None))
        out.append(
            TrendRow(
                period=row.key,
                alerts=_bar(row.alerts, most, str(row.alerts)),
                sla=(
                    "-"
                    if not sla.with_sla
                    else f"{share(sla.claimed_in_time, sla.with_sla)} of {sla.with_sla}"
                ),
                to_claim=duration(row.median_claim_seconds),
                to_resolve=duration(row.median_resolve_seconds),
                backlog=str(backlog.open),
                backlog_age=duration(backlog.median_age_seconds),
                reasons=reasons_text(reasons.get(row.key, Counter()), top),
                not_actionable=share(row.not_actionable, row.alerts),
                response=share(row.answered, row.sent),
                rating=pair(row.recovered.avg_initial, row.recovered.avg_followup),
                nps=pair(row.recovered.nps_before, row.recovered.nps_after, 0),
                uplift=_bar(row.recovered.uplift, top_uplift, number(row.recovered.uplift, 2, "x")),
            )
        )
    return out


def build(
    report: Report,
    trend: Report,
    slas: Mapping[str, SlaShare],
    backlogs: Mapping[str, Backlog],
    reasons: Mapping[str, Counter[str]],
) -> DashboardView:
    total = report.total
    holdout = has_holdout(total)
    columns = [column for column in COLUMNS if holdout or not column.holdout]
    rows = [
        Row(row.key, [(column, column.cell(row)) for column in columns], total=row is total)
        for row in [*report.rows, total]
    ]
    top = top_codes(reasons, TOP_REASONS)
    headline = Headline(
        lift=total.holdout_lift,
        sentence=meaning(total),
        wait=duration(total.median_claim_seconds),
        resolve=duration(total.median_resolve_seconds),
        leader=leader(report.rows),
    )
    return DashboardView(
        report=report,
        columns=columns,
        rows=rows,
        headline=headline,
        has_holdout=holdout,
        trend=trend_rows(trend, slas, backlogs, reasons, top),
        has_sla=any(share.with_sla for share in slas.values()),
        trend_report=trend,
        slas=slas,
        backlogs=backlogs,
        reasons=reasons,
        top_reasons=top,
    )
