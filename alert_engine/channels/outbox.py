"""The local outbox: alerts appended to a JSON-lines file, for the demo and for running without
any Slack or email account."""

from __future__ import annotations

import asyncio
import fcntl
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from alert_engine.alerts import Alert
from alert_engine.channels import Digest
from alert_engine.delivery.escalation import is_escalated


class OutboxDestination:
    """Appends each alert once, even across crashes and several workers on one file.

    The delivery ledger in Redis is written after a destination accepts an alert, so a worker
    killed in between would have the alert delivered again. Here the file itself is the record:
    under an exclusive lock, a send first reads what other writers appended since this one last
    looked, and skips an alert id already in the file.
    """

    def __init__(self, path: Path, name: str = "outbox") -> None:
        self.name = name
        self.path = path
        self._seen: set[str] = set()
        self._read_up_to = 0

    async def send(self, alert: Alert) -> None:
        line = orjson.dumps(
            {
                "destination": self.name,
                "delivered_at": datetime.now(UTC).isoformat(),
                "alert": alert.model_dump(mode="json"),
            }
        )
        await asyncio.to_thread(self._append_once, _delivery_id(alert), line + b"\n")

    async def send_digest(self, digest: Digest) -> None:
        line = orjson.dumps(
            {
                "destination": self.name,
                "delivered_at": datetime.now(UTC).isoformat(),
                "digest": {"id": digest.id, "route": digest.route, "group": digest.group},
                "alerts": [alert.model_dump(mode="json") for alert in digest.alerts],
            }
        )
        await asyncio.to_thread(self._append_once, digest.id, line + b"\n")

    def _append_once(self, alert_id: str, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+b") as out:
            fcntl.flock(out, fcntl.LOCK_EX)
            try:
                self._catch_up(out)
                if alert_id in self._seen:
                    return
                # One write of a whole line, so a killed writer leaves no partial line behind.
                out.write(line)
                out.flush()
                self._seen.add(alert_id)
                self._read_up_to = out.tell()
            finally:
                fcntl.flock(out, fcntl.LOCK_UN)

    def _catch_up(self, out: io.BufferedRandom) -> None:
        out.seek(self._read_up_to)
        new = out.read()
        complete = new[: new.rfind(b"\n") + 1]
        for entry in complete.splitlines():
            if entry.strip():
                self._seen.add(_entry_id(orjson.loads(entry)))
        self._read_up_to += len(complete)
        out.seek(0, 2)


def _delivery_id(alert: Alert) -> str:
    # An escalation is a delivery of its own, even of the same alert to the same outbox.
    return f"{alert.id}:escalated" if is_escalated(alert) else alert.id


def _entry_id(entry: dict[str, Any]) -> str:
    """The id an entry was appended once for: its alert's, or its digest's."""
    if "alert" in entry:
        return _delivery_id(Alert.model_validate(entry["alert"]))
    return str(entry["digest"]["id"])


def outbox_alerts(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The alerts of an outbox entry: one, or those of a digest."""
    return [entry["alert"]] if "alert" in entry else list(entry.get("alerts", []))


def read_outbox(path: Path) -> list[dict[str, Any]]:
    """The complete entries: a line still being written (no newline yet) is left for later."""
    if not path.exists():
        return []
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    return [orjson.loads(line) for line in complete.splitlines() if line.strip()]


# Bytes read at a time from the end of the file: a few entries.
_TAIL_CHUNK = 64 * 1024


def read_outbox_tail(path: Path, limit: int) -> list[dict[str, Any]]:
    """The last `limit` complete entries, oldest first, reading only as much of the file's end
    as they take (the outbox only grows). A line that is not JSON is passed over."""
    if limit <= 0:
        return []
    try:
        file = path.open("rb")
    except FileNotFoundError:
        return []
    with file:
        position = file.seek(0, io.SEEK_END)
        data = b""
        while True:
            complete = data[: data.rfind(b"\n") + 1].splitlines()
            # Unless the file's start was read, the first line may be the end of another.
            lines = [line for line in complete[1 if position > 0 else 0 :] if line.strip()]
            if position == 0 or len(lines) >= limit:
                break
            step = min(_TAIL_CHUNK, position)
            position -= step
            file.seek(position)
            data = file.read(step) + data
    entries = []
    for line in lines[-limit:]:
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries
