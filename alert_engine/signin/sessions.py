"""Sessions: a signed cookie (itsdangerous) naming the member, and the sessions ended early.

The cookie holds a random session id, the member's name (none before sign-in: the login form's
CSRF token is tied to that anonymous session too) and is signed with a timestamp, so a session
ends `session_hours` after sign-in whatever the browser keeps. Signing out records the session
id in Redis until then: a copied cookie does not outlive the sign-out.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from redis.asyncio import Redis

from alert_engine.storage import redis_keys

COOKIE_NAME = "alert_engine_session"
_SALT = "alert-engine.signin.session"


@dataclass(frozen=True)
class Session:
    session_id: str
    # The signed-in member's name; None before sign-in.
    member: str | None

    @classmethod
    def anonymous(cls) -> Session:
        return cls(secrets.token_urlsafe(18), None)

    @classmethod
    def signed_in(cls, member: str) -> Session:
        """A new session id at sign-in: one planted in the browser before does not carry over."""
        return cls(secrets.token_urlsafe(18), member)


class SessionCookies:
    """Writes and reads the session cookie's value."""

    def __init__(self, secret: bytes, max_age_seconds: float) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt=_SALT)
        self.max_age_seconds = max_age_seconds

    def dumps(self, session: Session) -> str:
        value: str = self._serializer.dumps({"s": session.session_id, "m": session.member})
        return value

    def loads(self, value: str) -> Session | None:
        """The session, or None for a value that is forged, expired or not one of ours."""
        try:
            payload: Any = self._serializer.loads(value, max_age=int(self.max_age_seconds))
        except (BadSignature, ValueError, TypeError):
            return None
        if not isinstance(payload, dict):
            return None
        session_id, member = payload.get("s"), payload.get("m")
        if not isinstance(session_id, str) or not (member is None or isinstance(member, str)):
            return None
        return Session(session_id, member)

    def attributes(self, *, secure: bool) -> dict[str, Any]:
        """The cookie's attributes (aiohttp's `set_cookie` arguments)."""
        return {
            "max_age": int(self.max_age_seconds),
            "path": "/",
            "httponly": True,
            "samesite": "Lax",
            "secure": secure,
        }


class SignedOut:
    """Session ids signed out before their end, in Redis, shared by the workers."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    async def add(self, session_id: str, for_seconds: float) -> None:
        key = redis_keys.signed_out(self.prefix, session_id)
        await self.redis.set(key, "1", px=max(1, int(for_seconds * 1000)))

    async def contains(self, session_id: str) -> bool:
        return bool(await self.redis.exists(redis_keys.signed_out(self.prefix, session_id)))


async def shared_secret(redis: Redis, prefix: str) -> bytes:
    """The signing secret of sessions and sign-in links when none is configured: created once in
    Redis, so a cookie from one worker is good on every other."""
    key = redis_keys.signin_secret(prefix)
    await redis.set(key, secrets.token_urlsafe(32), nx=True)
    value = await redis.get(key)
    assert value is not None
    return value.encode() if isinstance(value, str) else bytes(value)
