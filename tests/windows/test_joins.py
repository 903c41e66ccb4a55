"""A rating joined with its interaction, whichever arrives first, within a bounded time."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alert_engine.evaluate import Evaluator
from alert_engine.events import Stream
from alert_engine.rules.load import RulesetError, load_ruleset
from alert_engine.windows.store import MemoryWindowStore
from tests.factories import encode, interaction, rating

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RULE = """\
name: low-rating-after-hard-call
source: ratings
condition: rating <= 2
join:
  within: 2h
  condition: interaction.hold_seconds > 300.0 || interaction.transfers >= 3
"""


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


# What the fixture hands a test: feed one event and get the keys of the alerts it raised, and the
# evaluator and store behind it for a test that looks closer.
Feed = Callable[[Stream, dict[str, Any]], list[str]]
Joined = tuple[Feed, Evaluator, MemoryWindowStore]


@pytest.fixture
def engine(tmp_path: Path) -> Joined:
    (tmp_path / "join.yaml").write_text(RULE)
    ruleset = load_ruleset(tmp_path)
    evaluator = Evaluator(ruleset, max_event_bytes=65536)
    store = MemoryWindowStore(ruleset.windows())

    def feed(stream: Stream, event: dict[str, Any]) -> list[str]:
        return [a.key for a in evaluator.evaluate_all(stream, encode(event), store)]

    return feed, evaluator, store


def test_a_low_rating_after_its_hard_interaction_alerts(engine: Joined) -> None:
    feed, _, _ = engine
    assert feed(Stream.INTERACTIONS, interaction(id="i-1", hold_seconds=600, time=at(0))) == []
    assert feed(Stream.RATINGS, rating(id="r-1", rating=1, interaction_id="i-1", time=at(30))) == [
        "r-1"
    ]


def test_the_interaction_may_arrive_after_the_rating(engine: Joined) -> None:
    feed, evaluator, store = engine
    assert feed(Stream.RATINGS, rating(id="r-2", rating=2, interaction_id="i-2", time=at(30))) == []
    [alert] = evaluator.evaluate_all(
        Stream.INTERACTIONS, encode(interaction(id="i-2", transfers=4, time=at(0))), store
    )
    assert alert.key == "r-2"
    assert alert.values["interaction"]["transfers"] == 4
    assert alert.values["rating"] == 2


def test_an_easy_interaction_a_good_rating_or_too_far_apart_raise_nothing(engine: Joined) -> None:
    feed, _, _ = engine
    feed(Stream.INTERACTIONS, interaction(id="i-3", hold_seconds=10, transfers=0, time=at(0)))
    assert feed(Stream.RATINGS, rating(id="r-3", rating=1, interaction_id="i-3", time=at(5))) == []
    feed(Stream.INTERACTIONS, interaction(id="i-4", hold_seconds=900, time=at(0)))
    assert feed(Stream.RATINGS, rating(id="r-4", rating=5, interaction_id="i-4", time=at(5))) == []
    feed(Stream.INTERACTIONS, interaction(id="i-5", hold_seconds=900, time=at(0)))
    assert (
        feed(Stream.RATINGS, rating(id="r-5", rating=1, interaction_id="i-5", time=at(180))) == []
    )


def test_join_rules_are_checked_at_load(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(RULE.replace("interaction.transfers", "transfers"))
    with pytest.raises(RulesetError, match="join condition reads transfers"):
        load_ruleset(tmp_path)
    (tmp_path / "bad.yaml").write_text(RULE.replace("source: ratings", "source: interactions"))
    with pytest.raises(RulesetError, match="join is for ratings rules"):
        load_ruleset(tmp_path)


def test_a_join_rule_may_call_a_function_no_other_rule_calls(tmp_path: Path) -> None:
    (tmp_path / "join.yaml").write_text(
        RULE.replace("condition: rating <= 2", "condition: sentiment(comment) < -0.3")
    )
    ruleset = load_ruleset(tmp_path)
    evaluator = Evaluator(ruleset, max_event_bytes=65536)
    store = MemoryWindowStore(ruleset.windows())
    evaluator.evaluate_all(
        Stream.INTERACTIONS, encode(interaction(id="i-1", transfers=4, time=at(0))), store
    )
    comment = "This was terrible and awful, I hate it"
    [alert] = evaluator.evaluate_all(
        Stream.RATINGS,
        encode(rating(id="r-1", interaction_id="i-1", comment=comment, time=at(5))),
        store,
    )
    assert alert.rule == "low-rating-after-hard-call"
    assert evaluator.stats.rule_misses["low-rating-after-hard-call"] == 0
