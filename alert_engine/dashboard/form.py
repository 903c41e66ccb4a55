"""The dashboard's form, read from the page's GET parameters: a date range (a preset or custom
days), filters, a grouping and a format. Every bad value is told back on the page, by name.

    ?range=12w&by=team&team=billing&format=csv
    ?range=custom&since=2026-03-01&until=2026-05-31&by=week

A custom `until` is a day included whole (alerts fired before the next day's start, UTC).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from alert_engine.history.queries import DIMENSIONS, FILTERS, ReportQuery

# (value, label) in the order the form offers them.
PRESETS = (
    ("this-week", "This week"),
    ("4w", "Last 4 weeks"),
    ("12w", "Last 12 weeks"),
    ("52w", "Last 52 weeks"),
    ("custom", "Custom"),
)
DEFAULT_RANGE = "12w"
DEFAULT_BY = "team"
# `csv`: the groups and the total; `trend-csv`: the trend, a row per week or month.
FORMATS = ("html", "csv", "trend-csv")
# Past about a year, one trend row per week is too many to read: one per month.
WEEKLY_UP_TO = timedelta(weeks=53)
MAX_FILTER_LENGTH = 200


@dataclass(frozen=True)
class DashboardForm:
    """What the form says, as typed (to show it again), and the query it makes, if it is valid."""

    range: str = DEFAULT_RANGE
    since: str = ""
    until: str = ""
    by: str = DEFAULT_BY
    filters: Mapping[str, str] = field(default_factory=dict)
    format: str = "html"
    query: ReportQuery | None = None
    problems: tuple[str, ...] = ()

    @property
    def period(self) -> str:
        """The trend's step: a week, or a month for ranges longer than a year."""
        if self.query is not None and self.query.until - self.query.since > WEEKLY_UP_TO:
            return "month"
        return "week"

    def parameters(self, **changes: str) -> str:
        """This view's query string (with `changes`): the CSV link downloads the same view."""
        values: dict[str, str] = {"range": self.range}
        if self.range == "custom":
            values.update(since=self.since, until=self.until)
        values["by"] = self.by
        values.update(self.filters)
        values.update(changes)
        return urlencode(values)


def _day(text: str, name: str, problems: list[str]) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        problems.append(f"{name}: {text!r} is not a day (YYYY-MM-DD)")
        return None


def _range(preset: str, now: datetime) -> tuple[datetime, datetime]:
    if preset == "this-week":
        monday = now.date() - timedelta(days=now.weekday())
        return datetime.combine(monday, time(), UTC), now
    weeks = int(preset.removesuffix("w"))
    return now - timedelta(weeks=weeks), now


def parse(params: Mapping[str, str], now: datetime) -> DashboardForm:
    problems: list[str] = []
    preset = params.get("range", "").strip() or DEFAULT_RANGE
    if preset not in dict(PRESETS):
        problems.append(f"range: {preset!r} is not one of {', '.join(dict(PRESETS))}")
        preset = DEFAULT_RANGE
    by = params.get("by", "").strip() or DEFAULT_BY
    if by not in DIMENSIONS:
        problems.append(f"group by: {by!r} is not one of {', '.join(DIMENSIONS)}")
        by = DEFAULT_BY
    form = params.get("format", "").strip() or "html"
    if form not in FORMATS:
        problems.append(f"format: {form!r} is not one of {', '.join(FORMATS)}")
        form = "html"
    filters: dict[str, str] = {}
    for name in FILTERS:
        value = params.get(name, "").strip()
        if len(value) > MAX_FILTER_LENGTH:
            problems.append(f"{name}: longer than {MAX_FILTER_LENGTH} characters")
        elif value:
            filters[name] = value
    since_text = params.get("since", "").strip()
    until_text = params.get("until", "").strip()
    since: datetime | None = None
    until: datetime | None = None
    if preset == "custom":
        if not since_text or not until_text:
            problems.append("custom range: give both the first and the last day")
        else:
            first = _day(since_text, "from", problems)
            last = _day(until_text, "to", problems)
            if first is not None and last is not None:
                if last < first:
                    problems.append("custom range: the last day is before the first")
                else:
                    since = datetime.combine(first, time(), UTC)
                    until = datetime.combine(last + timedelta(days=1), time(), UTC)
    else:
        since, until = _range(preset, now)
        # Shown in the custom fields, so that switching to custom starts from this range.
        since_text = f"{since:%Y-%m-%d}"
        until_text = f"{until:%Y-%m-%d}"
    query = None
    if not problems and since is not None and until is not None:
        query = ReportQuery(since, until, by, filters)
    return DashboardForm(
        range=preset,
        since=since_text,
        until=until_text,
        by=by,
        filters=filters,
        format=form,
        query=query,
        problems=tuple(problems),
    )
