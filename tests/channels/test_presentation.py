"""What a person sees of an alert: a windowed rule's alert is about its group and window."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alert_engine.alerts import Alert
from alert_engine.channels.presentation import AlertView
from alert_engine.channels.slack import alert_blocks
from alert_engine.channels.templates import DEFAULT_TEXT, MessageTemplate
from alert_engine.evaluate import Evaluator
from alert_engine.events import Stream
from alert_engine.rules.load import load_ruleset
from alert_engine.windows.store import MemoryWindowStore
from tests.factories import encode, interaction, rating

RULES = Path(__file__).parents[2] / "rules"
T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def fire(tmp_path: Path, rule: str, stream: Stream, events: list[bytes]) -> list[Alert]:
    directory = tmp_path / "rules"
    directory.mkdir(exist_ok=True)
    shutil.copy(RULES / f"{rule}.yaml", directory)
    evaluator = Evaluator(load_ruleset(directory), max_event_bytes=65536)
    store = MemoryWindowStore(evaluator.ruleset.windows())
    return [alert for raw in events for alert in evaluator.evaluate_all(stream, raw, store)]


def slow_calls(count: int) -> list[bytes]:
    # The returns queue: every call answered after a minute, by agents of several teams.
    return [
        encode(
            interaction(
                id=f"i-{n}",
                queue="returns",
                agent={"id": f"a-{n % 3}", "name": f"Agent {n % 3}"},
                team=["orders", "billing"][n % 2],
                wait_seconds=60.0,
                time=(T0 + timedelta(seconds=30 * n)).isoformat(),
            )
        )
        for n in range(count)
    ]


def test_a_queue_alert_names_the_queue_and_window_not_the_call_that_tipped_it(
    tmp_path: Path,
) -> None:
    [alert] = fire(tmp_path, "queue-service-level", Stream.INTERACTIONS, slow_calls(20))
    view = AlertView.of(alert)
    assert view.title == "queue-service-level [high]: queue returns"
    facts = dict(view.facts())
    assert facts["Group"] == "queue returns"
    assert facts["Window"] == "2026-03-02 14:00-14:30 UTC"
    assert facts["Fired on"] == (
        "answered_in_20s=0, calls=20 (condition: double(answered_in_20s) / double(calls) < 0.7)"
    )
    assert facts["Sample"] == "20 events (min_sample 20)"
    # The 20th call's agent and team are not what the alert is about.
    assert "Agent" not in facts and "Team" not in facts
    assert (view.key, view.window_start, view.window_end) == (
        "returns",
        "2026-03-02T14:00:00+00:00",
        "2026-03-02T14:30:00+00:00",
    )
    text = " ".join(str(block.to_dict()) for block in alert_blocks(view))
    assert "queue returns" in text and "14:00-14:30" in text and "Agent 1" not in text


def test_an_agent_average_alert_is_not_titled_by_one_customers_rating(tmp_path: Path) -> None:
    ratings = [
        encode(
            rating(
                id=f"r-{n}",
                rating=1 + n % 2,
                comment=f"comment {n}",
                customer={"id": f"c-{n}", "name": f"Customer {n}"},
                interaction_id=None,
                time=(T0 + timedelta(minutes=n)).isoformat(),
            )
        )
        for n in range(12)
    ]
    alerts = fire(tmp_path, "agent-low-average", Stream.RATINGS, ratings)
    assert alerts, "the agent's average should have fired"
    view = AlertView.of(alerts[0])
    assert "★" not in view.title and view.title.endswith(": agent a-7")
    assert view.comment is None and view.customer is None and view.stars is None
    assert dict(view.facts())["Agent"] == "Priya Nair"


def test_a_repeat_customer_alert_shows_that_customer(tmp_path: Path) -> None:
    ratings = [
        encode(rating(id=f"r-{n}", rating=1, time=(T0 + timedelta(hours=n)).isoformat()))
        for n in range(3)
    ]
    [alert, *_] = fire(tmp_path, "repeat-negative-customer", Stream.RATINGS, ratings)
    view = AlertView.of(alert)
    assert view.title.endswith(": customer c-1")
    assert view.customer == "Jordan Lee" and view.comment == "Nobody called me back."


def test_the_window_is_shown_in_the_time_zone_the_rule_names(tmp_path: Path) -> None:
    [alert] = fire(tmp_path, "queue-service-level", Stream.INTERACTIONS, slow_calls(20))
    zoned = alert.model_copy(update={"labels": {"timezone": "America/New_York"}})
    assert AlertView.of(zoned).window == "2026-03-02 09:00-09:30 America/New_York"


def test_templates_read_the_group_key_and_window(tmp_path: Path) -> None:
    [alert] = fire(tmp_path, "queue-service-level", Stream.INTERACTIONS, slow_calls(20))
    source = "{{ alert.key }} {{ alert.window_start }} {{ alert.window_end }}"
    rendered = MessageTemplate(source, name="test", html=False).render(AlertView.of(alert))
    assert rendered == "returns 2026-03-02T14:00:00+00:00 2026-03-02T14:30:00+00:00"
    default = MessageTemplate(DEFAULT_TEXT, name="default", html=False).render(AlertView.of(alert))
    assert "Window: 2026-03-02 14:00-14:30 UTC" in default


def test_a_rating_card_says_who_rated_whom_how_and_how_to_reach_the_customer() -> None:
    from tests.factories import make_alert

    at = datetime(2026, 7, 1, 17, 30, tzinfo=UTC)
    customer = {
        "id": "c-1",
        "name": "Jordan Lee",
        "tier": "gold",
        "email": "jordan_lee@example.com",
        "phone": "+33 1 23 45 67 89",
        "timezone": "Europe/Paris",
    }
    alert = make_alert("r-1", at, customer=customer)
    view = AlertView.of(alert)
    assert view.title == "Jordan Lee (gold) rated Priya Nair 1★"
    facts = dict(view.facts())
    assert facts["Email"] == "jordan_lee@example.com"
    assert facts["Phone"] == "+33 1 23 45 67 89"
    # Summer time in Paris: the customer's local time at the rating, with its offset.
    assert facts["Customer's time"] == "19:30 Europe/Paris (UTC+02:00)"
    assert facts["Rated"] == "2026-07-01 17:30 UTC"
    # A team that must not see contact details does not get them, on any channel.
    hidden = dict(AlertView.of(alert, contact=False).facts())
    assert "Email" not in hidden and "Phone" not in hidden
    assert "jordan_lee" not in str(alert_blocks(AlertView.of(alert, contact=False)))
    # Without an agent, or a name, the headline still reads.
    anonymous = make_alert("r-2", at, customer={"id": "c-9"}, agent=None, rating=2)
    assert AlertView.of(anonymous).title == "c-9 rated 2★"
    nobody = make_alert("r-3", at, customer=None, agent=None, rating=2)
    assert AlertView.of(nobody).title == "A customer rated 2★"
    # An unknown zone is left out rather than guessed.
    odd = make_alert("r-4", at, customer={**customer, "timezone": "Mars/Olympus"})
    assert "Customer's time" not in dict(AlertView.of(odd).facts())
