"""The local outbox page: the latest alerts delivered to the outbox, as they would look, with the
case's history and working actions.

- `GET /outbox`: the latest entries, newest first; the file's tail is read and the page rendered
  in a thread, so the event loop goes on delivering alerts meanwhile.
- `POST /outbox/act`: a case action, as the signed-in member (`outbox_actor`); final actions
  through a confirm step, a refusal on a page of its own (409). The form carries the session's
  CSRF token (checked by the web guard), and a cross-site request (a foreign Origin) is refused.

A change made here is published on the `cases` topic and shown on the alert's Slack card too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import faust
from faust.web import Request, Response, View
from jinja2 import Environment
from pydantic import ValidationError

from alert_engine.alerts import Alert
from alert_engine.cases import (
    ACTION_LABELS,
    FINAL_ACTIONS,
    LABELS,
    Actor,
    Case,
    CaseAction,
    CasePolicy,
    CaseRequest,
    CaseState,
    CaseStore,
    Refusal,
    duration_text,
    reason_label,
)
from alert_engine.channels.outbox import outbox_alerts, read_outbox_tail
from alert_engine.channels.presentation import AlertView, LinkTemplates
from alert_engine.console.actions import (
    ALERT_ID,
    WebActions,
    case_buttons,
    history_lines,
    member_actor,
)
from alert_engine.console.actions import PublishCase as PublishCase
from alert_engine.signin.csrf import FIELD as CSRF_FIELD
from alert_engine.signin.gate import signed_in_member, visitor_of
from alert_engine.worker.webguard import read_form

log = logging.getLogger(__name__)

# Who acts on a web page: from the request (a signed-in member) and the form.
WebActor = Callable[[Request, Mapping[str, str]], Actor]
OUTBOX_PAGE_LIMIT = 200
# The pages' inline scripts, allowed by their hashes: none (who acts is the signed-in member).
PAGE_SCRIPTS: tuple[str, ...] = ()


def register_outbox(
    app: faust.App,
    cases: CaseStore,
    publish_case: PublishCase,
    show_in_slack: PublishCase,
    *,
    outbox_path: Path,
    links: LinkTemplates,
    show_contact: bool = True,
    web_actor: WebActor | None = None,
) -> None:
    page = Environment(autoescape=True).from_string(OUTBOX_PAGE)
    confirm_page = Environment(autoescape=True).from_string(CONFIRM_PAGE)
    refused_page = Environment(autoescape=True).from_string(REFUSED_PAGE)
    actions = WebActions(cases, publish_case, show_in_slack)

    @app.page("/outbox")
    class OutboxPage(View):
        async def get(self, request: Request) -> Response:
            shown = await asyncio.to_thread(outbox_views, outbox_path, links, show_contact)
            now = datetime.now(UTC)
            cards = []
            for entry, view in shown:
                case = await cases.get(view.alert_id)
                cards.append(
                    {
                        "digest": entry.get("digest"),
                        "destination": entry.get("destination"),
                        "delivered_at": entry.get("delivered_at"),
                        "view": view,
                        "state": LABELS[case.state],
                        "case": case,
                        "history": history_lines(case),
                        "buttons": outbox_buttons(case, now, cases.policy),
                        "claimed": case.state is CaseState.CLAIMED,
                    }
                )
            visitor = visitor_of(request)
            html = await asyncio.to_thread(
                page.render,
                cards=cards,
                csrf=visitor.csrf_token,
                csrf_field=CSRF_FIELD,
                member=signed_in_member(request),
                via_proxy=visitor.via_proxy,
                reasons=[(code, reason_label(code)) for code in cases.policy.reasons],
            )
            return self.html(html)

    @app.page("/outbox/act")
    class OutboxAct(View):
        async def post(self, request: Request) -> Response:
            origin = request.headers.get("Origin")
            if origin and urlsplit(origin).netloc != request.headers.get("Host"):
                return self.error(403, "cross-site request")
            form = await read_form(request)
            if form is None:
                return self.error(400, "not a URL-encoded UTF-8 form")
            alert_id = str(form.get("alert_id", ""))
            try:
                action = CaseAction(str(form.get("action", "")))
            except ValueError:
                return self.error(400, "unknown action")
            if not ALERT_ID.match(alert_id):
                return self.error(400, "unknown alert")
            actor = (web_actor or outbox_actor)(request, form)
            case_request = CaseRequest.of(
                action,
                actor,
                reason=form.get("reason"),
                note=form.get("note"),
                assignee=_outbox_member(form.get("assignee", "")),
                assignee_name=form.get("assignee", "").strip()[:80] or None,
            )
            if action in FINAL_ACTIONS and form.get("confirm") != "yes":
                # The confirm step: the same form again, with what it will do in words.
                html = confirm_page.render(
                    form=form,
                    action_label=ACTION_LABELS[action],
                    reason=reason_label(form["reason"]) if form.get("reason") else None,
                    undo_for=(
                        duration_text(cases.policy.undo_seconds)
                        if cases.policy.undo_seconds
                        else None
                    ),
                )
                return self.html(html)
            result = await actions.take(alert_id, case_request)
            if isinstance(result, Refusal):
                return self.html(refused_page.render(message=result.message), status=409)
            return self.text("", status=303, headers={"Location": "/outbox"})


def outbox_actor(request: Request, form: Mapping[str, str]) -> Actor:
    """Who acts on the outbox page: the signed-in member (the web guard let only members in)."""
    return member_actor(request, "outbox")


def _outbox_member(name: str) -> str | None:
    name = name.strip()[:80]
    return f"outbox:{name}" if name else None


def outbox_buttons(
    case: Case, now: datetime, policy: CasePolicy | None = None
) -> list[tuple[str, str]]:
    """The actions the case's state allows on the outbox card, Undo only while it can be."""
    return case_buttons(case, now, frozenset({CaseAction.NOTE, CaseAction.REASSIGN}), policy)


def outbox_views(
    path: Path, links: LinkTemplates, contact: bool = True
) -> list[tuple[dict[str, Any], AlertView]]:
    """The alerts of the page's latest entries, newest first, with their entries. Blocking: run
    in a thread. An alert the engine cannot read any more is passed over."""
    shown = []
    for entry in reversed(read_outbox_tail(path, OUTBOX_PAGE_LIMIT)):
        for raw in outbox_alerts(entry):
            try:
                alert = Alert.model_validate(raw)
            except ValidationError as exc:
                log.warning("an outbox entry is not an alert: %s", exc.errors()[0]["msg"])
                continue
            shown.append((entry, AlertView.of(alert, links, contact=contact)))
    return shown


_STYLE = """<style>
body{font-family:system-ui,sans-serif;background:#f4f4f6;margin:0;padding:1.5rem;color:#1d1c1d}
.card{background:#fff;border-radius:8px;padding:1rem 1.2rem;margin:0 0 1rem;max-width:46rem;
box-shadow:0 1px 3px #0002}
h2{font-size:1.05rem;margin:.2rem 0 .6rem}.meta{color:#616061;font-size:.8rem}
dl{display:grid;grid-template-columns:repeat(auto-fill,minmax(10rem,1fr));gap:.5rem .8rem;
margin:.4rem 0}dt{font-weight:700}dd{margin:0}
blockquote{border-left:4px solid #ddd;margin:.6rem 0;padding:.2rem .8rem;white-space:pre-wrap}
.state{font-weight:600}button{margin:.2rem .3rem 0 0;padding:.35rem .7rem;border-radius:4px;
border:1px solid #767676;background:#fff;cursor:pointer}button.claim{background:#007a5a;
color:#fff}ol.history{font-size:.85rem;color:#3d3c3d;padding-left:1.2rem;white-space:pre-wrap}
textarea{width:100%;max-width:30rem}label{display:block;margin:.3rem 0}
form.signout{display:inline}
</style>"""

OUTBOX_PAGE = (
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Outbox · alert-engine</title>
<meta http-equiv="refresh" content="10">
"""
    + _STYLE
    + """</head><body>
<h1>Outbox</h1>
<p class="meta">Alerts delivered to destinations without a Slack or SendGrid account, newest
first, as they would look.</p>
<div class="meta">Signed in as <b class="member">{{ member.shown_name }}</b> ·
<a href="/console">Queue</a>{% if not via_proxy %}
<form method="post" action="/signout" class="signout">
<input type="hidden" name="{{ csrf_field }}" value="{{ csrf }}">
<button type="submit">Sign out</button></form>{% endif %}</div>
{% for card in cards %}
<div class="card">
<div class="meta">to <b>{{ card.destination }}</b> at {{ card.delivered_at }}
{% if card.digest %} · in a digest of {{ card.digest.route }}
{% for name, value in card.digest.group.items() %} {{ name }}={{ value }}{% endfor %}{% endif %}
</div>
<h2>{{ card.view.title }}</h2>
<dl>{% for label, value in card.view.facts() %}<div><dt>{{ label }}</dt><dd>{{ value }}</dd></div>
{% endfor %}</dl>
{% if card.view.comment %}<blockquote>{{ card.view.comment }}</blockquote>{% endif %}
{% if card.view.customer_url %}<a href="{{ card.view.customer_url }}">Customer</a>{% endif %}
{% if card.view.interaction_url %}
<a href="{{ card.view.interaction_url }}">Interaction</a>{% endif %}
<p class="state">{{ card.state }}{% if card.case.assignee %}
(claimed by {{ card.case.assignee_name
or card.case.assignee.removeprefix("member:").removeprefix("outbox:") }}){% endif %}
{% if card.case.reason %} · reason: {{ card.case.reason }}{% endif %}</p>
{% if card.case.rerated %}<p class="rerated">{{ card.case.rerated }}</p>{% endif %}
{% if card.history %}<ol class="history">{% for line in card.history %}<li>{{ line }}</li>
{% endfor %}</ol>{% endif %}
<form method="post" action="/outbox/act">
<input type="hidden" name="{{ csrf_field }}" value="{{ csrf }}">
<input type="hidden" name="alert_id" value="{{ card.view.alert_id }}">
{% if card.claimed %}<label>Reason <select name="reason"><option value="">choose…</option>
{% for code, label in reasons %}<option value="{{ code }}">{{ label }}</option>{% endfor %}
</select></label>{% endif %}
{% for action, label in card.buttons %}
<button name="action" value="{{ action }}" class="{{ action }}">{{ label }}</button>
{% endfor %}
<label>Note <textarea name="note" rows="2" maxlength="2000"></textarea></label>
<button name="action" value="note">Add a note</button>
{% if not card.case.is_closed %}<label>Assign to
<input name="assignee" maxlength="80" autocomplete="off"></label>
<button name="action" value="reassign">Assign</button>{% endif %}
</form>
</div>
{% else %}<p>No alerts yet.</p>{% endfor %}
</body></html>
"""
)

CONFIRM_PAGE = (
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Confirm · alert-engine</title>
"""
    + _STYLE
    + """</head><body>
<div class="card"><h1>{{ action_label }}?</h1>
<p>{% if reason %}Reason: {{ reason }}. {% endif %}
{% if form.note %}Note: “{{ form.note }}”. {% endif %}
{% if undo_for %}You can undo it for {{ undo_for }} afterwards.{% endif %}</p>
<form method="post" action="/outbox/act">
{% for name, value in form.items() %}{% if name != "confirm" %}
<input type="hidden" name="{{ name }}" value="{{ value }}">{% endif %}{% endfor %}
<input type="hidden" name="confirm" value="yes">
<button class="claim">{{ action_label }}</button> <a href="/outbox">Cancel</a>
</form></div></body></html>
"""
)

REFUSED_PAGE = (
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Nothing changed · alert-engine</title>
"""
    + _STYLE
    + """</head><body>
<div class="card"><h1>Nothing changed</h1><p>{{ message }}</p>
<p><a href="/outbox">Back to the outbox</a></p></div></body></html>
"""
)
