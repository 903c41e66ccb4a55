"""A `Report` for people and programs: a terminal table that fits 100 columns, CSV, and JSON.

The table comes in two parts, the cases (how many, how fast) and the outcome (ratings before and
after, the holdout's lift), each one row per group and a total, and under them a sentence on what
the holdout lift means. CSV and JSON carry every figure unrounded, one flat row per group in CSV.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from alert_engine.history.queries import Cohort, HoldoutLift, Report, ReportRow

WIDTH = 100
FORMATS = ("table", "csv", "json")


def number(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def pair(before: float | None, after: float | None, digits: int = 1) -> str:
    if before is None and after is None:
        return "-"
    return f"{number(before, digits)}→{number(after, digits)}"


def _lift(lift: HoldoutLift | None) -> str:
    if lift is None:
        return "-"
    return f"{lift.stars:+.2f} [{lift.low:+.2f}, {lift.high:+.2f}]"


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "-"


_CASES: tuple[tuple[str, Callable[[ReportRow], str]], ...] = (
    ("alerts", lambda r: str(r.alerts)),
    ("claimed", lambda r: str(r.claimed)),
    ("to claim", lambda r: duration(r.median_claim_seconds)),
    ("resolved", lambda r: str(r.resolved)),
    ("to resolve", lambda r: duration(r.median_resolve_seconds)),
    ("n/a", lambda r: str(r.not_actionable)),
    ("open", lambda r: str(r.still_open)),
    ("sent", lambda r: str(r.sent)),
    ("answered", lambda r: str(r.answered)),
    ("response", lambda r: _share(r.answered, r.sent)),
)
_OUTCOME: tuple[tuple[str, Callable[[ReportRow], str]], ...] = (
    ("rating", lambda r: pair(r.recovered.avg_initial, r.recovered.avg_followup)),
    ("uplift", lambda r: number(r.recovered.uplift, 2, "x")),
    ("NPS", lambda r: pair(r.recovered.nps_before, r.recovered.nps_after, 0)),
    ("holdout", lambda r: number(r.holdout.uplift, 2, "x")),
    ("lift", lambda r: number(r.recovery_lift, 2, "x")),
    ("lift in stars [95% CI]", lambda r: _lift(r.holdout_lift)),
    ("n rec/hold", lambda r: f"{r.recovered.paired}/{r.holdout.paired}"),
)


def _fit(key: str, width: int) -> str:
    return key if len(key) <= width else key[: width - 1] + "…"


def _section(
    title: str, by: str, rows: Sequence[ReportRow], columns: Sequence[tuple[str, Any]]
) -> list[str]:
    header = [name for name, _ in columns]
    body = [[cell(row) for _, cell in columns] for row in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    room = WIDTH - sum(widths) - 2 * len(widths)
    key_width = max(3, min(room, max(len(by), *(len(row.key) for row in rows))))
    keys = [_fit(row.key, key_width) for row in rows]

    def line(first: str, values: Sequence[str]) -> str:
        cells = [first.ljust(key_width), *(v.rjust(w) for v, w in zip(values, widths, strict=True))]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * width for width in [key_width, *widths])
    lines = [title, line(by, header), rule]
    lines += [line(key, values) for key, values in zip(keys[:-1], body[:-1], strict=True)]
    return [*lines, rule, line(keys[-1], body[-1])]


def meaning(total: ReportRow) -> str:
    """The plain sentence under the figures: what the holdout lift says, and why the
    before/after uplift alone says more than is true."""
    lift = total.holdout_lift
    if lift is None:
        return (
            "Holdout lift: not enough answers yet (it needs two paired answers in each of the "
            "recovered and the held-out cohort; set ALERT_ENGINE_FOLLOWUP_HOLDOUT_SHARE to hold "
            "some cases out). A before/after uplift alone overstates recovery: customers who "
            "rated low tend to rate higher the second time anyway (regression to the mean)."
        )
    if lift.low > 0:
        verdict = "Recovery raised ratings"
    elif lift.high < 0:
        verdict = "Recovered customers rated lower than held-out ones"
    else:
        verdict = "No lift beyond the holdout can be told from chance yet"
    return (
        f"{verdict}: recovered customers' ratings rose {lift.stars:+.2f} stars more than those "
        f"of customers held out of recovery (95% CI {lift.low:+.2f} to {lift.high:+.2f}; "
        f"{lift.recovered_n} recovered, {lift.holdout_n} held out). The held-out customers' "
        "own rise is what a second rating gives anyway (regression to the mean), which is why "
        "the before/after uplift alone overstates recovery."
    )


def _wrap(text: str, width: int = WIDTH) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    return [*lines, current] if current else lines


def table(report: Report) -> str:
    query = report.query
    rows = [*report.rows, report.total]
    scope = f"Alerts fired {query.since:%Y-%m-%d %H:%M} to {query.until:%Y-%m-%d %H:%M} UTC"
    if query.filters:
        scope += ", " + ", ".join(
            f"{name} = {value}" for name, value in sorted(query.filters.items())
        )
    if not report.total.alerts:
        return "\n".join(
            [
                *_wrap(scope),
                "",
                *_wrap(
                    "No alerts in this range. Try a longer range (--since), fewer filters, or "
                    "check that the worker projects into this database (ALERT_ENGINE_DATABASE_URL; "
                    "`alert-engine history rebuild` reads the topics again)."
                ),
            ]
        )
    return "\n".join(
        [
            *_wrap(scope),
            "",
            *_section("Cases", query.by, rows, _CASES),
            "",
            *_section(
                "Outcome (recovered cases; holdout: held-out cases)", query.by, rows, _OUTCOME
            ),
            "",
            *_wrap(meaning(report.total)),
        ]
    )


def _cohort_fields(prefix: str, cohort: Cohort) -> dict[str, Any]:
    return {
        f"{prefix}_sent": cohort.sent,
        f"{prefix}_answered": cohort.answered,
        f"{prefix}_paired": cohort.paired,
        f"{prefix}_rating_before": cohort.avg_initial,
        f"{prefix}_rating_after": cohort.avg_followup,
        f"{prefix}_uplift": cohort.uplift,
        f"{prefix}_nps_before": cohort.nps_before,
        f"{prefix}_nps_after": cohort.nps_after,
    }


def flat(row: ReportRow) -> dict[str, Any]:
    lift = row.holdout_lift
    return {
        "key": row.key,
        "alerts": row.alerts,
        "claimed": row.claimed,
        "median_claim_seconds": row.median_claim_seconds,
        "resolved": row.resolved,
        "median_resolve_seconds": row.median_resolve_seconds,
        "not_actionable": row.not_actionable,
        "open": row.still_open,
        "median_open_age_seconds": row.median_open_age_seconds,
        "sent": row.sent,
        "answered": row.answered,
        "response_rate": row.response_rate,
        **_cohort_fields("recovered", row.recovered),
        **_cohort_fields("holdout", row.holdout),
        "recovery_lift": row.recovery_lift,
        "holdout_lift_stars": lift.stars if lift else None,
        "holdout_lift_low": lift.low if lift else None,
        "holdout_lift_high": lift.high if lift else None,
    }


def spreadsheet_cell(value: Any) -> str:
    """A CSV cell: empty for no value, and text a spreadsheet would run as a formula quoted."""
    if value is None:
        return ""
    text = str(value)
    # A key from an event (a team name) that a spreadsheet would run as a formula.
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def as_csv(report: Report) -> str:
    rows = [flat(row) for row in [*report.rows, report.total]]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([report.query.by if name == "key" else name for name in rows[0]])
    for row in rows:
        writer.writerow([spreadsheet_cell(value) for value in row.values()])
    return out.getvalue()


def as_json(report: Report) -> str:
    query = report.query
    document = {
        "since": query.since.isoformat(),
        "until": query.until.isoformat(),
        "by": query.by,
        "filters": dict(query.filters),
        "rows": [flat(row) for row in report.rows],
        "total": flat(report.total),
        "meaning": meaning(report.total),
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()


def render(report: Report, form: str) -> str:
    if form == "table":
        return table(report)
    if form == "csv":
        return as_csv(report)
    if form == "json":
        return as_json(report)
    raise ValueError(f"unknown format {form!r} (one of: {', '.join(FORMATS)})")
