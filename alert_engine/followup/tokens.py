"""Survey links: the survey id and the link's expiry, signed by itsdangerous.

The token carries only the opaque survey id and when it expires; the customer and the alert stay
in Redis. Single use is enforced where the answer is recorded (a Redis marker set once).

Signing is HMAC-SHA256 with a key derived for survey links only (`SALT`), so a signature made with
the same secret for any other purpose never passes as a survey link. The expiry is in the signed
payload rather than itsdangerous' timestamp: each link keeps the expiry its email states, whatever
`token_ttl_seconds` says later, and the service's clock decides when it has passed.

Links sent before this format (`<survey id>.<expiry>.<signature>`, a hand-made HMAC) are still in
customers' inboxes: `verify` accepts them until their own expiry, `sign` no longer makes them.
Once `token_ttl_seconds` has passed since every worker runs this code, `_verify_legacy` can go.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from itsdangerous import BadData, URLSafeSerializer

from alert_engine.problems import AlertEngineError

SALT = "alert-engine.followup.survey-link"
# Generous for `{"survey": <id of up to 67 characters>, "expires": <12 digits>}` and its signature;
# anything longer is refused before it is decoded.
MAX_TOKEN_CHARS = 400
_MAX_EXPIRY = 10**12 - 1

_SURVEY_ID = re.compile(r"^sv-[A-Za-z0-9_-]{8,64}$")
_LEGACY = re.compile(r"^(sv-[A-Za-z0-9_-]{8,64})\.([0-9]{1,12})\.([A-Za-z0-9_-]{1,100})$")


class TokenProblem(StrEnum):
    FORGED = "forged"
    EXPIRED = "expired"


class InvalidToken(AlertEngineError):
    def __init__(self, problem: TokenProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


@dataclass(frozen=True)
class SurveyToken:
    survey_id: str
    expires_at: datetime


@lru_cache(maxsize=8)
def _serializer(secret: bytes) -> URLSafeSerializer:
    return URLSafeSerializer(
        secret,
        salt=SALT,
        signer_kwargs={"digest_method": hashlib.sha256, "key_derivation": "hmac"},
    )


def sign(secret: bytes, survey_id: str, expires_at: datetime) -> str:
    if not _SURVEY_ID.match(survey_id):
        raise ValueError(f"not a survey id: {survey_id!r}")
    payload = {"survey": survey_id, "expires": int(expires_at.timestamp())}
    token: str = _serializer(secret).dumps(payload)
    return token


def verify(secret: bytes, token: str, now: datetime | None = None) -> SurveyToken:
    """The token's survey, or `InvalidToken` (forged or tampered with; expired)."""
    legacy = _LEGACY.match(token)
    if legacy is not None:
        survey_id, expiry = _verify_legacy(secret, legacy)
    else:
        survey_id, expiry = _verify_signed(secret, token)
    expires_at = datetime.fromtimestamp(expiry, UTC)
    if (now or datetime.now(UTC)) >= expires_at:
        raise InvalidToken(TokenProblem.EXPIRED)
    return SurveyToken(survey_id, expires_at)


def _verify_signed(secret: bytes, token: str) -> tuple[str, int]:
    if not token.isascii() or len(token) > MAX_TOKEN_CHARS:
        raise InvalidToken(TokenProblem.FORGED)
    try:
        payload: Any = _serializer(secret).loads(token)
    except BadData:
        raise InvalidToken(TokenProblem.FORGED) from None
    # Signed with our key, so written by `sign`; checked anyway, as nothing here may crash.
    survey_id = payload.get("survey") if isinstance(payload, dict) else None
    expiry = payload.get("expires") if isinstance(payload, dict) else None
    if not (
        isinstance(survey_id, str)
        and _SURVEY_ID.match(survey_id)
        and type(expiry) is int
        and 0 <= expiry <= _MAX_EXPIRY
    ):
        raise InvalidToken(TokenProblem.FORGED)
    return survey_id, expiry


def _verify_legacy(secret: bytes, token: re.Match[str]) -> tuple[str, int]:
    """A link in the format sent before itsdangerous: `<id>.<expiry>.<HMAC-SHA256 of both>`."""
    survey_id, expiry, signature = token.groups()
    digest = hmac.new(secret, f"{survey_id}.{expiry}".encode(), hashlib.sha256).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=")
    if not hmac.compare_digest(expected, signature.encode()):
        raise InvalidToken(TokenProblem.FORGED)
    return survey_id, int(expiry)
