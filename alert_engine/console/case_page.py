"""A case's page in the console, and its actions.

- `GET /console/cases/<alert id>`: the alert (headline, facts, the customer's comment and
  contact, unless `ALERT_ENGINE_CASES_SHOW_CONTACT=false`), where the case stands against its
  SLA, its full history with notes, and the actions its state allows. Closed cases too: the
  queue lists only those not closed, a closed one is reached by its id.
- `GET /console/cases/<alert id>/live.json`: the state block (state, owner, SLA, history, the
  buttons), which the page polls and puts in place when it changed. The forms with text in them
  (the note, the resolution's reason and note, the reassignment) are outside that block: an
  update shows or hides them as the state allows and never touches what they hold.
- `POST /console/cases/<alert id>/act`: an action as the signed-in member, through
  `WebActions` (the same store as Slack's clicks, published on the `cases` topic, shown in
  Slack). Final actions go through a confirm step; a refusal is a page saying why (409).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import faust
from aiohttp import web
from faust.web import View
from jinja2 import Environment

from alert_engine.alerts import Alert
from alert_engine.cases import (
    ACTION_LABELS,
    FINAL_ACTIONS,
    LABELS,
    RESOLUTIONS,
    Case,
    CaseAction,
    CasePolicy,
    CaseRequest,
    CaseStore,
    Refusal,
    check_request,
    duration_text,
    reason_label,
)
from alert_engine.channels.presentation import AlertView, LinkTemplates
from alert_engine.console.actions import (
    ALERT_ID,
    TeamMembers,
    WebActions,
    case_actions,
    case_buttons,
    history_lines,
    member_actor,
)
from alert_engine.console.polling import POLLING_SCRIPT
from alert_engine.console.sla import SlaStatus, sla_status, span_text
from alert_engine.console.style import STYLE
from alert_engine.signin.csrf import FIELD as CSRF_FIELD
from alert_engine.signin.gate import signed_in_member, visitor_of
from alert_engine.signin.members import Member
from alert_engine.worker.webguard import parse_form

CASES_PATH = "/console/cases"
MEMBER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
# Seconds between the page's updates; `?poll=` may ask for 2 to 60.
POLL_SECONDS = 10
# The buttons of the state block; the actions taking text have forms of their own.
WITH_FORMS = frozenset({CaseAction.NOTE, CaseAction.REASSIGN, *RESOLUTIONS})
SOURCE = "console"

# Polls the state block's JSON and puts it in place when it changed; shows and hides the forms
# by what the state allows. The block is the server's own template (escaped by Jinja); the
# forms, and what the member is typing into them, stay as they are.
CASE_SCRIPT = (
    POLLING_SCRIPT
    + """
const live = document.getElementById("live");
function showForms(allowed) {
  for (const form of document.querySelectorAll("form[data-needs]")) {
    form.hidden = !allowed.includes(form.dataset.needs);
  }
}
poll(live, (data) => {
  if (data.version !== live.dataset.version) {
    const fresh = new DOMParser().parseFromString(data.html, "text/html").body;
    live.replaceChildren(...fresh.childNodes);
    live.dataset.version = data.version;
  }
  showForms(data.allowed);
});
"""
)


@dataclass(frozen=True)
class CaseShown:
    """What the page shows of a case at one moment."""

    case: Case
    alert: Alert
    view: AlertView
    sla: SlaStatus
    buttons: Sequence[tuple[str, str]]
    allowed: frozenset[CaseAction]
    history: Sequence[str]
    # Since the alert's first delivery (`2 h 05 min`), if known.
    age: str | None = None

    @property
    def version(self) -> str:
        """Changes whenever the state block would look different."""
        return "|".join(
            [
                self.case.state.value,
                str(len(self.case.history)),
                ",".join(action for action, _ in self.buttons),
                ";".join(deadline.text() for deadline in self.sla.deadlines),
                self.case.rerated or "",
                self.age or "",
            ]
        )


def shown_case(
    case: Case, alert: Alert, links: LinkTemplates, contact: bool, policy: CasePolicy
) -> CaseShown:
    now = datetime.now(UTC)
    return CaseShown(
        case=case,
        alert=alert,
        view=AlertView.of(alert, links, contact=contact),
        sla=sla_status(case, alert, now),
        buttons=case_buttons(case, now, WITH_FORMS, policy),
        allowed=frozenset(case_actions(case, now, policy)),
        history=history_lines(case),
        age=span_text((now - case.delivered_at).total_seconds()) if case.delivered_at else None,
    )


def owner_text(case: Case) -> str | None:
    if case.assignee is None:
        return None
    return case.assignee_name or case.assignee.removeprefix("member:").removeprefix("outbox:")


def register_case_page(
    app: faust.App,
    actions: WebActions,
    *,
    team_members: TeamMembers,
    links: LinkTemplates,
    show_contact: bool = True,
) -> None:
    templates = Environment(autoescape=True)
    templates.globals.update(
        style=STYLE,
        csrf_field=CSRF_FIELD,
        labels=LABELS,
        owner_text=owner_text,
        reason_label=reason_label,
    )
    live_block = templates.from_string(LIVE_BLOCK)
    templates.globals["live_block"] = live_block
    page = templates.from_string(CASE_PAGE)
    confirm_page = templates.from_string(CONFIRM_PAGE)
    message_page = templates.from_string(MESSAGE_PAGE)
    cases: CaseStore = actions.cases

    async def found(alert_id: str) -> tuple[Case, Alert] | None:
        if not ALERT_ID.match(alert_id):
            return None
        case = await cases.get(alert_id)
        alert = case.parsed_alert()
        return None if alert is None else (case, alert)

    def not_found() -> web.Response:
        html = message_page.render(
            title="No such case",
            message="This alert has no case here (never delivered, or its case expired).",
            back=None,
        )
        return web.Response(status=404, text=html, content_type="text/html")

    @app.page(CASES_PATH + "/{alert_id}")
    class CasePage(View):
        async def get(self, request: Any, alert_id: str) -> Any:
            known = await found(alert_id)
            if known is None:
                return not_found()
            shown = shown_case(*known, links, show_contact, cases.policy)
            visitor = visitor_of(request)
            try:
                poll = min(60, max(2, int(request.query.get("poll", POLL_SECONDS))))
            except ValueError:
                poll = POLL_SECONDS
            try:
                done = CaseAction(request.query.get("done", ""))
            except ValueError:
                notice = None
            else:
                notice = done_text(done, cases.policy.undo_seconds)
            members = list(team_members())
            html = page.render(
                shown=shown,
                csrf=visitor.csrf_token,
                member=signed_in_member(request),
                via_proxy=visitor.via_proxy,
                reasons=[(code, reason_label(code)) for code in cases.policy.reasons],
                members=members,
                json_url=f"{CASES_PATH}/{alert_id}/live.json",
                act_url=f"{CASES_PATH}/{alert_id}/act",
                poll=poll,
                notice=notice,
                actions=CaseAction,
                generated=datetime.now(UTC).strftime("%H:%M:%S UTC"),
                script=CASE_SCRIPT,
            )
            return web.Response(text=html, content_type="text/html")

    @app.page(CASES_PATH + "/{alert_id}/live.json")
    class CaseLive(View):
        async def get(self, request: Any, alert_id: str) -> Any:
            known = await found(alert_id)
            if known is None:
                return web.json_response({"error": "no such case"}, status=404)
            shown = shown_case(*known, links, show_contact, cases.policy)
            return web.json_response(
                {
                    "version": shown.version,
                    "state": shown.case.state.value,
                    "allowed": sorted(action.value for action in shown.allowed),
                    "html": live_block.render(
                        shown=shown,
                        csrf=visitor_of(request).csrf_token,
                        act_url=f"{CASES_PATH}/{alert_id}/act",
                    ),
                }
            )

    @app.page(CASES_PATH + "/{alert_id}/act")
    class CaseAct(View):
        async def post(self, request: Any, alert_id: str) -> Any:
            back = f"{CASES_PATH}/{quote(alert_id)}"

            def refused(message: str, status: int = 409) -> web.Response:
                html = message_page.render(title="Nothing changed", message=message, back=back)
                return web.Response(status=status, text=html, content_type="text/html")

            if await found(alert_id) is None:
                return not_found()
            form = parse_form_fields(await request.read())
            try:
                action = CaseAction(form.get("action", ""))
            except ValueError:
                return refused("Not an action on a case.", 400)
            assignee: Member | None = None
            if action is CaseAction.REASSIGN:
                assignee = pick_member(form.get("assignee", ""), team_members())
                if assignee is None:
                    return refused("Choose a member of the team to assign the case to.", 400)
            case_request = CaseRequest.of(
                action,
                member_actor(request, SOURCE),
                reason=form.get("reason") if action in RESOLUTIONS else None,
                note=form.get("note"),
                assignee=assignee.user_id if assignee else None,
                assignee_name=assignee.shown_name if assignee else None,
            )
            problem = check_request(case_request, cases.policy)
            if problem is not None:
                return refused(problem.message, 400)
            if action in FINAL_ACTIONS and form.get("confirm") != "yes":
                html = confirm_page.render(
                    fields={k: v for k, v in form.items() if k != "confirm"},
                    action_label=ACTION_LABELS[action],
                    reason=reason_label(case_request.reason) if case_request.reason else None,
                    note=case_request.note,
                    undo_for=duration_text(cases.policy.undo_seconds)
                    if cases.policy.undo_seconds
                    else None,
                    act_url=f"{CASES_PATH}/{alert_id}/act",
                    back=back,
                )
                return web.Response(text=html, content_type="text/html")
            result = await actions.take(alert_id, case_request)
            if isinstance(result, Refusal):
                return refused(result.message)
            return web.Response(status=303, headers={"Location": f"{back}?done={action.value}"})


def parse_form_fields(body: bytes) -> dict[str, str]:
    # The web guard has read it as a form already (for its CSRF token).
    return parse_form(body) or {}


def pick_member(name: str, members: Sequence[Member]) -> Member | None:
    """The member a case is assigned to: one of the members file's, or, with no file (a proxy
    vouches for the team), any member name."""
    name = name.strip()
    if members:
        return next((m for m in members if m.name.lower() == name.lower()), None)
    if not MEMBER_NAME.match(name):
        return None
    return Member(name=name)


def done_text(action: CaseAction, undo_seconds: float) -> str:
    text = f"Done: {ACTION_LABELS[action]}."
    if action in FINAL_ACTIONS and undo_seconds:
        text += f" You can undo it for {duration_text(undo_seconds)}."
    return text


LIVE_BLOCK = """<h2>State: <span class="state">{{ labels[shown.case.state] }}</span></h2>
<p>{% if owner_text(shown.case) %}Owner: <b class="owner">{{ owner_text(shown.case) }}</b>
{% else %}Nobody's case yet.{% endif %}
{% if shown.case.reason %} · reason: {{ reason_label(shown.case.reason) }}{% endif %}</p>
{% if shown.age %}<p class="age">Opened {{ shown.case.delivered_at.strftime("%Y-%m-%d %H:%M") }}
UTC · {{ shown.age }} ago</p>{% endif %}
{% if shown.sla.deadlines %}<ul class="sla">{% for deadline in shown.sla.deadlines %}
<li{% if deadline.missed %} class="breached"{% endif %}>{{ deadline.what }} by
{{ deadline.due.strftime("%Y-%m-%d %H:%M") }} UTC · {{ deadline.text().split(": ", 1)[1] }}</li>
{% endfor %}</ul>{% else %}<p class="meta">No SLA on this route.</p>{% endif %}
{% if shown.case.rerated %}<p class="rerated">{{ shown.case.rerated }}</p>{% endif %}
{% if shown.buttons %}<div class="actions">{% for action, label in shown.buttons %}
<form method="post" action="{{ act_url }}">
<input type="hidden" name="{{ csrf_field }}" value="{{ csrf }}">
<button name="action" value="{{ action }}" class="{{ action }}">{{ label }}</button></form>
{% endfor %}</div>{% endif %}
<h2>History</h2>
{% if shown.history %}<ol class="history">{% for line in shown.history %}<li>{{ line }}</li>
{% endfor %}</ol>{% else %}<p class="meta">No change yet.</p>{% endif %}
"""

CASE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Case · alert-engine</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{{ style | safe }}</style></head><body>
<header><h1>{{ shown.view.title }}</h1>
<div class="meta">Signed in as <b class="member">{{ member.shown_name }}</b> ·
<a href="/console">Queue</a>{% if not via_proxy %} ·
<form method="post" action="/signout" class="signout">
<input type="hidden" name="{{ csrf_field }}" value="{{ csrf }}">
<button type="submit" class="plain">Sign out</button></form>{% endif %}</div></header>
{% if notice %}<p class="notice" role="status">{{ notice }}</p>{% endif %}
<section class="card" aria-label="The alert">
<dl class="facts">{% for label, value in shown.view.facts() %}
<div><dt>{{ label }}</dt><dd>{{ value }}</dd></div>{% endfor %}</dl>
{% if shown.view.comment %}<blockquote class="comment">{{ shown.view.comment }}</blockquote>
{% endif %}
{% if shown.view.customer_url %}<a href="{{ shown.view.customer_url }}">Customer</a>{% endif %}
{% if shown.view.interaction_url %}
<a href="{{ shown.view.interaction_url }}">Interaction</a>{% endif %}
<p class="meta">Alert {{ shown.case.alert_id }}</p>
</section>
<section class="card" id="live" aria-label="The case" aria-live="polite"
data-json="{{ json_url }}" data-poll-seconds="{{ poll }}" data-version="{{ shown.version }}">
{{ live_block.render(shown=shown, csrf=csrf, act_url=act_url) | safe }}
</section>
<p class="meta"><span id="updated">as of {{ generated }}</span></p>
<section class="card" aria-label="Work on the case">
<form method="post" action="{{ act_url }}" class="act" data-needs="resolved_followup"
{% if actions.RESOLVED_FOLLOWUP not in shown.allowed %}hidden{% endif %}>
<h2>Resolve</h2>
<input type="hidden" name="{{ csrf_field }}" value="{{ csrf }}">
<label>Reason<select name="reason" required><option value="">Choose…</option>
{% for code, label in reasons %}<option value="{{ code }}">{{ label }}</option>{% endfor %}
</select></label>
<label>Note (needed with “Other”)<textarea name="note" rows="2" maxlength="2000"></textarea>
</label>
<div class="actions">
<button name="action" value="resolved_followup">Resolve &ndash; follow-up</button>
<button name="action" value="resolved_no_followup">Resolve &ndash; no follow-up</button></div>
</form>
<form method="post" action="{{ act_url }}" class="act" data-needs="reassign"
{% if actions.REASSIGN not in shown.allowed %}hidden{% endif %}>
<h2>Assign</h2>
<input type="hidden" name="{{ csrf_field }}" value="{{ csrf }}">
{% if members %}<label>Assign to<select name="assignee" required>
<option value="">Choose…</option>{% for someone in members %}
<option value="{{ someone.name }}">{{ someone.shown_name }}</option>{% endfor %}
</select></label>{% else %}<label>Assign to (member name)
<input name="assignee" maxlength="64" autocomplete="off" required></label>{% endif %}
<button name="action" value="reassign">Assign</button>
</form>
<form method="post" action="{{ act_url }}" class="act" data-needs="note">
<h2>Note</h2>
<input type="hidden" name="{{ csrf_field }}" value="{{ csrf }}">
<label>Note<textarea name="note" id="note" rows="3" maxlength="2000" required></textarea></label>
<button name="action" value="note">Add the note</button>
</form>
</section>
<script>{{ script | safe }}</script>
</body></html>
"""

CONFIRM_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Confirm · alert-engine</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{{ style | safe }}</style></head><body>
<section class="card"><h1>{{ action_label }}?</h1>
<p>{% if reason %}Reason: {{ reason }}. {% endif %}{% if note %}Note: “{{ note }}”. {% endif %}
{% if undo_for %}You can undo it for {{ undo_for }} afterwards.{% endif %}</p>
<form method="post" action="{{ act_url }}">
{% for name, value in fields.items() %}
<input type="hidden" name="{{ name }}" value="{{ value }}">{% endfor %}
<input type="hidden" name="confirm" value="yes">
<div class="actions"><button autofocus>{{ action_label }}</button>
<a href="{{ back }}">Cancel</a></div>
</form></section></body></html>
"""

MESSAGE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }} · alert-engine</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{{ style | safe }}</style></head><body>
<section class="card"><h1>{{ title }}</h1><p class="message">{{ message }}</p>
<p>{% if back %}<a href="{{ back }}">Back to the case</a> · {% endif %}
<a href="/console">The queue</a></p></section></body></html>
"""
