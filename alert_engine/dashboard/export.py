"""The dashboard's trend as CSV (`&format=trend-csv`): one row per week or month with every figure
of the trend table unrounded, the report's columns (`presentation.flat`) and the trend's own
(claimed within the SLA, the backlog at the period's end, the closed cases by reason code: a
column per code of the view, most frequent first)."""

from __future__ import annotations

import csv
import io
from collections import Counter
from typing import Any

from alert_engine.dashboard.view import DashboardView
from alert_engine.history.backlog import Backlog
from alert_engine.history.presentation import flat, spreadsheet_cell
from alert_engine.history.reasons import top_codes
from alert_engine.history.trends import SlaShare


def trend_rows(view: DashboardView, period: str) -> list[dict[str, Any]]:
    codes = top_codes(view.reasons, len({code for c in view.reasons.values() for code in c}))
    rows = []
    for row in view.trend_report.rows:
        sla = view.slas.get(row.key, SlaShare(0, 0))
        backlog = view.backlogs.get(row.key, Backlog(0, None))
        reasons = view.reasons.get(row.key, Counter())
        figures = flat(row)
        rows.append(
            {
                period: figures.pop("key"),
                **figures,
                "with_sla": sla.with_sla,
                "claimed_within_sla": sla.claimed_in_time,
                "open_at_end": backlog.open,
                "open_at_end_median_age_seconds": backlog.median_age_seconds,
                "closed": reasons.total(),
                **{f"closed_{code}": reasons[code] for code in codes},
            }
        )
    return rows


def trend_csv(view: DashboardView, period: str) -> str:
    rows = trend_rows(view, period)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if rows:
        writer.writerow(list(rows[0]))
    for row in rows:
        writer.writerow([spreadsheet_cell(value) for value in row.values()])
    return out.getvalue()
