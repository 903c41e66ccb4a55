"""The dashboard's trend as CSV (`&format=trend-csv`): one row per week or month with every figure
of the trend table unrounded, the report's columns (`presentation.flat`) and the trend's own
(claimed within the SLA, the backlog at the period's end)."""

from __future__ import annotations

import csv
import io
from typing import Any

from alert_engine.dashboard.view import DashboardView
from alert_engine.history.backlog import Backlog
from alert_engine.history.presentation import flat, spreadsheet_cell
from alert_engine.history.trends import SlaShare


def trend_rows(view: DashboardView, period: str) -> list[dict[str, Any]]:
    rows = []
    for row in view.trend_report.rows:
        sla = view.slas.get(row.key, SlaShare(0, 0))
        backlog = view.backlogs.get(row.key, Backlog(0, None))
        figures = flat(row)
        rows.append(
            {
                period: figures.pop("key"),
                **figures,
                "with_sla": sla.with_sla,
                "claimed_within_sla": sla.claimed_in_time,
                "open_at_end": backlog.open,
                "open_at_end_median_age_seconds": backlog.median_age_seconds,
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
