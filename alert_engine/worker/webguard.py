"""What every request to the worker's web server goes through, in one place.

- Only the engine's own pages are served. Faust's default views are not: `/table/...` reads any
  table's entries (the window state holds buffered ratings, with customers' e-mails and phones),
  `/router/` shows the cluster, `/` and the statistics views show internals.
- Every response carries the same security headers: a Content-Security-Policy that allows no
  script but the pages' own (by hash), no framing, no caching, no sniffing, no referrer.
- The operators' pages (`/outbox`, `/dashboard`, `/stats`, ...) answer only under the configured
  host names (`ALERT_ENGINE_WEB_ALLOWED_HOSTS`, localhost and the listening address): a site
  whose DNS name is rebound to the worker's address cannot read them or act through a visitor's
  browser. Probes and scrapers address a pod by its IP, and Slack's requests and survey links
  carry their own proof (a signature, a signed token), so those paths answer under any Host.
- Every page but the public ones needs a signed-in member (`alert_engine.signin`). Public:
  Slack's interactivity endpoint (signed by Slack), the survey pages (a signed link), `/health`
  and `/ready` (probes), `/metrics` (its own bearer token) and the sign-in pages themselves.
  An anonymous browser is sent to `/signin?next=...` (303), any other client gets 401; every
  POST needs the CSRF token of the visitor's session (403 without it).
- Forms are read strictly: bytes that are not UTF-8 (raw or percent-encoded) are not a form.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Awaitable, Callable, Iterable
from ipaddress import ip_address
from typing import Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit

import faust
from aiohttp import web
from faust.web.base import BlueprintManager
from faust.web.drivers.aiohttp import Web as AiohttpWeb
from redis.exceptions import RedisError

from alert_engine.signin import csrf
from alert_engine.signin.gate import SIGNIN_PATH, SIGNIN_PATHS, VISITOR_KEY, Gate, Visitor
from alert_engine.signin.sessions import COOKIE_NAME

# Paths answered whatever the Host, and without sign-in: see the module's docstring.
ANY_HOST_PATHS = frozenset({"/health", "/ready", "/metrics", "/slack/interactions"})
ANY_HOST_PREFIXES = ("/survey/",)
PUBLIC_PATHS = ANY_HOST_PATHS
PUBLIC_PREFIXES = ANY_HOST_PREFIXES
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# A form of the pages has a handful of fields; Slack's has one.
MAX_FORM_FIELDS = 50

_HOST_HEADER = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::[0-9]{1,5})?")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def content_security_policy(inline_scripts: Iterable[str] = ()) -> str:
    """The one policy of every page: nothing loads or runs but the page itself, its inline
    styles and the listed inline scripts (allowed by their SHA-256)."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in inline_scripts
    ]
    directives = [
        "default-src 'none'",
        *([f"script-src {' '.join(hashes)}"] if hashes else []),
        # A page's script may fetch the worker's own JSON views (the console's updates).
        *(["connect-src 'self'"] if hashes else []),
        "style-src 'unsafe-inline'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
    return "; ".join(directives)


def security_headers(inline_scripts: Iterable[str] = ()) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(inline_scripts),
        # For browsers that predate frame-ancestors.
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        # Pages show customers' details, and survey links carry their token in the URL.
        "Cache-Control": "no-store",
        # No URL leaves the worker; same-origin, not no-referrer: under no-referrer a browser
        # sends `Origin: null` with the outbox's forms, and the Origin check refuses them.
        "Referrer-Policy": "same-origin",
    }


def host_name(header: str | None) -> str | None:
    """The name of a `Host` header without its port (IP addresses normalised), or None if it is
    not a plain host[:port]."""
    match = _HOST_HEADER.fullmatch(header or "")
    if match is None:
        return None
    name = match.group(1).lower().removesuffix(".")
    try:
        return str(ip_address(name.strip("[]")))
    except ValueError:
        return None if name.startswith("[") else name


def checks_host(path: str) -> bool:
    return path not in ANY_HOST_PATHS and not path.startswith(ANY_HOST_PREFIXES)


def is_public(path: str) -> bool:
    """Answered without sign-in: the requests that carry their own proof, and the probes."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def wants_html(request: web.Request) -> bool:
    """A browser navigating or posting a form (sent to the sign-in page), not a script."""
    return "text/html" in request.headers.get("Accept", "")


def guard_pages(
    app: faust.App,
    host_names: frozenset[str],
    *,
    gate: Gate,
    inline_scripts: Iterable[str] = (),
) -> None:
    """Serve only the engine's pages on `app`, each with the security headers, the operators'
    pages only under `host_names` and to members signed in through `gate`. Call before the
    worker starts."""
    server = app.web
    if not isinstance(server, AiohttpWeb):
        raise TypeError(f"the engine's pages need Faust's aiohttp web driver, not {server!r}")
    if server.blueprints.applied:
        raise RuntimeError("the web server has already started")
    # Faust's default views (see the module's docstring) come as blueprints, and nothing of the
    # engine's does: none is served.
    server.blueprints = BlueprintManager()
    headers = security_headers(inline_scripts)

    async def answer(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            # Raised for 404s, 405s and the like: answered with the same headers.
            exc.headers.update(headers)
            raise

    async def members_only(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            visitor = await gate.visitor(request)
        except (RedisError, OSError) as exc:
            return web.Response(status=503, text=f"Sign-in is unavailable (Redis: {exc!r}).\n")
        request[VISITOR_KEY] = visitor
        response: web.StreamResponse
        if visitor.member is None and request.path not in SIGNIN_PATHS:
            response = anonymous(request)
        elif request.method not in SAFE_METHODS and (
            refused := await refused_form(request, gate, visitor)
        ):
            response = refused
        else:
            try:
                response = await answer(request, handler)
            except RedisError as exc:
                # The sign-in pages' rate limit and sessions, or the page's own data.
                return web.Response(status=503, text=f"Redis is unavailable: {exc!r}\n")
        if visitor.new_session and COOKIE_NAME not in response.cookies:
            await gate.set_cookie(response, visitor.session)
        return response

    @web.middleware
    async def guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        response: web.StreamResponse
        if checks_host(request.path) and host_name(request.headers.get("Host")) not in host_names:
            response = web.Response(
                status=421,
                text="This page answers only under the worker's configured host names "
                "(ALERT_ENGINE_WEB_ALLOWED_HOSTS).\n",
            )
        elif is_public(request.path):
            response = await answer(request, handler)
        else:
            response = await members_only(request, handler)
        response.headers.update(headers)
        return response

    server.web_app.middlewares.append(guarded)


def anonymous(request: web.Request) -> web.Response:
    """Sign in first: a browser is sent to the sign-in page, back here afterwards."""
    if wants_html(request):
        location = SIGNIN_PATH
        if request.method in SAFE_METHODS:
            location += "?" + urlencode({"next": request.path_qs})
        return web.Response(status=303, headers={"Location": location})
    return web.json_response(
        {"error": "sign-in required", "signin": SIGNIN_PATH},
        status=401,
        headers={"WWW-Authenticate": 'Cookie realm="alert-engine", form-action="/signin"'},
    )


async def refused_form(request: web.Request, gate: Gate, visitor: Visitor) -> web.Response | None:
    """A POST from another site (its `Origin`) or without its session's CSRF token (a form
    field, or a header for scripts): 403."""
    origin = request.headers.get("Origin")
    if origin and urlsplit(origin).netloc != request.headers.get("Host"):
        return web.Response(status=403, text="cross-site request\n")
    token = request.headers.get(csrf.HEADER)
    if token is None:
        form = parse_form(await request.read())
        if form is None:
            return web.Response(status=400, text="not a URL-encoded UTF-8 form\n")
        token = form.get(csrf.FIELD, "")
    if not await gate.csrf_valid(visitor, token):
        return web.Response(
            status=403, text="stale or missing form token (CSRF); reload the page\n"
        )
    return None


def parse_form(body: bytes) -> dict[str, str] | None:
    """A URL-encoded UTF-8 form's fields (the last value of a repeated one), or None when the
    body is not one."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        return None
    return dict(pairs)


class HasBody(Protocol):
    async def read(self) -> bytes: ...


async def read_form(request: HasBody) -> dict[str, str] | None:
    """The request's body as a form (`parse_form`), whatever its Content-Type claims."""
    return parse_form(await request.read())
