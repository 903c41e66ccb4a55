"""`GET /console`: the queue page, and `GET /console/cases.json`: the same rows as JSON, which the
page polls to update its table in place. Only the table's rows are replaced: the filter form,
and whatever the member is typing into it, is left alone. Both need a signed-in member (the web
guard), whose claims `show=mine` selects. Each row links to its case's page (`case_page`);
`GET /console/go?alert_id=...` opens a case by its id (a closed one too)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import faust
from aiohttp import web
from faust.web import View
from jinja2 import Environment

from alert_engine.console.actions import ALERT_ID, WebActions
from alert_engine.console.case_page import CASE_SCRIPT, CASES_PATH
from alert_engine.console.polling import POLLING_SCRIPT
from alert_engine.console.queue import (
    FilterError,
    QueueFilter,
    QueuePage,
    QueueRow,
    open_rows,
    select,
)
from alert_engine.console.style import STYLE
from alert_engine.rules.spec import Severity
from alert_engine.signin.csrf import FIELD as CSRF_FIELD
from alert_engine.signin.gate import signed_in_member, visitor_of

CONSOLE_PATH = "/console"
JSON_PATH = "/console/cases.json"
GO_PATH = "/console/go"
# Seconds between the page's updates; `?poll=` may ask for 2 to 60.
POLL_SECONDS = 10
COLUMNS = (
    ("age", "Age"),
    ("severity", "Severity"),
    ("customer", "Customer"),
    ("rating", "Rating"),
    ("rule", "Rule"),
    ("team", "Team"),
    ("route", "Route"),
    ("state_label", "State"),
    ("claimed_by", "Claimed by"),
    ("sla", "SLA"),
)

# Polls the JSON view and rebuilds the table's body with text nodes (never markup from data).
CONSOLE_SCRIPT = (
    POLLING_SCRIPT
    + """
const table = document.getElementById("queue");
const count = document.getElementById("count");
const columns = JSON.parse(table.dataset.columns);
poll(table, (data) => {
  const body = document.createElement("tbody");
  for (const row of data.rows) {
    const line = document.createElement("tr");
    line.dataset.alertId = row.alert_id;
    for (const [name, label] of columns) {
      const cell = document.createElement("td");
      cell.dataset.label = label;
      const text = row[name] === null ? "" : String(row[name]);
      if (name === "customer") {
        const link = document.createElement("a");
        link.href = table.dataset.cases + "/" + encodeURIComponent(row.alert_id);
        link.textContent = text || row.alert_id;
        cell.appendChild(link);
      } else {
        cell.textContent = text;
      }
      if (name === "sla" && row.sla_breached) cell.className = "breached";
      line.appendChild(cell);
    }
    body.appendChild(line);
  }
  if (!data.rows.length) {
    const line = document.createElement("tr");
    const cell = document.createElement("td");
    cell.colSpan = columns.length;
    cell.textContent = "No case matches.";
    line.appendChild(cell);
    body.appendChild(line);
  }
  table.tBodies[0].replaceWith(body);
  const text = data.total + " case" + (data.total === 1 ? "" : "s") +
    " · page " + data.page + " of " + data.pages;
  if (count.textContent !== text) count.textContent = text;
});
"""
)
CONSOLE_SCRIPTS = (CONSOLE_SCRIPT, CASE_SCRIPT)


def register_console(app: faust.App, actions: WebActions) -> None:
    """The queue (`/console`) and the way from an alert id to its case; the case pages it links
    to are `register_case_page`'s."""
    page = Environment(autoescape=True).from_string(CONSOLE_PAGE)
    cases = actions.cases

    @app.page(GO_PATH)
    class GoToCase(View):
        async def get(self, request: Any) -> Any:
            alert_id = request.query.get("alert_id", "").strip()
            if not ALERT_ID.match(alert_id):
                return web.Response(
                    status=400, text="Not an alert id: they read al-, then hex digits.\n"
                )
            return web.Response(status=303, headers={"Location": f"{CASES_PATH}/{alert_id}"})

    async def queue_page(request: Any) -> tuple[QueueFilter, QueuePage]:
        chosen = QueueFilter.from_query(request.query)
        rows = await open_rows(cases)
        return chosen, select(rows, chosen, signed_in_member(request).user_id)

    @app.page(CONSOLE_PATH)
    class Console(View):
        async def get(self, request: Any) -> Any:
            visitor = visitor_of(request)
            try:
                chosen, shown = await queue_page(request)
            except FilterError as exc:
                return web.Response(status=400, text=f"Not a queue filter: {exc}\n")
            try:
                poll = min(60, max(2, int(request.query.get("poll", POLL_SECONDS))))
            except ValueError:
                poll = POLL_SECONDS
            html = page.render(
                chosen=chosen,
                shown=shown,
                rows=[shown_row(row) for row in shown.rows],
                columns=COLUMNS,
                columns_json=_json([list(column) for column in COLUMNS]),
                json_url=JSON_PATH + _query(chosen.query()),
                poll=poll,
                severities=[severity.value for severity in Severity],
                previous=_query(chosen.query(page=shown.page - 1)) if shown.page > 1 else None,
                next=_query(chosen.query(page=shown.page + 1))
                if shown.page < shown.pages
                else None,
                member=signed_in_member(request),
                via_proxy=visitor.via_proxy,
                csrf=visitor.csrf_token,
                csrf_field=CSRF_FIELD,
                generated=datetime.now(UTC).strftime("%H:%M:%S UTC"),
                script=CONSOLE_SCRIPT,
                cases_path=CASES_PATH,
                style=STYLE,
            )
            return web.Response(text=html, content_type="text/html")

    @app.page(JSON_PATH)
    class ConsoleCases(View):
        async def get(self, request: Any) -> Any:
            try:
                _, shown = await queue_page(request)
            except FilterError as exc:
                return web.json_response({"error": f"not a queue filter: {exc}"}, status=400)
            return web.json_response(
                {
                    "total": shown.total,
                    "page": shown.page,
                    "pages": shown.pages,
                    "generated_at": time.time(),
                    "rows": [shown_row(row) for row in shown.rows],
                }
            )


def shown_row(row: QueueRow) -> dict[str, Any]:
    shown = row.as_json()
    if row.claimed_by is not None:
        shown["claimed_by"] = row.claimed_by.removeprefix("member:").removeprefix("outbox:")
    return shown


def _query(values: dict[str, str]) -> str:
    return "?" + urlencode(values) if values else ""


def _json(value: Any) -> str:
    return json.dumps(value)


CONSOLE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Queue · alert-engine</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{{ style | safe }}</style></head><body>
<header><h1>Queue</h1>
<div class="meta">Signed in as <b class="member">{{ member.shown_name }}</b> ·
<a href="/outbox">Outbox</a>{% if not via_proxy %} ·
<form method="post" action="/signout" class="signout">
<input type="hidden" name="{{ csrf_field }}" value="{{ csrf }}">
<button type="submit" class="plain">Sign out</button></form>{% endif %}</div></header>
<form method="get" action="/console" class="filters" aria-label="Filters">
<label>Show<select name="show">
{% for value, text in [("open", "All not closed"), ("unclaimed", "Unclaimed"), ("mine", "Mine")] %}
<option value="{{ value }}"{% if chosen.show == value %} selected{% endif %}>{{ text }}</option>
{% endfor %}</select></label>
<label>Team<input name="team" value="{{ chosen.team or '' }}"></label>
<label>Route<input name="route" value="{{ chosen.route or '' }}"></label>
<label>Rule<input name="rule" value="{{ chosen.rule or '' }}"></label>
<label>Severity<select name="severity"><option value="">Any</option>
{% for value in severities %}
<option value="{{ value }}"{% if chosen.severity == value %} selected{% endif %}>{{ value }}
</option>
{% endfor %}</select></label>
<label>Older than (minutes)<input name="min_age_minutes" type="number" min="0" inputmode="numeric"
value="{{ chosen.min_age_minutes if chosen.min_age_minutes is not none else '' }}"></label>
<label>Sort<select name="sort">
{% for value, text in [("oldest", "Oldest first"), ("newest", "Newest first"),
("severity", "Most severe first")] %}
<option value="{{ value }}"{% if chosen.sort == value %} selected{% endif %}>{{ text }}</option>
{% endfor %}</select></label>
<label class="check"><span>SLA breached</span><input type="checkbox" name="sla_breached"
value="true"{% if chosen.sla_breached %} checked{% endif %}></label>
<button type="submit">Apply</button>
</form>
<form method="get" action="/console/go" class="filters" aria-label="Open a case by its id">
<label>Case (alert id, closed ones too)<input name="alert_id" pattern="al-[0-9a-f]+"
placeholder="al-…" autocomplete="off"></label>
<button type="submit" class="plain">Open</button></form>
<p class="meta"><span id="count" role="status">{{ shown.total }} case{{ "" if shown.total == 1
else "s" }} · page {{ shown.page }} of {{ shown.pages }}</span> ·
<span id="updated">as of {{ generated }}</span></p>
<table id="queue" data-json="{{ json_url }}" data-poll-seconds="{{ poll }}"
data-columns="{{ columns_json }}" data-cases="{{ cases_path }}">
<caption>Cases not closed yet</caption>
<thead><tr>{% for _, label in columns %}<th scope="col">{{ label }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in rows %}<tr data-alert-id="{{ row.alert_id }}">
{% for name, label in columns %}<td data-label="{{ label }}"
{%- if name == "sla" and row.sla_breached %} class="breached"{% endif %}>
{%- if name == "customer" %}<a href="{{ cases_path }}/{{ row.alert_id }}">{{ row.customer or
row.alert_id }}</a>{% else %}{{ row[name] if row[name] is not none else "" }}{% endif %}</td>
{%- endfor %}</tr>
{% else %}<tr><td colspan="{{ columns | length }}">No case matches.</td></tr>{% endfor %}
</tbody></table>
<nav aria-label="Pages">{% if previous is not none %}
<a href="/console{{ previous }}">Previous page</a>{% endif %}
{% if next is not none %}<a href="/console{{ next }}">Next page</a>{% endif %}</nav>
<script>{{ script | safe }}</script>
</body></html>
"""
