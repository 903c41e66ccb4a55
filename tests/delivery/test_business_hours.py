"""Business hours on routes: working time and holidays from the routing file's `time_intervals`,
inherited down the tree, and escalation timers that run in them."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from alert_engine.channels.outbox import OutboxDestination
from alert_engine.delivery.deliverer import Deliverer, DeliveryLedger
from alert_engine.delivery.escalation import Escalations
from alert_engine.routing import RoutingError, load_routing
from tests.factories import make_alert

LONDON = ZoneInfo("Europe/London")

ROUTES = """\
time_intervals:
  - name: office
    time_intervals:
      - weekdays: ['monday:friday']
        times: [{start_time: '09:00', end_time: '18:00'}]
        location: Europe/London
  - name: christmas
    time_intervals:
      - {months: [december], days_of_month: ['25:26'], location: Europe/London}
destinations:
  outbox: {type: outbox}
route:
  destinations: [outbox]
  business_hours: [office]
  holidays: [christmas]
  sla: {claim: 30m, resolve: 4h}
  routes:
    - name: orders
      matchers: ["team = orders"]
    - name: night-desk
      matchers: ["team = billing"]
      business_hours: []
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    return path


def test_routes_inherit_working_time_and_sla_and_may_turn_it_off(tmp_path: Path) -> None:
    routing = load_routing(write(tmp_path, ROUTES))
    friday_evening = datetime(2026, 12, 4, 18, 55, tzinfo=LONDON)
    calendar, sla = routing.working_time(make_alert(team="orders"))
    assert calendar is not None and sla is not None
    assert sla.claim == timedelta(minutes=30) and sla.resolve == timedelta(hours=4)
    assert calendar.add(friday_evening, timedelta(minutes=30)) == datetime(
        2026, 12, 7, 9, 30, tzinfo=LONDON
    )
    assert routing.working_time(make_alert(team="billing"))[0] is None  # around the clock


@pytest.mark.parametrize(
    ("change", "line", "message"),
    [
        (
            ("business_hours: [office]", "business_hours: [offce]"),
            14,
            "unknown time interval(s) offce",
        ),
        (("holidays: [christmas]", "holidays: [xmas]"), 15, "unknown time interval(s) xmas"),
        (("['monday:friday']", "['monday:fryday']"), 4, "'fryday' is not a weekday"),
        (
            ("location: Europe/London\n  - name", "location: Europe/Londn\n  - name"),
            6,
            "unknown time zone",
        ),
        (("sla: {claim: 30m", "sla: {claim: soon"), 16, "not a valid duration string: 'soon'"),
    ],
)
def test_a_routing_file_with_unreadable_working_time_is_refused_with_its_line(
    tmp_path: Path, change: tuple[str, str], line: int, message: str
) -> None:
    with pytest.raises(RoutingError) as caught:
        load_routing(write(tmp_path, ROUTES.replace(*change, 1)))
    [problem] = caught.value.problems
    assert problem.location.line == line, problem
    assert message in problem.message


async def test_an_escalation_timer_runs_in_the_routes_working_time(
    redis: Redis, unique: str, tmp_path: Path
) -> None:
    routing = load_routing(write(tmp_path, ROUTES))
    escalations = Escalations(redis, f"test-{unique}")
    deliverer = Deliverer(
        {"outbox": OutboxDestination(tmp_path / "outbox.jsonl")},
        DeliveryLedger(redis, f"test-{unique}"),
        routing=routing,
        escalations=escalations,
        escalate_after=lambda alert: timedelta(minutes=30),
    )
    friday_evening = datetime(2026, 12, 4, 18, 55, tzinfo=LONDON)
    await deliverer.deliver(make_alert("r-orders", friday_evening, team="orders"))
    await deliverer.deliver(make_alert("r-billing", friday_evening, team="billing"))
    monday = datetime(2026, 12, 7, 9, 30, tzinfo=LONDON)
    # Not at 19:25 on Friday: the orders team is home until Monday.
    [billing] = await escalations.take_due(friday_evening + timedelta(minutes=31))
    assert billing.key == "r-billing"
    await escalations.cancel(billing.id)  # sent, as the timer does
    assert await escalations.take_due(monday - timedelta(seconds=1)) == []
    assert [a.key for a in await escalations.take_due(monday)] == ["r-orders"]


async def test_a_delivered_alert_carries_its_sla_deadlines_in_working_time_onto_the_card(
    redis: Redis, unique: str, tmp_path: Path
) -> None:
    from alert_engine.channels.outbox import read_outbox
    from alert_engine.channels.presentation import AlertView
    from alert_engine.channels.slack import alert_blocks

    routing = load_routing(write(tmp_path, ROUTES))
    outbox = tmp_path / "outbox.jsonl"
    deliverer = Deliverer(
        {"outbox": OutboxDestination(outbox)},
        DeliveryLedger(redis, f"test-{unique}"),
        routing=routing,
    )
    friday_evening = datetime(2026, 12, 4, 18, 55, tzinfo=LONDON)
    await deliverer.deliver(make_alert("r-orders", friday_evening, team="orders"))
    await deliverer.deliver(make_alert("r-billing", friday_evening, team="billing"))
    by_key = {entry["alert"]["key"]: entry["alert"] for entry in read_outbox(outbox)}
    # Claim within 30 working minutes, resolve within 4 working hours: Monday morning.
    assert by_key["r-orders"]["sla"] == {
        "claim_by": "2026-12-07T09:30:00Z",
        "resolve_by": "2026-12-07T13:00:00Z",
    }
    # Around the clock on the night desk: the same SLA in wall-clock time.
    assert by_key["r-billing"]["sla"]["claim_by"] == "2026-12-04T19:25:00Z"

    from alert_engine.alerts import Alert

    view = AlertView.of(Alert.model_validate(by_key["r-orders"]))
    assert ("Claim by", "2026-12-07 09:30 UTC") in view.facts()
    cards = str([block.to_dict() for block in alert_blocks(view)])
    monday = int(datetime(2026, 12, 7, 9, 30, tzinfo=LONDON).timestamp())
    assert f"*Claim by*\\n<!date^{monday}^" in cards
