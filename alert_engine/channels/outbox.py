"""The local outbox: alerts appended to a JSON-lines file, for the demo and for running without
any Slack or email account."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from alert_engine.alerts import Alert
from alert_engine.channels import Digest


class OutboxDestination:
    def __init__(self, path: Path, name: str = "outbox") -> None:
        self.name = name
        self.path = path

    async def send(self, alert: Alert) -> None:
        line = orjson.dumps(
            {
                "destination": self.name,
                "delivered_at": datetime.now(UTC).isoformat(),
                "alert": alert.model_dump(mode="json"),
            }
        )
        await asyncio.to_thread(self._append, line + b"\n")

    async def send_digest(self, digest: Digest) -> None:
        line = orjson.dumps(
            {
                "destination": self.name,
                "delivered_at": datetime.now(UTC).isoformat(),
                "digest": {"id": digest.id, "route": digest.route, "group": digest.group},
                "alerts": [alert.model_dump(mode="json") for alert in digest.alerts],
            }
        )
        await asyncio.to_thread(self._append, line + b"\n")

    def _append(self, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as out:
            out.write(line)


def outbox_alerts(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The alerts of an outbox entry: one, or those of a digest."""
    return [entry["alert"]] if "alert" in entry else list(entry.get("alerts", []))


def read_outbox(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
