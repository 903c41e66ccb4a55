"""The default without accounts: one generated member, `demo`, signed in by one-time links.

With no members file and no trusted proxy, no page is open: the worker writes a sign-in link to
its log at start (and again, at most once a minute, when someone opens the sign-in page), and
whoever can read the worker's log can sign in once with it, within the hour. This keeps `make
demo` and a first try working without accounts, on any address the worker listens on, without
a default password.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from redis.asyncio import Redis

from alert_engine.signin.members import Member
from alert_engine.storage import redis_keys

DEMO_MEMBER = Member(name="demo", display_name="Demo member")
LINK_PATH = "/signin/link"
LINK_SECONDS = 3600
_SALT = "alert-engine.signin.link"


@dataclass(frozen=True)
class SigninLinks:
    secret: bytes
    redis: Redis
    prefix: str

    def _serializer(self) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.secret, salt=_SALT)

    def new_token(self, member: str = DEMO_MEMBER.name) -> str:
        token: str = self._serializer().dumps({"m": member, "n": secrets.token_urlsafe(12)})
        return token

    async def redeem(self, token: str) -> str | None:
        """The member a link signs in, once: None for a link forged, expired or used."""
        try:
            payload: Any = self._serializer().loads(token, max_age=LINK_SECONDS)
        except (BadSignature, ValueError, TypeError):
            return None
        if not isinstance(payload, dict):
            return None
        member, nonce = payload.get("m"), payload.get("n")
        if not isinstance(member, str) or not isinstance(nonce, str):
            return None
        key = redis_keys.signin_link_used(self.prefix, nonce)
        if not await self.redis.set(key, "1", nx=True, ex=LINK_SECONDS + 60):
            return None
        return member
