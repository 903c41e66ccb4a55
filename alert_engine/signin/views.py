"""The sign-in pages: `GET|POST /signin` (the login form), `GET /signin/link` (the demo's
one-time links) and `POST /signout`. The web guard has found the visitor and checked every
POST's CSRF token before these run."""

from __future__ import annotations

import logging
import re
from typing import Any

import faust
from aiohttp import web
from faust.web import View
from jinja2 import Environment

from alert_engine.signin.csrf import FIELD as CSRF_FIELD
from alert_engine.signin.demo import LINK_PATH
from alert_engine.signin.gate import SIGNIN_PATH, SIGNOUT_PATH, Gate, Visitor, visitor_of
from alert_engine.signin.members import Member
from alert_engine.worker.webguard import read_form

log = logging.getLogger(__name__)

# Where a sign-in leads without a `next`: the team's page.
HOME = "/outbox"
# A path on this site: not `//host` or `/\host` (another site to browsers), no control bytes.
_LOCAL_PATH = re.compile(r"^/(?![/\\])[^\x00-\x20\x7f\\]*$")
MAX_NAME = 64
MAX_PASSWORD = 1024


def safe_next(value: str | None) -> str:
    """Where to go after sign-in: a path of this site, else the home page."""
    if value and len(value) <= 2000 and _LOCAL_PATH.match(value):
        return value
    return HOME


def register_signin_views(app: faust.App, gate: Gate) -> None:
    page = Environment(autoescape=True).from_string(SIGNIN_PAGE)

    def render(
        visitor: Visitor,
        *,
        status: int = 200,
        error: str = "",
        name: str = "",
        next_path: str = HOME,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        html = page.render(
            mode="password" if gate.takes_passwords else ("demo" if gate.demo else "proxy"),
            error=error,
            name=name,
            next=next_path,
            csrf=visitor.csrf_token,
            csrf_field=CSRF_FIELD,
        )
        return web.Response(text=html, status=status, content_type="text/html", headers=headers)

    @app.page(SIGNIN_PATH)
    class SigninPage(View):
        async def get(self, request: Any) -> Any:
            visitor = visitor_of(request)
            next_path = safe_next(request.query.get("next"))
            if visitor.member is not None:
                return _see_other(next_path)
            if gate.demo:
                await gate.announce_link(throttled=True)
            return render(visitor, next_path=next_path)

        async def post(self, request: Any) -> Any:
            visitor = visitor_of(request)
            form = await read_form(request) or {}
            next_path = safe_next(form.get("next"))
            if not gate.takes_passwords:
                return render(visitor, status=404, next_path=next_path)
            name = form.get("name", "").strip()[:MAX_NAME]
            password = form.get("password", "")[:MAX_PASSWORD]
            address = gate.proxies.client_address(request.remote, request.headers)
            wait = await gate.limiter.retry_after(address, name)
            if wait is not None:
                log.warning("sign-in refused for a while: too many failures (%s)", name or "-")
                minutes = max(1, round(wait / 60))
                return render(
                    visitor,
                    status=429,
                    error=f"Too many failed sign-ins. Try again in {minutes} minute"
                    + ("s." if minutes != 1 else "."),
                    name=name,
                    next_path=next_path,
                    headers={"Retry-After": str(wait)},
                )
            member = await gate.check_password(name, password) if name and password else None
            if member is None:
                await gate.limiter.failed(address, name)
                log.info("a sign-in failed (name %r)", name)
                return render(
                    visitor,
                    status=401,
                    error="That name and password do not match a member.",
                    name=name,
                    next_path=next_path,
                )
            await gate.limiter.succeeded(name)
            log.info("member %s signed in", member.name)
            return await _session_started(gate, member, next_path)

    @app.page(LINK_PATH)
    class SigninLink(View):
        async def get(self, request: Any) -> Any:
            visitor = visitor_of(request)
            name = await (await gate.links()).redeem(request.query.get("token", ""))
            member = gate.member(name) if gate.demo and name is not None else None
            if member is None:
                return render(
                    visitor,
                    status=403,
                    error="This sign-in link is used up, expired or not this worker's. "
                    + (
                        "Opening this page writes a new one to the worker's log."
                        if gate.demo
                        else ""
                    ),
                )
            log.info("member %s signed in with a one-time link", member.name)
            return await _session_started(gate, member, HOME)

    @app.page(SIGNOUT_PATH)
    class Signout(View):
        async def post(self, request: Any) -> Any:
            visitor = visitor_of(request)
            response = _see_other(SIGNIN_PATH)
            await gate.sign_out(response, visitor)
            if visitor.member is not None:
                log.info("member %s signed out", visitor.member.name)
            return response


def _see_other(location: str) -> Any:
    return web.Response(status=303, headers={"Location": location})


async def _session_started(gate: Gate, member: Member, location: str) -> Any:
    """On to `location`, signed in: the redirect carries the new session's cookie."""
    response = _see_other(location)
    await gate.start_session(response, member)
    return response


SIGNIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in · alert-engine</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;background:#f4f4f6;margin:0;padding:1.5rem;color:#1d1c1d}
main{background:#fff;border-radius:8px;padding:1.2rem 1.4rem;max-width:24rem;margin:2rem auto;
box-shadow:0 1px 3px #0002}
label{display:block;margin:.8rem 0 .2rem;font-weight:600}
input{width:100%;box-sizing:border-box;padding:.5rem;border:1px solid #767676;border-radius:4px;
font-size:1rem}
button{margin-top:1rem;padding:.55rem 1rem;border-radius:4px;border:1px solid #005c44;
background:#007a5a;color:#fff;font-size:1rem;cursor:pointer}
:focus-visible{outline:3px solid #1264a3;outline-offset:2px}
.error{color:#a3001c;font-weight:600}
</style></head><body><main>
<h1>Sign in</h1>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
{% if mode == "password" %}
<form method="post" action="/signin">
<input type="hidden" name="{{ csrf_field }}" value="{{ csrf }}">
<input type="hidden" name="next" value="{{ next }}">
<label for="name">Name</label>
<input id="name" name="name" value="{{ name }}" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
{% elif mode == "demo" %}
<p>This worker has no members configured. Sign in as <b>demo</b> with the one-time link in the
worker's log (a new one is written there when this page is opened, at most once a minute).</p>
<p>To give the team its own sign-in, see "Sign-in" in docs/operations.md.</p>
{% else %}
<p>Sign-in is through your organisation's sign-in proxy: open this page through it.</p>
{% endif %}
</main></body></html>
"""
