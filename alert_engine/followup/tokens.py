"""Survey links: `<survey id>.<expiry>.<signature>`, HMAC-SHA256 signed.

The token carries only the opaque survey id and when it expires; the customer and the alert stay
in Redis. Single use is enforced where the answer is recorded (a Redis marker set once).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

_SURVEY_ID = re.compile(r"^sv-[A-Za-z0-9_-]{8,64}$")


class TokenProblem(StrEnum):
    FORGED = "forged"
    EXPIRED = "expired"


class InvalidToken(Exception):
    def __init__(self, problem: TokenProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


@dataclass(frozen=True)
class SurveyToken:
    survey_id: str
    expires_at: datetime


def _signature(secret: bytes, message: str) -> str:
    digest = hmac.new(secret, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(secret: bytes, survey_id: str, expires_at: datetime) -> str:
    if not _SURVEY_ID.match(survey_id):
        raise ValueError(f"not a survey id: {survey_id!r}")
    message = f"{survey_id}.{int(expires_at.timestamp())}"
    return f"{message}.{_signature(secret, message)}"


def verify(secret: bytes, token: str, now: datetime | None = None) -> SurveyToken:
    """The token's survey, or `InvalidToken` (forged or tampered with; expired)."""
    survey_id, _, rest = token.partition(".")
    expiry, _, signature = rest.partition(".")
    if not (_SURVEY_ID.match(survey_id) and expiry.isdigit() and len(expiry) <= 12 and signature):
        raise InvalidToken(TokenProblem.FORGED)
    expected = _signature(secret, f"{survey_id}.{expiry}")
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise InvalidToken(TokenProblem.FORGED)
    expires_at = datetime.fromtimestamp(int(expiry), UTC)
    if (now or datetime.now(UTC)) >= expires_at:
        raise InvalidToken(TokenProblem.EXPIRED)
    return SurveyToken(survey_id, expires_at)
