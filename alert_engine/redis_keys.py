"""Every Redis key the engine writes, in one place."""

from __future__ import annotations


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


def outcome(prefix: str, alert_id: str) -> str:
    """Hash: the facts of one alert's case, for the outcome figures."""
    return f"{prefix}:outcome:{alert_id}"


def outcome_index(prefix: str) -> str:
    """Set of the alert ids that have outcome facts."""
    return f"{prefix}:outcomes"
