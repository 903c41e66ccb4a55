"""The Host check's parts and its setting, without a worker: what a `Host` header names, and
which names `ALERT_ENGINE_WEB_ALLOWED_HOSTS` takes (refused at load time otherwise)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from alert_engine.settings import WebSettings
from alert_engine.worker.webguard import checks_host, content_security_policy, host_name, parse_form


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("localhost:6066", "localhost"),
        ("Alerts.Example.", "alerts.example"),
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]:8080", "::1"),
        ("[0:0::1]", "::1"),
        ("evil.example:6066", "evil.example"),
        # Not plain host[:port]: a user part, a path, a bad port, IPv6 without brackets.
        ("evil.example@localhost", None),
        ("localhost/x", None),
        ("localhost:http", None),
        ("::1", None),
        ("[evil]", None),
        ("", None),
        (None, None),
    ],
)
def test_a_host_header_names_one_host(header: str | None, name: str | None) -> None:
    assert host_name(header) == name


def test_the_allowed_hosts_come_from_a_comma_separated_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALERT_ENGINE_WEB_ALLOWED_HOSTS", " Alerts.Example , [::1],10.0.0.7,")
    settings = WebSettings()
    assert settings.allowed_hosts == ("alerts.example", "::1", "10.0.0.7")
    assert settings.host_names == {"localhost", "127.0.0.1", "::1", "alerts.example", "10.0.0.7"}
    monkeypatch.delenv("ALERT_ENGINE_WEB_ALLOWED_HOSTS")
    # Listening on every address names no host of its own.
    assert WebSettings(host="0.0.0.0").host_names == {"localhost", "127.0.0.1", "::1"}
    assert "10.1.2.3" in WebSettings(host="10.1.2.3").host_names


@pytest.mark.parametrize("value", ["alerts.example:8443", "http://alerts.example", "a b", "-x"])
def test_an_allowed_host_that_is_not_a_name_is_refused_at_load_time(value: str) -> None:
    with pytest.raises(ValidationError, match="allowed_hosts"):
        WebSettings(allowed_hosts=value)


def test_probes_and_signed_requests_answer_under_any_host() -> None:
    assert not any(map(checks_host, ["/health", "/ready", "/metrics", "/slack/interactions"]))
    assert not checks_host("/survey/abc")
    assert all(map(checks_host, ["/outbox", "/outbox/act", "/dashboard", "/stats", "/table/"]))


def test_the_policy_lists_each_inline_script_by_hash() -> None:
    assert "script-src" not in content_security_policy()
    policy = content_security_policy(["alert(1)"])
    # sha256("alert(1)"), base64: the hash browsers compute for <script>alert(1)</script>.
    assert "script-src 'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='" in policy


@pytest.mark.parametrize(
    ("body", "form"),
    [
        (b"a=1&b=x+y&b=%C3%A9", {"a": "1", "b": "é"}),
        (b"a=", {"a": ""}),
        (b"a=\xff", None),
        (b"a=%ff", None),
        (b"&".join([b"x=1"] * 51), None),
    ],
)
def test_a_form_is_url_encoded_utf8_or_none(body: bytes, form: dict[str, str] | None) -> None:
    assert parse_form(body) == form
