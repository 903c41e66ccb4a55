"""Hot reload of the rules directory while a worker runs."""

import json
import os
import time
import urllib.request
from pathlib import Path

import pytest

from alert_engine.evaluate import Evaluator
from alert_engine.events import Stream
from alert_engine.reload import RulesReloader
from alert_engine.rules import load_ruleset
from tests.engine import Engine, encode_all
from tests.factories import encode, rating

ONE_STAR = "name: negative-rating\nsource: ratings\ncondition: rating <= 1\n"
TWO_STARS = ONE_STAR.replace("<= 1", "<= 2")
TEAM_PAIR = """\
name: team-pair
source: ratings
group_by: team
window: {size: 2h}
aggregates: {ratings: count()}
min_sample: 1
condition: ratings >= 2
"""


def rewrite(path: Path, text: str) -> None:
    path.write_text(text)
    # Some file systems keep mtimes in whole seconds; the size alone may not change either.
    stamp = time.time_ns() + 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


def test_a_changed_rule_set_is_swapped_in_and_a_broken_one_refused(tmp_path):
    rule = tmp_path / "neg.yaml"
    rule.write_text(ONE_STAR)
    evaluator = Evaluator(load_ruleset(tmp_path), max_event_bytes=65536)
    reloader = RulesReloader(tmp_path, evaluator)
    first = evaluator.ruleset.version
    assert not reloader.check()  # nothing changed

    rewrite(rule, TWO_STARS)
    assert reloader.check()
    assert evaluator.ruleset.version != first
    assert evaluator.evaluate(Stream.RATINGS, encode(rating(rating=2)))

    second = evaluator.ruleset.version
    rewrite(rule, TWO_STARS.replace("rating <= 2", "rating <="))
    assert not reloader.check()
    assert evaluator.ruleset.version == second
    assert reloader.problems and "neg.yaml:3:12: condition does not compile" in reloader.problems[0]


def test_a_rule_file_that_overflows_the_parser_is_a_problem_and_the_rules_stay(tmp_path):
    rule = tmp_path / "neg.yaml"
    rule.write_text(ONE_STAR)
    evaluator = Evaluator(load_ruleset(tmp_path), max_event_bytes=65536)
    reloader = RulesReloader(tmp_path, evaluator)
    in_force = evaluator.ruleset.version

    # 3,986 negations raised RecursionError in the numeric parser: the worker exited.
    rewrite(rule, ONE_STAR.replace("rating <= 1", "'" + "!" * 3986 + "(rating <= 2)'"))
    assert not reloader.check()
    assert evaluator.ruleset.version == in_force
    assert evaluator.evaluate(Stream.RATINGS, encode(rating(rating=1)))
    assert reloader.problems == [
        f"{rule}:1:1: cannot load rule file: an expression or document is nested too deeply"
    ]


def stats(worker) -> dict:
    with urllib.request.urlopen(worker.url + "/stats", timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.integration
def test_a_running_worker_reloads_changed_rules(stack, unique, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    rule = rules / "neg.yaml"
    rule.write_text(ONE_STAR)
    engine = Engine(stack, unique, tmp_path, rules_dir=rules)
    engine.env["ALERT_ENGINE_RULES_RELOAD_SECONDS"] = "0.5"
    worker = engine.worker().start()
    other = engine.worker("other").start()
    try:
        before = stats(worker)["ruleset"]
        rewrite(rule, TWO_STARS)
        engine.wait_for(lambda: stats(worker)["ruleset"] != before, timeout=20)
        # Every worker reads the same files: both end on the same version.
        engine.wait_for(lambda: stats(other)["ruleset"] == stats(worker)["ruleset"], timeout=20)
        engine.produce(engine.kafka.ratings_topic, encode_all([rating(id="r-two", rating=2)]))
        engine.wait_for(lambda: len(engine.delivered()) >= 1)

        after = stats(worker)["ruleset"]
        rewrite(rule, "name: [broken\n")
        engine.wait_for(lambda: stats(worker)["ruleset_problems"] != [], timeout=20)
        assert stats(worker)["ruleset"] == after
        engine.produce(engine.kafka.ratings_topic, encode_all([rating(id="r-two-again", rating=2)]))
        engine.wait_for(lambda: len(engine.delivered()) >= 2)
        assert sorted(alert["key"] for alert in engine.delivered()) == ["r-two", "r-two-again"]
        assert stats(other)["ruleset"] == after

        # A windowed rule of a window shape no rule used before: taken live, no restart.
        rewrite(rule, TWO_STARS)
        rewrite(rules / "team.yaml", TEAM_PAIR)
        engine.wait_for(lambda: stats(worker)["ruleset"] != after, timeout=20)
        engine.wait_for(lambda: stats(other)["ruleset"] == stats(worker)["ruleset"], timeout=20)
        assert stats(worker)["ruleset_problems"] == []
        engine.produce(
            engine.kafka.ratings_topic,
            encode_all([rating(id=f"r-team-{n}", rating=4, team="returns") for n in range(2)]),
        )
        engine.wait_for(lambda: any(a["rule"] == "team-pair" for a in engine.delivered()))
        assert [a["key"] for a in engine.delivered() if a["rule"] == "team-pair"] == ["returns"]
    finally:
        other.stop()
        worker.stop()
