import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from itsdangerous import URLSafeSerializer

from alert_engine.followup.tokens import (
    MAX_TOKEN_CHARS,
    InvalidToken,
    TokenProblem,
    sign,
    verify,
)
from tests.followup_factories import legacy_survey_token

SECRET = b"s" * 32
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SURVEY = "sv-abcdefghijklmnop"
OTHER_SURVEY = "sv-zzzzzzzzzzzzzzzz"
EXPIRES = NOW + timedelta(hours=1)


def refused(token: str, now: datetime = NOW, secret: bytes = SECRET) -> TokenProblem:
    with pytest.raises(InvalidToken) as caught:
        verify(secret, token, now)
    return caught.value.problem


def test_a_signed_token_verifies_until_it_expires() -> None:
    token = sign(SECRET, SURVEY, EXPIRES)
    checked = verify(SECRET, token, NOW)
    assert (checked.survey_id, checked.expires_at) == (SURVEY, EXPIRES)
    assert verify(SECRET, token, EXPIRES - timedelta(seconds=1)).survey_id == SURVEY
    assert refused(token, now=EXPIRES) is TokenProblem.EXPIRED


def test_the_token_carries_only_the_survey_id_and_its_expiry() -> None:
    token = sign(SECRET, SURVEY, EXPIRES)
    # Signed, not encrypted: anyone can read it, so it must hold nothing about the customer.
    _, payload = URLSafeSerializer(b"any key").loads_unsafe(token)
    assert payload == {"survey": SURVEY, "expires": int(EXPIRES.timestamp())}
    assert len(token) < 120
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def _reencoded(payload: dict[str, object], signature: str) -> str:
    """`payload` as the token's first part, with another token's signature kept."""
    text = URLSafeSerializer(b"any key").dump_payload(payload).decode()
    return f"{text}.{signature}"


def _tampered() -> list[str]:
    good = sign(SECRET, SURVEY, EXPIRES)
    payload, signature = good.split(".")
    later = int(EXPIRES.timestamp()) + 86400
    other_purpose = URLSafeSerializer(
        SECRET,
        salt="alert-engine.something-else",
        signer_kwargs={"digest_method": hashlib.sha256, "key_derivation": "hmac"},
    ).dumps({"survey": SURVEY, "expires": int(EXPIRES.timestamp())})
    return [
        sign(b"another secret", SURVEY, EXPIRES),  # signed with another key
        other_purpose,  # our key, signed for another purpose
        _reencoded({"survey": OTHER_SURVEY, "expires": int(EXPIRES.timestamp())}, signature),
        _reencoded({"survey": SURVEY, "expires": later}, signature),  # a later expiry
        f"{sign(SECRET, OTHER_SURVEY, EXPIRES).split('.')[0]}.{signature}",  # another survey's
        f"{payload}.{signature[:-2]}AA",
        f"{payload}.",
        payload,
        "",
        "not-a-token",
        f"../{good}",
        good + "A" * MAX_TOKEN_CHARS,
        # The old format: wrong key, a later expiry, no signature.
        legacy_survey_token(b"another secret", SURVEY, EXPIRES),
        legacy_survey_token(SECRET, SURVEY, EXPIRES).replace(
            str(int(EXPIRES.timestamp())), str(later)
        ),
        f"{SURVEY}.{int(EXPIRES.timestamp())}.",
        f"{SURVEY}.-1.{signature}",
    ]


@pytest.mark.parametrize("token", _tampered())
def test_forged_or_tampered_tokens_are_refused(token: str) -> None:
    assert refused(token) is TokenProblem.FORGED


def test_a_token_for_one_survey_never_opens_another() -> None:
    token = sign(SECRET, SURVEY, EXPIRES)
    assert verify(SECRET, token, NOW).survey_id == SURVEY
    assert sign(SECRET, OTHER_SURVEY, EXPIRES) != token


def test_links_sent_in_the_old_format_still_work_until_their_own_expiry() -> None:
    old = legacy_survey_token(SECRET, SURVEY, EXPIRES)
    checked = verify(SECRET, old, NOW)
    assert (checked.survey_id, checked.expires_at) == (SURVEY, EXPIRES)
    assert refused(old, now=EXPIRES) is TokenProblem.EXPIRED
    assert refused(old, secret=b"another secret") is TokenProblem.FORGED
    # New links are only ever made in the new format.
    assert sign(SECRET, SURVEY, EXPIRES).count(".") == 1
    assert not sign(SECRET, SURVEY, EXPIRES).startswith(SURVEY)


@given(
    st.text(max_size=500)
    | st.from_regex(r"\Asv-[A-Za-z0-9_-]{8,70}\.-?[0-9]{0,14}\.[A-Za-z0-9_=-]{0,50}\Z")
    | st.from_regex(r"\A[A-Za-z0-9_=-]{0,120}\.[A-Za-z0-9_=.-]{0,60}\Z")
    | st.from_regex(r"\A\.[A-Za-z0-9_-]{0,120}\.[A-Za-z0-9_-]{0,60}\Z")
)
def test_any_text_is_either_a_valid_token_or_refused_with_a_reason(text: str) -> None:
    try:
        checked = verify(SECRET, text, NOW)
    except InvalidToken as exc:
        assert exc.problem in (TokenProblem.FORGED, TokenProblem.EXPIRED)
    else:  # only if hypothesis found a valid signature, which it cannot without the key
        pytest.fail(f"accepted {text!r} as {checked}")
