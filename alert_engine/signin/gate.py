"""Who is asking: the signed-in member of a request to an internal page, if any.

A request is signed in by a trusted proxy's headers (`proxy`) or by its session cookie
(`sessions`), the cookie's member being still a member (removed from the members file: signed
out) and its session not signed out. Every visitor of an internal page has a session, anonymous
until sign-in, for the CSRF token of its forms.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web
from redis.asyncio import Redis

from alert_engine.settings import SigninSettings
from alert_engine.signin import csrf
from alert_engine.signin.demo import DEMO_MEMBER, LINK_PATH, SigninLinks
from alert_engine.signin.members import Member, Members
from alert_engine.signin.passwords import verify_password, verify_unknown
from alert_engine.signin.proxy import ProxyIdentity, TrustedProxies
from alert_engine.signin.ratelimit import FailureLimit, SigninLimiter
from alert_engine.signin.sessions import (
    COOKIE_NAME,
    Session,
    SessionCookies,
    SignedOut,
    shared_secret,
)

log = logging.getLogger(__name__)

VISITOR_KEY = "alert_engine.signin.visitor"
SIGNIN_PATH = "/signin"
SIGNOUT_PATH = "/signout"
# Answered to anonymous visitors too (the pages themselves say what they do for whom).
SIGNIN_PATHS = frozenset({SIGNIN_PATH, LINK_PATH, SIGNOUT_PATH})
# The demo's sign-in link is written to the log again when the sign-in page is opened, at most
# this often.
ANNOUNCE_EVERY_SECONDS = 60.0
# Password checks at once: each takes 64 MiB and tens of milliseconds of CPU (argon2's point), so
# a burst of sign-ins, before the rate limit has counted them, waits instead of taking the
# worker's memory and cores.
CONCURRENT_PASSWORD_CHECKS = 2


@dataclass(frozen=True)
class Visitor:
    member: Member | None
    session: Session
    csrf_token: str
    # The session is new to this response: its cookie is to be set.
    new_session: bool
    # Signed in by the proxy's headers (a sign-out is the proxy's, not ours).
    via_proxy: bool = False


class Gate:
    def __init__(
        self, settings: SigninSettings, redis: Redis, prefix: str, *, base_url: str
    ) -> None:
        """Raises `MembersError` if the members file cannot be used."""
        self.settings = settings
        self.redis = redis
        self.prefix = prefix
        self.base_url = base_url.rstrip("/")
        self.members = Members(settings.members_file) if settings.members_file else None
        self.proxies = TrustedProxies(settings.trusted_proxies)
        self.demo = not settings.configured
        self.limiter = SigninLimiter(
            redis,
            prefix,
            FailureLimit(settings.max_failures, settings.failure_window_seconds),
        )
        self.signed_out = SignedOut(redis, prefix)
        configured = settings.session_secret
        self._secret = configured.get_secret_value().encode() if configured else None
        self._cookies: SessionCookies | None = None
        self._announced_at: float | None = None
        self._password_checks = asyncio.Semaphore(CONCURRENT_PASSWORD_CHECKS)

    @property
    def takes_passwords(self) -> bool:
        return self.members is not None

    async def secret(self) -> bytes:
        if self._secret is None:
            self._secret = await shared_secret(self.redis, self.prefix)
        return self._secret

    async def cookies(self) -> SessionCookies:
        if self._cookies is None:
            self._cookies = SessionCookies(await self.secret(), self.settings.session_hours * 3600)
        return self._cookies

    # ------------------------------------------------------------------ who is asking

    async def visitor(self, request: web.Request) -> Visitor:
        cookies = await self.cookies()
        raw = request.cookies.get(COOKIE_NAME)
        session = cookies.loads(raw) if raw else None
        new_session = session is None
        if session is None:
            session = Session.anonymous()
        member: Member | None = None
        via_proxy = False
        identity = self.proxies.identity(request.remote, request.headers)
        if identity is not None:
            member, via_proxy = self._proxy_member(identity), True
        elif session.member is not None:
            member = self.member(session.member)
            if member is None or await self.signed_out.contains(session.session_id):
                # Signed out, or no longer a member: start again anonymous.
                session, new_session, member = Session.anonymous(), True, None
        token = csrf.csrf_token(await self.secret(), session.session_id)
        return Visitor(member, session, token, new_session, via_proxy)

    def member(self, name: str) -> Member | None:
        """The member of that name who may sign in with a session."""
        if self.demo:
            return DEMO_MEMBER if name == DEMO_MEMBER.name else None
        return self.members.get(name) if self.members is not None else None

    def _proxy_member(self, identity: ProxyIdentity) -> Member:
        if self.members is not None:
            for name in (identity.user, identity.email):
                known = self.members.get(name) if name else None
                if known is not None:
                    return known
        # The proxy vouches for the name (its own allow-list decides who gets through): it
        # need not fit the members file's pattern.
        return Member.model_construct(
            name=identity.user, display_name=identity.user, email=identity.email
        )

    async def csrf_valid(self, visitor: Visitor, token: str) -> bool:
        return csrf.is_valid(await self.secret(), visitor.session.session_id, token)

    # ------------------------------------------------------------------ signing in and out

    async def check_password(self, name: str, password: str) -> Member | None:
        """The member, if the password is theirs. Verified in a thread: argon2 is meant to take
        tens of milliseconds of CPU, which the event loop must not spend."""
        member = self.members.get(name) if self.members is not None else None
        async with self._password_checks:
            if member is None or member.password_hash is None:
                await asyncio.to_thread(verify_unknown, password)
                return None
            matches = await asyncio.to_thread(verify_password, member.password_hash, password)
        return member if matches else None

    async def start_session(self, response: web.StreamResponse, member: Member) -> None:
        await self.set_cookie(response, Session.signed_in(member.name))

    async def set_cookie(self, response: web.StreamResponse, session: Session) -> None:
        cookies = await self.cookies()
        response.set_cookie(
            COOKIE_NAME,
            cookies.dumps(session),
            **cookies.attributes(secure=self.settings.secure_cookies),
        )

    async def sign_out(self, response: web.StreamResponse, visitor: Visitor) -> None:
        cookies = await self.cookies()
        await self.signed_out.add(visitor.session.session_id, cookies.max_age_seconds)
        await self.set_cookie(response, Session.anonymous())

    async def links(self) -> SigninLinks:
        return SigninLinks(await self.secret(), self.redis, self.prefix)

    async def announce_link(self, *, throttled: bool = False) -> None:
        """In the demo: a one-time sign-in link as `demo`, written to the log. `throttled`
        (the sign-in page asks): not again within `ANNOUNCE_EVERY_SECONDS` of the last time the
        page asked."""
        if not self.demo:
            return
        if throttled:
            now = time.monotonic()
            if self._announced_at is not None and now - self._announced_at < ANNOUNCE_EVERY_SECONDS:
                return
            self._announced_at = now
        token = (await self.links()).new_token()
        log.warning(
            "No sign-in is configured (ALERT_ENGINE_SIGNIN_MEMBERS_FILE or "
            "ALERT_ENGINE_SIGNIN_TRUSTED_PROXIES): the internal pages admit only the generated "
            "member 'demo'. Sign in once, within the hour, with %s%s?token=%s",
            self.base_url,
            LINK_PATH,
            token,
        )


def visitor_of(request: object) -> Visitor:
    """The visitor the web guard found for this request (aiohttp's, which Faust's views get)."""
    visitor = request.get(VISITOR_KEY) if isinstance(request, Mapping) else None
    if not isinstance(visitor, Visitor):
        raise RuntimeError("no visitor on the request: is the page behind the web guard?")
    return visitor


def signed_in_member(request: object) -> Member:
    """The member who acts through this request (internal pages only answer signed-in ones)."""
    member = visitor_of(request).member
    if member is None:
        raise RuntimeError("an internal page was reached without a signed-in member")
    return member
