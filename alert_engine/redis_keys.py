"""Every Redis key the engine writes, in one place."""

from __future__ import annotations


def delivered(prefix: str, alert_id: str, destination: str) -> str:
    """Set once an alert reached a destination; delivery skips what is already there."""
    return f"{prefix}:delivered:{alert_id}:{destination}"


def attempted(prefix: str, alert_id: str, destination: str) -> str:
    """Set before each send: found without `delivered`, a send may have happened unrecorded."""
    return f"{prefix}:attempted:{alert_id}:{destination}"
