"""Every Redis key the engine writes, in one place."""

from __future__ import annotations


def delivered(prefix: str, alert_id: str, destination: str) -> str:
    """Set once an alert reached a destination; delivery skips what is already there."""
    return f"{prefix}:delivered:{alert_id}:{destination}"


def throttle(prefix: str, rule: str, key: str) -> str:
    """Held by the first alert of a rule and key for the throttle period; its value is that
    alert's id, so the same alert redelivered after a crash still goes through."""
    return f"{prefix}:throttle:{rule}:{key}"
