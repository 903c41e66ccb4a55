"""Acting on a case from a web page (the console's case page, the outbox page): who acts (the
signed-in member), which actions a case offers now, what its history reads as, and taking an
action: through the same `CaseStore.attempt` as Slack, published on the `cases` topic and shown
on the alert's Slack card and thread.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from alert_engine.cases import (
    ACTION_LABELS,
    Actor,
    Case,
    CaseAction,
    CaseEvent,
    CasePolicy,
    CaseRequest,
    CaseStore,
    Refusal,
    allowed_actions,
)
from alert_engine.cases.lifecycle import epoch_ms
from alert_engine.signin.demo import DEMO_MEMBER
from alert_engine.signin.gate import Gate, signed_in_member
from alert_engine.signin.members import Member

PublishCase = Callable[[CaseEvent], Awaitable[None]]
# An alert's id, as the engine makes them: what a page's path or form may name.
ALERT_ID = re.compile(r"^al-[0-9a-f]{1,64}$")
# The members a case can be assigned to (those of the members file, as it is now).
TeamMembers = Callable[[], Sequence[Member]]


def team_of(gate: Gate) -> list[Member]:
    """Whom a case can be assigned to: the members file's members (read again when it
    changes); in the demo, its one member; behind a proxy without a file, nobody known (the
    page asks for a name)."""
    if gate.members is not None:
        return gate.members.all()
    return [DEMO_MEMBER] if gate.demo else []


def member_actor(request: object, source: str) -> Actor:
    """Who acts through a web page: the signed-in member (the web guard let only members in)."""
    member = signed_in_member(request)
    return Actor(id=member.user_id, name=member.shown_name, source=source)


def case_actions(case: Case, now: datetime, policy: CasePolicy | None = None) -> set[CaseAction]:
    """The actions the case offers now: those its state allows, Undo only while it can be, and
    (given the policy) Reopen only within its period: what `decide` would take."""
    allowed = allowed_actions(case.state)
    if not case.can_undo(now):
        allowed.discard(CaseAction.UNDO)
    if (
        policy is not None
        and case.closed_at is not None
        and epoch_ms(now) > epoch_ms(case.closed_at) + round(policy.reopen_seconds * 1000)
    ):
        allowed.discard(CaseAction.REOPEN)
    return allowed


def case_buttons(
    case: Case,
    now: datetime,
    leave_out: frozenset[CaseAction] = frozenset(),
    policy: CasePolicy | None = None,
) -> list[tuple[str, str]]:
    """(action, label) of the actions the case offers now, in the lifecycle's order."""
    allowed = case_actions(case, now, policy) - leave_out
    return [(action.value, ACTION_LABELS[action]) for action in CaseAction if action in allowed]


def history_lines(case: Case) -> list[str]:
    """The case's history as a page lists it, oldest first, notes included."""
    alert = case.parsed_alert()
    if alert is None:
        return []
    return [
        f"{entry.at:%Y-%m-%d %H:%M} UTC \u00b7 {entry.event(case.alert_id, alert, case).summary()}"
        for entry in case.history
    ]


@dataclass(frozen=True)
class WebActions:
    """Taking a case action from a web page, as Slack's clicks do."""

    cases: CaseStore
    publish_case: PublishCase
    show_in_slack: PublishCase

    async def take(self, alert_id: str, request: CaseRequest) -> CaseEvent | Refusal:
        """The change, published (durable before this returns) and shown in Slack; or why
        nothing changed."""
        result = await self.cases.attempt(alert_id, request)
        if isinstance(result, Refusal):
            return result
        await self.publish_case(result)
        await self.show_in_slack(result)
        return result
