"""A signed-in client of a worker's pages, as a browser holds one: the demo, the tests and the
benchmarks read `/stats` and click the outbox page's buttons through it."""

from __future__ import annotations

import http.cookiejar
import json
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alert_engine.signin.passwords import hash_password

CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass(frozen=True)
class Credentials:
    name: str
    password: str
    display_name: str | None = None


def new_credentials(name: str = "devstack", display_name: str | None = None) -> Credentials:
    return Credentials(name, secrets.token_urlsafe(18), display_name)


def write_members_file(path: Path, members: list[Credentials]) -> Path:
    """A members file for these members (JSON, hashes made here)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = [
        {
            "name": member.name,
            "password_hash": hash_password(member.password),
            **({"display_name": member.display_name} if member.display_name else {}),
        }
        for member in members
    ]
    path.write_text(json.dumps({"members": entries}, indent=2))
    return path


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    text: str


class SignedInClient:
    """Keeps its session cookie; signs in at its first request. Redirects are not followed."""

    def __init__(self, base_url: str, credentials: Credentials | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirect
        )
        self._signed_in = False

    def request(
        self,
        path: str,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        sign_in: bool = True,
    ) -> Answer:
        """GET, or POST `form` (URL-encoded, as a browser sends a form)."""
        if sign_in and not self._signed_in and self.credentials is not None:
            self.sign_in()
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(
            self.base_url + path, data=data, headers=dict(headers or {})
        )
        try:
            with self._opener.open(request, timeout=10) as response:
                return Answer(response.status, dict(response.headers), response.read().decode())
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, dict(exc.headers), exc.read().decode("utf-8", "replace"))

    def sign_in(self) -> None:
        assert self.credentials is not None
        page = self.request("/signin", sign_in=False)
        token = csrf_token(page.text)
        answer = self.request(
            "/signin",
            {"csrf": token, "name": self.credentials.name, "password": self.credentials.password},
            sign_in=False,
        )
        if answer.status != 303:
            raise RuntimeError(f"sign-in as {self.credentials.name} answered {answer.status}")
        self._signed_in = True

    def get(self, path: str) -> str:
        """A page's text; raises unless it answered 200."""
        answer = self.request(path)
        if answer.status != 200:
            raise RuntimeError(f"GET {path} answered {answer.status}: {answer.text[:200]}")
        return answer.text

    def get_json(self, path: str) -> Any:
        return json.loads(self.get(path))

    def post_form(self, path: str, form: Mapping[str, str], page: str = "/outbox") -> int:
        """A form of `page` sent with the session's CSRF token: the status."""
        token = csrf_token(self.get(page))
        return self.request(path, {"csrf": token, **form}).status


def csrf_token(page: str) -> str:
    match = CSRF_FIELD.search(page)
    if match is None:
        raise RuntimeError("the page has no form with a CSRF token")
    return match.group(1)
