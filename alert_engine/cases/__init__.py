"""Cases: what the recovery team does about an alert, and the records of it on the `cases` topic.

`records` holds the models, `lifecycle` the rules (a pure function), `store` the Redis side.
Everything is re-exported here: `from alert_engine.cases import CaseStore` keeps working.
"""

from alert_engine.cases.lifecycle import (
    DEFAULT_REASONS,
    OTHER,
    TRANSITIONS,
    CasePolicy,
    CaseRequest,
    Refusal,
    RefusalReason,
    Transition,
    allowed_actions,
    check_request,
    decide,
    duration_text,
)
from alert_engine.cases.records import (
    ACTION_LABELS,
    CASE_TTL_SECONDS,
    CLOSED,
    FINAL_ACTIONS,
    LABELS,
    NOTE_MAX_CHARS,
    RESOLUTIONS,
    Actor,
    Case,
    CaseAction,
    CaseEvent,
    CaseState,
    HistoryEntry,
    Rerating,
    reason_label,
)
from alert_engine.cases.store import CaseStore

__all__ = [
    "ACTION_LABELS",
    "CASE_TTL_SECONDS",
    "CLOSED",
    "DEFAULT_REASONS",
    "FINAL_ACTIONS",
    "LABELS",
    "NOTE_MAX_CHARS",
    "OTHER",
    "RESOLUTIONS",
    "TRANSITIONS",
    "Actor",
    "Case",
    "CaseAction",
    "CaseEvent",
    "CasePolicy",
    "CaseRequest",
    "CaseState",
    "CaseStore",
    "HistoryEntry",
    "Refusal",
    "RefusalReason",
    "Rerating",
    "Transition",
    "allowed_actions",
    "check_request",
    "decide",
    "duration_text",
    "reason_label",
]
