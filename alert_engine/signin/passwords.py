"""Password hashes: argon2id through argon2-cffi, with its default (RFC 9106 low-memory) cost."""

from __future__ import annotations

import secrets
from functools import cache

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()


def hash_password(password: str) -> str:
    """The argon2id hash of `password`, with a random salt, as the members file takes it."""
    return _HASHER.hash(password)


def is_password_hash(text: str) -> bool:
    """Whether `text` is an argon2id hash this module can verify against."""
    if not text.startswith("$argon2id$"):
        return False
    try:
        extract_parameters(text)
    except InvalidHashError:
        return False
    return True


def verify_password(password_hash: str, password: str) -> bool:
    """Whether `password` is the one hashed. CPU-bound (tens of milliseconds): call in a
    thread."""
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def _unknown_member_hash() -> str:
    return _HASHER.hash(secrets.token_urlsafe(32))


def verify_unknown(password: str) -> bool:
    """Spends the time of a verification for a name that is no member (always False): the
    answer's timing does not tell which names are members."""
    verify_password(_unknown_member_hash(), password)
    return False
