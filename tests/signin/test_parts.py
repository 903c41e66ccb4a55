"""The sign-in's parts without a worker: the members file, password hashes, session cookies,
CSRF tokens, the proxy's headers, where a sign-in may lead, the settings, the metrics token and
the `alert-engine members` command."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, cast

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from redis.asyncio import Redis

from alert_engine.cli.main import main
from alert_engine.settings import SigninSettings
from alert_engine.signin import csrf, members
from alert_engine.signin.members import Members, MembersError, load_members
from alert_engine.signin.passwords import hash_password, is_password_hash, verify_password
from alert_engine.signin.proxy import TrustedProxies
from alert_engine.signin.sessions import Session, SessionCookies
from alert_engine.signin.views import HOME, safe_next
from alert_engine.worker.metrics import bearer_token_matches
from alert_engine.worker.webguard import is_public

HASH = hash_password("correct horse battery")


# ---------------------------------------------------------------- passwords


def test_a_password_verifies_against_its_hash_only() -> None:
    assert is_password_hash(HASH) and HASH.startswith("$argon2id$")
    assert verify_password(HASH, "correct horse battery")
    assert not verify_password(HASH, "correct horse battery ")
    assert not verify_password("not a hash", "x")
    # Salted: the same password hashes differently each time.
    assert hash_password("correct horse battery") != HASH


# ---------------------------------------------------------------- the members file


def test_the_members_file_is_read_as_yaml_or_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "members.yaml"
    yaml_file.write_text(
        f"members:\n  - name: Ana\n    display_name: Ana Souza\n    password_hash: '{HASH}'\n"
        "  - name: proxy-only\n"
    )
    found = load_members(yaml_file)
    assert set(found) == {"ana", "proxy-only"}
    assert found["ana"].shown_name == "Ana Souza" and found["ana"].user_id == "member:Ana"
    assert found["proxy-only"].password_hash is None
    json_file = tmp_path / "secret-mounted"  # a Secret's key has no suffix
    json_file.write_text(json.dumps({"members": [{"name": "bo", "password_hash": HASH}]}))
    assert list(load_members(json_file)) == ["bo"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("members:\n  - name: ana\n    password_hash: plain-text\n", "members.0.password_hash"),
        (f"members:\n  - {{name: ana, password_hash: '{HASH}'}}\n  - {{name: ANA}}\n", "twice"),
        ("members:\n  - name: ana\n    role: admin\n", "members.0.role"),
        ("members:\n  - name: 'a b'\n", "members.0.name"),
        ("members: [\n", "not YAML or JSON"),
        ("- ana\n", "file"),
    ],
)
def test_a_members_file_with_a_problem_is_refused_saying_where(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "members.yaml"
    path.write_text(text)
    with pytest.raises(MembersError, match=problem) as raised:
        load_members(path)
    assert str(path) in str(raised.value)
    # The hash itself is never repeated in the message.
    assert HASH not in str(raised.value)


def test_a_missing_members_file_is_refused() -> None:
    with pytest.raises(MembersError, match="cannot read"):
        load_members(Path("/nonexistent/members.yaml"))


def test_a_changed_members_file_is_read_again_and_a_broken_change_keeps_the_old(
    tmp_path: Path,
) -> None:
    path = tmp_path / "members.json"
    path.write_text(json.dumps({"members": [{"name": "ana", "password_hash": HASH}]}))
    now = [0.0]
    loaded = Members(path, clock=lambda: now[0])
    assert loaded.get("ANA") is not None and loaded.get("bo") is None

    path.write_text(json.dumps({"members": [{"name": "bo", "password_hash": HASH}]}))
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert loaded.get("bo") is None  # not looked at again yet
    now[0] += members.RECHECK_SECONDS
    assert loaded.get("bo") is not None and loaded.get("ana") is None  # removed: no member

    path.write_text("members: [")
    os.utime(path, ns=(time.time_ns() + 2 * 10**9, time.time_ns() + 2 * 10**9))
    now[0] += members.RECHECK_SECONDS
    assert loaded.get("bo") is not None


# ---------------------------------------------------------------- sessions and CSRF


def test_a_session_cookie_reads_back_and_a_forged_or_old_one_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cookies = SessionCookies(b"secret-one", max_age_seconds=3600)
    session = Session.signed_in("ana")
    value = cookies.dumps(session)
    assert cookies.loads(value) == session
    assert SessionCookies(b"secret-two", 3600).loads(value) is None
    # One character of the signature changed (a full six bits of it: not the last character).
    assert cookies.loads(value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1]) is None
    assert cookies.loads("garbage") is None and cookies.loads("") is None
    later = time.time() + 3601
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: later)
    assert cookies.loads(value) is None
    attributes = cookies.attributes(secure=True)
    assert attributes["httponly"] and attributes["samesite"] == "Lax" and attributes["secure"]
    assert attributes["max_age"] == 3600


def test_each_sign_in_gets_a_new_session_id() -> None:
    assert Session.signed_in("ana").session_id != Session.signed_in("ana").session_id
    assert Session.anonymous().member is None


def test_a_csrf_token_is_good_for_its_session_only() -> None:
    token = csrf.csrf_token(b"secret", "session-1")
    assert csrf.is_valid(b"secret", "session-1", token)
    assert not csrf.is_valid(b"secret", "session-2", token)
    assert not csrf.is_valid(b"other", "session-1", token)
    assert not csrf.is_valid(b"secret", "session-1", "")


# ---------------------------------------------------------------- the proxy's headers

HEADERS = {"X-Forwarded-User": "ana", "X-Forwarded-Email": "ana@example.com"}


def test_proxy_headers_count_only_from_a_trusted_peer() -> None:
    proxies = TrustedProxies(
        SigninSettings(trusted_proxies="10.0.0.0/8, 192.168.1.7").trusted_proxies
    )
    identity = proxies.identity("10.1.2.3", HEADERS)
    assert identity is not None and (identity.user, identity.email) == ("ana", "ana@example.com")
    assert proxies.identity("::ffff:10.1.2.3", HEADERS) is not None
    assert proxies.identity("192.168.1.7", {"X-Auth-Request-Email": "bo@example.com"}) is not None
    for peer in ("192.168.1.8", "127.0.0.1", None, "not an address"):
        assert proxies.identity(peer, HEADERS) is None, peer
    assert proxies.identity("10.1.2.3", {}) is None
    assert proxies.identity("10.1.2.3", {"X-Forwarded-User": "ana\r\nX: y"}) is None
    assert not TrustedProxies(()).trusts("127.0.0.1")


def test_the_client_address_behind_a_trusted_proxy_is_the_last_untrusted_hop() -> None:
    proxies = TrustedProxies(SigninSettings(trusted_proxies="10.0.0.0/8").trusted_proxies)
    forwarded = {"X-Forwarded-For": "6.6.6.6, 203.0.113.9, 10.0.0.2"}
    assert proxies.client_address("10.0.0.1", forwarded) == "203.0.113.9"
    # From an untrusted peer the header is the client's own word: the peer counts.
    assert proxies.client_address("198.51.100.1", forwarded) == "198.51.100.1"


@pytest.mark.parametrize("value", ["10.0.0.0/33", "proxy.internal", "10.0.0.1:80"])
def test_a_trusted_proxy_that_is_not_an_address_is_refused_at_load_time(value: str) -> None:
    with pytest.raises(ValidationError, match="trusted_proxies"):
        SigninSettings(trusted_proxies=value)


def test_sign_in_is_configured_by_a_members_file_or_proxies() -> None:
    assert not SigninSettings().configured
    assert SigninSettings(members_file="m.yaml").configured
    assert SigninSettings(trusted_proxies="127.0.0.1").configured


# ---------------------------------------------------------------- paths


@given(st.text(max_size=40))
def test_a_sign_in_leads_only_to_a_path_of_this_site(value: str) -> None:
    target = safe_next(value)
    assert target in (HOME, value)
    assert target.startswith("/") and not target.startswith(("//", "/\\"))
    assert not any(ord(c) < 0x21 or c == "\\" for c in target)


@pytest.mark.parametrize(
    "value", ["//evil.example", "/\\evil.example", "https://evil.example", "/x\r\nSet-Cookie: a"]
)
def test_a_next_to_another_site_leads_home(value: str) -> None:
    assert safe_next(value) == HOME


def test_only_slack_surveys_and_probes_are_public() -> None:
    assert all(map(is_public, ["/health", "/ready", "/metrics", "/slack/interactions"]))
    assert is_public("/survey/abc")
    for path in ("/outbox", "/outbox/act", "/dashboard", "/stats", "/console", "/", "/table/"):
        assert not is_public(path), path


# ---------------------------------------------------------------- metrics token


def test_the_metrics_token_is_a_bearer_token() -> None:
    assert bearer_token_matches("Bearer s3cret-token", "s3cret-token")
    assert bearer_token_matches("bearer s3cret-token", "s3cret-token")
    for header in (None, "", "s3cret-token", "Basic s3cret-token", "Bearer s3cret", "Bearer é"):
        assert not bearer_token_matches(header, "s3cret-token"), header


# ---------------------------------------------------------------- the command


def test_members_hash_prints_a_hash_the_worker_takes(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["members", "hash", "--stdin"], input="a long enough pass\n")
    assert result.exit_code == 0, result.output
    printed = result.output.strip()
    assert verify_password(printed, "a long enough pass")
    path = tmp_path / "members.yaml"
    path.write_text(f"members:\n  - name: ana\n    password_hash: '{printed}'\n")
    checked = runner.invoke(main, ["members", "check", str(path)])
    assert checked.exit_code == 0 and "1 member(s)" in checked.output
    short = runner.invoke(main, ["members", "hash", "--stdin"], input="short\n")
    assert short.exit_code != 0 and "at least 12" in short.output


def test_members_hash_asks_twice_without_echo() -> None:
    result = CliRunner().invoke(
        main, ["members", "hash"], input="a long enough pass\na long enough pass\n"
    )
    assert result.exit_code == 0
    assert "a long enough pass" not in result.output
    assert verify_password(result.output.strip().splitlines()[-1], "a long enough pass")


def test_members_check_reports_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "members.yaml"
    path.write_text("members:\n  - name: ana\n    password_hash: nope\n")
    result = CliRunner().invoke(main, ["members", "check", str(path)])
    assert result.exit_code == 2 and "argon2id" in result.output


# ---------------------------------------------------------------- password checks at once


async def test_a_burst_of_sign_ins_checks_at_most_two_passwords_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import threading

    from alert_engine.signin import gate as gate_module
    from alert_engine.signin.gate import CONCURRENT_PASSWORD_CHECKS, Gate

    path = tmp_path / "members.json"
    path.write_text(json.dumps({"members": [{"name": "ana", "password_hash": HASH}]}))
    running, most, lock = [0], [0], threading.Lock()

    def slow_check(password_hash: str, password: str) -> bool:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return password == "correct horse battery"

    monkeypatch.setattr(gate_module, "verify_password", slow_check)
    monkeypatch.setattr(
        gate_module, "verify_unknown", lambda password: slow_check("", "") and False
    )
    # No Redis: a password check never reaches it.
    gate = Gate(
        SigninSettings(members_file=path), redis=cast(Redis, None), prefix="p", base_url="http://x"
    )
    results = await asyncio.gather(
        *(gate.check_password("ana" if n % 2 else "nobody", "guess") for n in range(12)),
        gate.check_password("ANA", "correct horse battery"),
    )
    assert most[0] == CONCURRENT_PASSWORD_CHECKS == 2
    assert results[:-1] == [None] * 12 and results[-1] is not None
    assert results[-1].name == "ana"


def test_a_worker_with_a_broken_members_file_does_not_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "members.yaml"
    path.write_text("members:\n  - name: ana\n    password_hash: plain\n")
    monkeypatch.setenv("ALERT_ENGINE_SIGNIN_MEMBERS_FILE", str(path))
    monkeypatch.setenv("ALERT_ENGINE_RULES_DIR", str(Path(__file__).parents[2] / "rules"))
    result = CliRunner().invoke(main, ["worker"])
    assert result.exit_code == 2
    assert "members.0.password_hash" in result.output and "did not start" in result.output


@pytest.mark.parametrize(
    ("web", "url"),
    [
        ({}, "http://127.0.0.1:6066"),
        ({"host": "0.0.0.0", "port": 8080}, "http://localhost:8080"),
        ({"host": "::1"}, "http://[::1]:6066"),
        (
            {"host": "0.0.0.0", "allowed_hosts": "alerts.internal.example"},
            "http://alerts.internal.example:6066",
        ),
    ],
)
def test_the_demo_link_names_where_an_operator_reaches_the_pages(
    web: dict[str, Any], url: str
) -> None:
    from alert_engine.settings import FollowupSettings, Settings, WebSettings
    from alert_engine.worker.build import pages_url

    settings = Settings(
        web=WebSettings(**web), followup=FollowupSettings(public_url="https://public.example")
    )
    assert pages_url(settings) == url
