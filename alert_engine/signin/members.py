"""The members who may sign in, and the file that lists them.

```yaml
members:
  - name: ana                  # what she types to sign in; letters, digits, . _ @ -
    display_name: Ana Souza    # shown as who acted (optional; the name otherwise)
    email: ana@example.com     # optional
    password_hash: $argon2id$v=19$m=65536,t=3,p=4$...   # `alert-engine members hash`
    slack_user: U0ANA          # optional: her Slack clicks act as her
```

JSON with the same shape works too, so a Kubernetes Secret mounted as a file does. The file is
checked when the worker starts (a problem stops it, with the member and field at fault) and read
again when it changes, as a mounted Secret does in place; a changed file with a problem is
reported and the members already loaded stay in force.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from alert_engine.problems import AlertEngineError
from alert_engine.signin.passwords import is_password_hash

log = logging.getLogger(__name__)

MemberName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")]
# A Slack user id (`U0ANA`; `W...` on Enterprise Grid), as Slack's clicks carry it.
SlackUserId = Annotated[str, StringConstraints(pattern=r"^[UW][A-Z0-9]{2,20}$")]
# A mounted Secret changes within a minute or so; a stat per few seconds costs nothing.
RECHECK_SECONDS = 5.0
MAX_FILE_BYTES = 1024 * 1024


class Member(BaseModel):
    """Someone who may open the internal pages and act on cases."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: MemberName
    display_name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=80)] | None = (
        None
    )
    email: Annotated[str, StringConstraints(max_length=254)] | None = None
    # None: a member who signs in through the proxy or a sign-in link, never with a password.
    password_hash: str | None = Field(default=None, repr=False)
    # Her Slack user: a click in Slack by that user acts as this member.
    slack_user: SlackUserId | None = None

    @field_validator("password_hash")
    @classmethod
    def _argon2(cls, value: str | None) -> str | None:
        if value is not None and not is_password_hash(value):
            raise ValueError("not an argon2id hash: make one with `alert-engine members hash`")
        return value

    @property
    def shown_name(self) -> str:
        """The name shown as who acted."""
        return self.display_name or self.name

    @property
    def user_id(self) -> str:
        """The member as recorded on a case's changes."""
        return f"member:{self.name}"


class MembersFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    members: list[Member]

    @field_validator("members")
    @classmethod
    def _unique_names(cls, members: list[Member]) -> list[Member]:
        seen: set[str] = set()
        slack_users: dict[str, str] = {}
        for member in members:
            if member.name.lower() in seen:
                raise ValueError(f"member {member.name!r} is listed twice")
            seen.add(member.name.lower())
            if member.slack_user is not None:
                if member.slack_user in slack_users:
                    raise ValueError(
                        f"slack_user {member.slack_user} is both "
                        f"{slack_users[member.slack_user]!r} and {member.name!r}"
                    )
                slack_users[member.slack_user] = member.name
        return members


class MembersError(AlertEngineError, ValueError):
    """The members file cannot be used; the message says where and why."""


def load_members(path: Path) -> dict[str, Member]:
    """The file's members by lower-cased name. Raises `MembersError`."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise MembersError(f"{path}: cannot read the members file: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise MembersError(f"{path}: over {MAX_FILE_BYTES} bytes: not a members file")
    document = _parse(path, raw)
    try:
        members = MembersFile.model_validate(document).members
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'file'}: {error['msg']}"
            for error in exc.errors()
        )
        raise MembersError(f"{path}: {problems}") from None
    return {member.name.lower(): member for member in members}


def _parse(path: Path, raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MembersError(f"{path}: not UTF-8 text") from None
    try:
        if path.suffix == ".json" or text.lstrip().startswith("{"):
            return json.loads(text)
        return yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise MembersError(f"{path}: not YAML or JSON: {exc}") from None


class Members:
    """The members of a file, read again when the file changes."""

    def __init__(self, path: Path, clock: Any = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._members: Mapping[str, Member] = load_members(path)
        self._stamp = self._file_stamp()
        self._checked = clock()

    def get(self, name: str) -> Member | None:
        self._reload_if_changed()
        return self._members.get(name.lower())

    def by_slack_user(self, user_id: str) -> Member | None:
        """The member whose Slack user this is, if one is mapped."""
        self._reload_if_changed()
        return next((m for m in self._members.values() if m.slack_user == user_id), None)

    def all(self) -> list[Member]:
        """Every member, by name (the console's choice of whom to assign a case to)."""
        self._reload_if_changed()
        return sorted(self._members.values(), key=lambda member: member.name.lower())

    def __len__(self) -> int:
        return len(self._members)

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def _reload_if_changed(self) -> None:
        now = self._clock()
        if now - self._checked < RECHECK_SECONDS:
            return
        self._checked = now
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            self._members = load_members(self.path)
        except MembersError as exc:
            log.error("the changed members file cannot be used (the old members stay): %s", exc)
            return
        log.info("members file %s read again: %d member(s)", self.path, len(self._members))
