"""The outcome figures for people: a terminal table (`alert-engine report`) and the `/dashboard`
page with its charts drawn as inline SVG on the server (no JavaScript)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from alert_engine.followup.outcomes import CaseFacts, Figures, figures, total
from alert_engine.followup.survey import templates
from alert_engine.history.presentation import duration, number, pair

COLUMNS = (
    "alerts",
    "claimed",
    "median claim",
    "resolved",
    "sent",
    "answered",
    "response",
    "rating before→after",
    "uplift",
    "NPS before→after",
    "holdout uplift",
    "recovery lift",
)


def cells(row: Figures) -> list[str]:
    recovered = row.recovered
    sent = recovered.sent + row.holdout.sent
    answered = recovered.answered + row.holdout.answered
    rate = answered / sent if sent else None
    return [
        str(row.alerts),
        str(row.claimed),
        duration(row.median_claim_seconds),
        str(row.resolved),
        str(sent),
        str(answered),
        "-" if rate is None else f"{rate:.0%}",
        pair(recovered.avg_initial, recovered.avg_followup),
        number(recovered.uplift, 2, "x"),
        pair(recovered.nps_before, recovered.nps_after, 0),
        number(row.holdout.uplift, 2, "x"),
        number(row.recovery_lift, 2, "x"),
    ]


def table(cases: Sequence[CaseFacts], by: str) -> str:
    """A plain-text table, one row per `by` value and a total."""
    rows = [*figures(cases, by), total(cases)]
    header = [by, *COLUMNS]
    body = [[row.key, *cells(row)] for row in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(values: list[str]) -> str:
        first, *rest = values
        return "  ".join(
            [first.ljust(widths[0]), *(v.rjust(w) for v, w in zip(rest, widths[1:], strict=True))]
        )

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in body[:-1]), rule, line(body[-1])])


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    width: float


@dataclass(frozen=True)
class Point:
    label: str
    recovered: float | None
    holdout: float | None


def dashboard(cases: Sequence[CaseFacts], by: str, *, company: str) -> str:
    everything = total(cases)
    steps = [
        ("Alerts", everything.alerts),
        ("Claimed", everything.claimed),
        ("Resolved", everything.resolved),
        ("Follow-ups sent", everything.recovered.sent + everything.holdout.sent),
        ("Answered", everything.recovered.answered + everything.holdout.answered),
    ]
    top = max(everything.alerts, 1)
    funnel = [Bar(label, value, 100.0 * value / top) for label, value in steps]
    weeks = [
        Point(row.key, row.recovered.uplift, row.holdout.uplift) for row in figures(cases, "week")
    ]
    highest = max([p.recovered or 0 for p in weeks] + [p.holdout or 0 for p in weeks] + [1.0])
    rows = [(row.key, cells(row)) for row in [*figures(cases, by), everything]]
    return templates.get_template("dashboard.html").render(
        company=company,
        by=by,
        dimensions=("team", "agent", "rule", "week"),
        columns=COLUMNS,
        rows=rows,
        funnel=funnel,
        weeks=weeks,
        highest=highest,
        total=everything,
    )
