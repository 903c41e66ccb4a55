"""Hot reload of the rules directory while a worker runs."""

import asyncio
import itertools
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest

from alert_engine.evaluate import Evaluator
from alert_engine.events import Stream
from alert_engine.rules.load import load_ruleset
from alert_engine.rules.reload import RulesReloader
from devstack.stack import Endpoints
from devstack.workerprocess import WorkerProcess
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


def settle(reloader: RulesReloader) -> bool:
    """What the worker's reload timer sees over two polls: the first hands changed files to the
    loader thread, the next swaps in what it loaded. True if a new rule set is in force."""
    started = reloader.check()
    reloader.wait(timeout=60)
    return reloader.check() or started


def test_a_changed_rule_set_is_swapped_in_and_a_broken_one_refused(tmp_path: Path) -> None:
    rule = tmp_path / "neg.yaml"
    rule.write_text(ONE_STAR)
    evaluator = Evaluator(load_ruleset(tmp_path), max_event_bytes=65536)
    reloader = RulesReloader(tmp_path, evaluator)
    first = evaluator.ruleset.version
    assert not settle(reloader)  # nothing changed

    rewrite(rule, TWO_STARS)
    assert settle(reloader)
    assert evaluator.ruleset.version != first
    assert evaluator.evaluate(Stream.RATINGS, encode(rating(rating=2)))

    second = evaluator.ruleset.version
    rewrite(rule, TWO_STARS.replace("rating <= 2", "rating <="))
    assert not settle(reloader)
    assert evaluator.ruleset.version == second
    assert reloader.problems and "neg.yaml:3:12: condition does not compile" in reloader.problems[0]


def test_a_rule_file_that_overflows_the_parser_is_a_problem_and_the_rules_stay(
    tmp_path: Path,
) -> None:
    rule = tmp_path / "neg.yaml"
    rule.write_text(ONE_STAR)
    evaluator = Evaluator(load_ruleset(tmp_path), max_event_bytes=65536)
    reloader = RulesReloader(tmp_path, evaluator)
    in_force = evaluator.ruleset.version

    # 3,986 negations raised RecursionError in the numeric parser: the worker exited.
    rewrite(rule, ONE_STAR.replace("rating <= 1", "'" + "!" * 3986 + "(rating <= 2)'"))
    assert not settle(reloader)
    assert evaluator.ruleset.version == in_force
    assert evaluator.evaluate(Stream.RATINGS, encode(rating(rating=1)))
    assert reloader.problems == [
        f"{rule}:1:1: cannot load rule file: an expression or document is nested too deeply"
    ]


def many_rules(count: int) -> str:
    return "rules:\n" + "".join(
        f"  - {{name: r{n}, source: ratings,"
        f" condition: \"rating <= 2 && comment.contains('{n}')\"}}\n"
        for n in range(count)
    )


def test_the_event_loop_keeps_running_while_a_slow_rule_file_loads(tmp_path: Path) -> None:
    rule = tmp_path / "neg.yaml"
    rule.write_text(ONE_STAR)
    evaluator = Evaluator(load_ruleset(tmp_path), max_event_bytes=65536)
    reloader = RulesReloader(tmp_path, evaluator)

    async def reload_beside_a_heartbeat() -> tuple[float, float, float]:
        beats: list[float] = []

        async def heartbeat() -> None:
            while True:
                beats.append(time.monotonic())
                await asyncio.sleep(0.005)

        task = asyncio.create_task(heartbeat())
        await asyncio.sleep(0.05)
        rewrite(rule, many_rules(500))  # about a second and a half of parsing and compiling
        started = time.monotonic()
        # The worker's reload timer: a poll, then back to the loop.
        while True:
            polled = time.monotonic()
            if reloader.check():
                break
            await asyncio.sleep(0.01)
            assert time.monotonic() - started < 120, reloader.problems
        swapped = time.monotonic()
        task.cancel()
        # The last poll swapped the loaded rules in, between two events (on the loop, as it
        # must); the loading before it is what must leave the loop running.
        during = [started, *(beat for beat in beats if started < beat < polled), polled]
        return polled - started, max(b - a for a, b in itertools.pairwise(during)), swapped - polled

    loading, longest_stall, swap = asyncio.run(reload_beside_a_heartbeat())
    # Loading on the loop stalled it for the whole load (`/health` waited 19 s on a big file):
    # then the poll that swaps did all the loading, and no poll came before it.
    assert swap < loading, (swap, loading)
    # On the loop, one stall lasts the whole load (a ratio of about 1). Off it, the loading
    # thread still takes the GIL in stretches (the CEL compiler holds it), longer on a busy
    # machine: a bound well under 1 tells the two apart without timing the machine.
    assert longest_stall < loading * 0.75, (longest_stall, loading)
    assert evaluator.ruleset.get("r499") is not None


def test_a_symlink_loop_or_a_dangling_link_is_reported_and_edits_still_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rule = tmp_path / "neg.yaml"
    rule.write_text(ONE_STAR)
    evaluator = Evaluator(load_ruleset(tmp_path), max_event_bytes=65536)
    reloader = RulesReloader(tmp_path, evaluator)
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop)
    dangling = tmp_path / "team" / "gone.yaml"
    dangling.parent.mkdir()
    dangling.symlink_to(tmp_path / "moved.yaml")
    with caplog.at_level(logging.ERROR, logger="alert_engine.rules.reload"):
        settle(reloader)
    expected = [
        f"{loop}:1:1: symlink loop: file skipped",
        f"{dangling}:1:1: symlink to {tmp_path / 'moved.yaml'}, which does not exist: file skipped",
    ]
    # A link made the watcher see nothing at all, silently: no later change was ever loaded.
    assert reloader.problems == expected
    assert all(problem in caplog.text for problem in expected)

    rewrite(rule, TWO_STARS)
    assert settle(reloader)
    assert evaluator.evaluate(Stream.RATINGS, encode(rating(rating=2)))
    assert reloader.problems == expected

    loop.unlink()
    dangling.unlink()
    settle(reloader)
    assert reloader.problems == []


def stats(worker: WorkerProcess) -> dict[str, Any]:
    return worker.stats()


@pytest.mark.integration
def test_a_running_worker_reloads_changed_rules(
    stack: Endpoints, unique: str, tmp_path: Path
) -> None:
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


@pytest.mark.integration
def test_a_running_worker_refuses_hostile_rule_files_and_keeps_reloading(
    stack: Endpoints, unique: str, tmp_path: Path
) -> None:
    from tests.rules.test_yamlsource import billion_laughs

    rules = tmp_path / "rules"
    rules.mkdir()
    rule = rules / "neg.yaml"
    rule.write_text(ONE_STAR)
    engine = Engine(stack, unique, tmp_path, rules_dir=rules)
    engine.env["ALERT_ENGINE_RULES_RELOAD_SECONDS"] = "0.5"
    worker = engine.worker().start()
    try:
        before = stats(worker)["ruleset"]
        (rules / "loop.yaml").symlink_to(rules / "loop.yaml")
        (rules / "gone.yaml").symlink_to(rules / "moved.yaml")
        (rules / "laughs.yaml").write_text(billion_laughs(9))
        engine.wait_for(lambda: len(stats(worker)["ruleset_problems"]) == 3, timeout=20)
        problems = stats(worker)["ruleset_problems"]
        moved = rules / "moved.yaml"
        assert problems[0] == (
            f"{rules / 'gone.yaml'}:1:1: symlink to {moved}, which does not exist: file skipped"
        )
        assert problems[1] == f"{rules / 'loop.yaml'}:1:1: symlink loop: file skipped"
        assert problems[2].startswith(f"{rules / 'laughs.yaml'}:5:36: aliases expand the document")
        assert stats(worker)["ruleset"] == before

        # The hostile file goes, the links stay: an edit still loads and alerts.
        (rules / "laughs.yaml").unlink()
        rewrite(rule, TWO_STARS)
        engine.wait_for(lambda: stats(worker)["ruleset"] != before, timeout=20)
        assert len(stats(worker)["ruleset_problems"]) == 2
        engine.produce(engine.kafka.ratings_topic, encode_all([rating(id="r-two", rating=2)]))
        engine.wait_for(lambda: len(engine.delivered()) >= 1)
        assert [alert["key"] for alert in engine.delivered()] == ["r-two"]
    finally:
        worker.stop()
