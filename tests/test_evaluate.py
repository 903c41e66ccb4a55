from datetime import UTC, datetime
from pathlib import Path

import pytest

from alert_engine.alerts import alert_id
from alert_engine.evaluate import Evaluator
from alert_engine.events import EventRejected, Stream
from alert_engine.rules.load import load_ruleset
from tests.factories import encode, interaction, rating

RULES = {
    "negative.yaml": "name: negative-rating\nsource: ratings\ncondition: rating <= 2\n",
    "angry.yaml": (
        "name: angry-comment\nsource: ratings\n"
        "condition: rating == 3 && comment.lowerAscii().contains('rude')\nseverity: medium\n"
    ),
    "wait.yaml": "name: long-wait\nsource: interactions\ncondition: wait_seconds > 60.0\n",
}
FIXED_NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def evaluator(tmp_path: Path) -> Evaluator:
    for name, text in RULES.items():
        (tmp_path / name).write_text(text)
    return Evaluator(load_ruleset(tmp_path), max_event_bytes=65536, clock=lambda: FIXED_NOW)


def test_a_one_star_rating_becomes_an_alert_with_the_values_that_fired_it(
    evaluator: Evaluator,
) -> None:
    [alert] = evaluator.evaluate(Stream.RATINGS, encode(rating(id="r-9", rating=1)))
    assert alert.rule == "negative-rating"
    assert alert.key == "r-9"
    assert alert.values == {"rating": 1}
    assert alert.event["customer"]["name"] == "Jordan Lee"
    assert alert.fired_at == FIXED_NOW
    assert alert.ruleset_version == evaluator.ruleset.version


def test_a_five_star_rating_raises_nothing(evaluator: Evaluator) -> None:
    assert evaluator.evaluate(Stream.RATINGS, encode(rating(rating=5))) == []


def test_the_alert_id_is_the_same_for_the_same_rule_and_event(evaluator: Evaluator) -> None:
    raw = encode(rating(id="r-42", rating=2))
    first = evaluator.evaluate(Stream.RATINGS, raw)[0]
    again = evaluator.evaluate(Stream.RATINGS, raw)[0]
    assert first.id == again.id == alert_id("negative-rating", "r-42")
    assert alert_id("negative-rating", "r-43") != first.id
    assert alert_id("other-rule", "r-42") != first.id


def test_rules_only_see_their_own_stream(evaluator: Evaluator) -> None:
    [alert] = evaluator.evaluate(Stream.INTERACTIONS, encode(interaction(wait_seconds=95)))
    assert alert.rule == "long-wait"
    assert evaluator.evaluate(Stream.INTERACTIONS, encode(interaction(wait_seconds=5))) == []


def test_string_functions_in_conditions(evaluator: Evaluator) -> None:
    [alert] = evaluator.evaluate(Stream.RATINGS, encode(rating(rating=3, comment="RUDE agent")))
    assert alert.rule == "angry-comment"
    assert alert.values == {"comment": "RUDE agent", "rating": 3}


def test_a_missing_field_means_no_match_and_is_counted_not_a_crash(evaluator: Evaluator) -> None:
    # `comment` is optional: null for this event, and the angry-comment rule cannot read it.
    found = evaluator.evaluate(Stream.RATINGS, encode(rating(rating=3, comment=None)))
    assert found == []
    assert evaluator.stats.rule_misses["angry-comment"] == 1


def test_rejected_events_are_counted_by_reason(evaluator: Evaluator) -> None:
    for raw in (b"nope", encode(rating(rating=9)), encode(rating(rating=9))):
        with pytest.raises(EventRejected):
            evaluator.evaluate(Stream.RATINGS, raw)
    assert evaluator.stats.events_rejected == {"not_json": 1, "invalid": 2}
    assert evaluator.stats.events_in["ratings"] == 3


def test_sentiment_scores_comments_and_treats_a_missing_comment_as_neutral(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        "name: negative-comment\nsource: ratings\n"
        "condition: rating == 3 && sentiment(comment) < -0.4\n"
    )
    evaluator = Evaluator(load_ruleset(tmp_path), max_event_bytes=65536)
    angry = rating(id="r-angry", rating=3, comment="Rude, useless agent. Terrible, awful service.")
    fine = rating(id="r-fine", rating=3, comment="It was fine, thanks.")
    empty = rating(id="r-empty", rating=3, comment=None)
    assert [a.key for a in evaluator.evaluate(Stream.RATINGS, encode(angry))] == ["r-angry"]
    assert evaluator.evaluate(Stream.RATINGS, encode(fine)) == []
    assert evaluator.evaluate(Stream.RATINGS, encode(empty)) == []
    assert evaluator.stats.rule_misses["negative-comment"] == 0


def test_a_throttled_rule_puts_its_throttle_key_and_period_on_the_alert(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        "name: negative-rating\nsource: ratings\ncondition: rating <= 2\n"
        "throttle: {period: 1h, key: customer.id}\n"
    )
    evaluator = Evaluator(load_ruleset(tmp_path), max_event_bytes=65536)
    [alert] = evaluator.evaluate(Stream.RATINGS, encode(rating(customer={"id": "c-9"})))
    assert alert.throttle is not None
    assert (alert.throttle.key, alert.throttle.seconds) == ("c-9", 3600.0)


def test_namespaced_extension_functions_work_in_conditions(tmp_path: Path) -> None:
    (tmp_path / "wait.yaml").write_text(
        "name: odd-wait\nsource: interactions\n"
        "condition: math.abs(wait_seconds - handle_seconds) > 100.0 && "
        "sets.contains(['phone', 'chat'], [channel])\n"
    )
    evaluator = Evaluator(load_ruleset(tmp_path), max_event_bytes=65536)
    odd = interaction(wait_seconds=5, handle_seconds=300, channel="phone")
    [alert] = evaluator.evaluate(Stream.INTERACTIONS, encode(odd))
    assert alert.rule == "odd-wait"
    assert evaluator.stats.rule_misses == {}
    usual = interaction(wait_seconds=5, handle_seconds=50, channel="phone")
    assert evaluator.evaluate(Stream.INTERACTIONS, encode(usual)) == []


GUARDED = [
    # Share the guard `rating <= 2`: skipped together when it is false.
    "rating <= 2 && comment.contains('late')",  # no comment: a miss when the guard holds
    "rating <= 2 && customer.tier == 'gold'",
    "rating <= 2",
    "rating <= 2 && nps < 3",  # nps may be null: a miss, or false through `rating <= 2`
    # Other guards, and none.
    "nps >= 9 && rating == 1",
    "comment.contains('late') && rating > 3",  # the guard is not the first operand
    "rating < 3 || nps < 2",
    "customer.tier == 'gold'",
]


def test_rules_skipped_by_a_shared_guard_count_exactly_as_if_each_had_run(tmp_path: Path) -> None:
    import random

    from alert_engine.conditions.expressions import Activation, EvaluationError
    from alert_engine.events import decode_event, event_fields

    (tmp_path / "rules.yaml").write_text(
        "rules:\n"
        + "".join(
            f'  - name: rule-{n}\n    source: ratings\n    condition: "{source}"\n'
            for n, source in enumerate(GUARDED)
        )
    )
    ruleset = load_ruleset(tmp_path)
    evaluator = Evaluator(ruleset, max_event_bytes=65536)
    rng = random.Random(5)
    expected_matches = []
    expected: dict[str, dict[str, int]] = {
        "rule_evaluations": {},
        "rule_matches": {},
        "rule_misses": {},
    }
    found_matches = []
    for n in range(300):
        raw = encode(
            rating(
                id=f"r-{n}",
                rating=rng.randint(1, 5),
                nps=rng.choice([None, 0, 5, 10]),
                comment=rng.choice([None, "so late", "fine"]),
                customer={"id": "c-1", "tier": rng.choice([None, "gold"])},
            )
        )
        found_matches.append(
            [
                m.rule.name
                for m in evaluator.matches(
                    Stream.RATINGS, decode_event(Stream.RATINGS, raw, max_bytes=65536)
                )
            ]
        )
        # Each rule's condition run on its own, as CEL decides it.
        event = decode_event(Stream.RATINGS, raw, max_bytes=65536)
        activation = Activation(event_fields(event), ruleset.functions[Stream.RATINGS])
        matched = []
        for rule in ruleset.by_stream[Stream.RATINGS]:
            counts = expected["rule_evaluations"]
            counts[rule.name] = counts.get(rule.name, 0) + 1
            try:
                holds = rule.condition.evaluate(activation)
            except EvaluationError:
                expected["rule_misses"][rule.name] = expected["rule_misses"].get(rule.name, 0) + 1
                continue
            if holds:
                expected["rule_matches"][rule.name] = expected["rule_matches"].get(rule.name, 0) + 1
                matched.append(rule.name)
        expected_matches.append(matched)
    assert found_matches == expected_matches
    stats = evaluator.stats.as_dict()
    assert {name: stats[name] for name in expected} == expected
    # The comparison covers misses and matches of guarded rules, not only skips.
    assert expected["rule_misses"]["rule-0"] and expected["rule_matches"]["rule-0"]
    assert expected["rule_misses"]["rule-5"]
