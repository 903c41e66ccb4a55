"""Every Redis key the engine writes, in one place."""

from __future__ import annotations


def delivered(prefix: str, alert_id: str, destination: str) -> str:
    """Set once an alert reached a destination; delivery skips what is already there."""
    return f"{prefix}:delivered:{alert_id}:{destination}"


def attempted(prefix: str, alert_id: str, destination: str) -> str:
    """Set before each send: found without `delivered`, a send may have happened unrecorded."""
    return f"{prefix}:attempted:{alert_id}:{destination}"


def case(prefix: str, alert_id: str) -> str:
    """A hash: the case state of an alert (claimed, resolved...) and who changed it when."""
    return f"{prefix}:case:{alert_id}"


def escalations_due(prefix: str) -> str:
    """A sorted set: alert ids scored by the time their escalation is due."""
    return f"{prefix}:escalation:due"


def escalation_alerts(prefix: str) -> str:
    """A hash: alert id -> the alert's JSON, for alerts with an escalation pending."""
    return f"{prefix}:escalation:alerts"


def silences(prefix: str) -> str:
    """A hash: silence id -> the silence's JSON (matchers, end time, who and why)."""
    return f"{prefix}:silences"


def inhibiting(prefix: str, rule: int, values: str) -> str:
    """Set, with a time to live, while an alert that mutes others (inhibition rule `rule`) is
    active for these `equal` values."""
    return f"{prefix}:inhibiting:{rule}:{values}"


def groups_due(prefix: str) -> str:
    """A sorted set: group ids scored by the time their digest is due."""
    return f"{prefix}:groups:due"


def group_meta(prefix: str) -> str:
    """A hash: group id -> its route, `group_by` values, destinations and interval (JSON)."""
    return f"{prefix}:groups:meta"


def group_alerts(prefix: str, group_id: str) -> str:
    """A hash: alert id -> alert JSON, the alerts waiting in a group."""
    return f"{prefix}:group:{group_id}:alerts"


def group_sent(prefix: str, group_id: str) -> str:
    """When the group's last digest went out (epoch seconds)."""
    return f"{prefix}:group:{group_id}:sent"
