"""Every Redis key the engine writes, in one place: hot state only (delivery ledger, cases while
they matter, schedules, claims, sign-in). The outcome history is in PostgreSQL
(`alert_engine.history`)."""

from __future__ import annotations


def open_cases(prefix: str) -> str:
    """Sorted set: alert id -> epoch second of its first delivery, while its case is not closed
    (open or claimed); `CaseStore.open_count` reads it for the open-cases gauge."""
    return f"{prefix}:cases:open"


def delivered(prefix: str, alert_id: str, destination: str) -> str:
    """Set once an alert reached a destination; delivery skips what is already there."""
    return f"{prefix}:delivered:{alert_id}:{destination}"


def followup_due(prefix: str) -> str:
    """Sorted set: alert id -> epoch second its follow-up survey is due (or its claim expires)."""
    return f"{prefix}:followup:due"


def followup_payloads(prefix: str) -> str:
    """Hash: alert id -> the scheduled survey (JSON), while it is scheduled."""
    return f"{prefix}:followup:payloads"


def followup_done(prefix: str, alert_id: str) -> str:
    """Set once an alert's follow-up is settled (sent, suppressed, no email): never again."""
    return f"{prefix}:followup:done:{alert_id}"


def followup_suppressed(prefix: str, customer_id: str) -> str:
    """Set (to the alert id) when a customer is sent a survey; expires after the suppression."""
    return f"{prefix}:followup:customer:{customer_id}"


def survey(prefix: str, survey_id: str) -> str:
    """A sent survey (JSON), until its link expires."""
    return f"{prefix}:survey:{survey_id}"


def survey_answered(prefix: str, survey_id: str) -> str:
    """Set when a survey's answer is recorded: its link is used up."""
    return f"{prefix}:survey:{survey_id}:answered"


def token_secret(prefix: str) -> str:
    """The survey-link signing secret, when none is configured: created once, shared."""
    return f"{prefix}:followup:token-secret"


def attempted(prefix: str, alert_id: str, destination: str) -> str:
    """Set before each send: found without `delivered`, a send may have happened unrecorded."""
    return f"{prefix}:attempted:{alert_id}:{destination}"


def case(prefix: str, alert_id: str) -> str:
    """A hash: the case state of an alert (claimed, resolved...) and who changed it when."""
    return f"{prefix}:case:{alert_id}"


def case_history(prefix: str, alert_id: str) -> str:
    """A list: the case's changes (`HistoryEntry` JSON), oldest first; expires with the case."""
    return f"{prefix}:case-history:{alert_id}"


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


def throttle(prefix: str, rule: str, key: str) -> str:
    """Held by the first alert of a rule and key for the throttle period; its value is that
    alert's id, so the same alert redelivered after a crash still goes through."""
    return f"{prefix}:throttle:{rule}:{key}"


def slack_request(prefix: str, signature: str) -> str:
    """Set when a signed Slack request is taken, while its signature is valid: a replay of it
    changes nothing."""
    return f"{prefix}:slack:request:{signature}"


def signin_secret(prefix: str) -> str:
    """The signing secret of sign-in sessions and links, when none is configured: created once,
    shared."""
    return f"{prefix}:signin:secret"


def signed_out(prefix: str, session_id: str) -> str:
    """Set when a session is signed out; expires when the session would have ended."""
    return f"{prefix}:signin:signed-out:{session_id}"


def signin_failures(prefix: str, kind: str, value: str) -> str:
    """Failed sign-ins of one client address or member name in the current window (a counter
    that expires with the window)."""
    return f"{prefix}:signin:failures:{kind}:{value}"


def signin_link_used(prefix: str, nonce: str) -> str:
    """Set when a one-time sign-in link is used; expires with the link."""
    return f"{prefix}:signin:link-used:{nonce}"
