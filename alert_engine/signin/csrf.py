"""CSRF tokens: every form of the internal pages carries one tied to the visitor's session, and
a POST without the right one is refused (403) before its page sees it.

The token is an HMAC of the session id under the signing secret: nothing to store, good on any
worker, and no use in another session. The session cookie is `SameSite=Lax` and the pages also
refuse a foreign `Origin`; the token is what holds when a browser sends neither.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

FIELD = "csrf"
# For scripts that post JSON rather than a form.
HEADER = "X-CSRF-Token"


def csrf_token(secret: bytes, session_id: str) -> str:
    digest = hmac.new(secret, b"csrf\x00" + session_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def is_valid(secret: bytes, session_id: str, token: str) -> bool:
    return hmac.compare_digest(csrf_token(secret, session_id).encode(), token.encode())
