from datetime import UTC, datetime, timedelta

import pytest

from alert_engine.followup.tokens import InvalidToken, TokenProblem, sign, verify

SECRET = b"s" * 32
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SURVEY = "sv-abcdefghijklmnop"


def test_a_signed_token_verifies_until_it_expires():
    token = sign(SECRET, SURVEY, NOW + timedelta(hours=1))
    assert verify(SECRET, token, NOW).survey_id == SURVEY
    with pytest.raises(InvalidToken) as caught:
        verify(SECRET, token, NOW + timedelta(hours=1))
    assert caught.value.problem is TokenProblem.EXPIRED


def test_the_token_carries_only_the_survey_id_expiry_and_signature():
    token = sign(SECRET, SURVEY, NOW + timedelta(hours=1))
    survey_id, expiry, signature = token.split(".")
    assert (survey_id, int(expiry)) == (SURVEY, int((NOW + timedelta(hours=1)).timestamp()))
    assert len(signature) == 43  # 32 bytes of HMAC-SHA256, base64url without padding


def _tampered() -> list[str]:
    good = sign(SECRET, SURVEY, NOW + timedelta(hours=1))
    survey_id, expiry, signature = good.split(".")
    return [
        sign(b"another secret", SURVEY, NOW + timedelta(hours=1)),  # signed with another key
        f"sv-zzzzzzzzzzzzzzzz.{expiry}.{signature}",  # another survey
        f"{survey_id}.{int(expiry) + 86400}.{signature}",  # a later expiry
        f"{survey_id}.{expiry}.{signature[:-2]}AA",
        f"{survey_id}.{expiry}.",
        f"{survey_id}.{expiry}",
        "",
        "not-a-token",
        f"{survey_id}.-1.{signature}",
        f"../{survey_id}.{expiry}.{signature}",
    ]


@pytest.mark.parametrize("token", _tampered())
def test_forged_or_tampered_tokens_are_refused(token):
    with pytest.raises(InvalidToken) as caught:
        verify(SECRET, token, NOW)
    assert caught.value.problem is TokenProblem.FORGED
