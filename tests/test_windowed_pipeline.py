"""Windowed rules on the real broker: repartitioning, Faust windowed tables, restarts."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.engine import Engine, encode_all
from tests.factories import rating

pytestmark = pytest.mark.integration

RULE = """\
name: agent-low-average
source: ratings
group_by: agent.id
window: {size: 1h}
aggregates:
  responses: count()
  average: avg(rating)
min_sample: 5
condition: average < 3.0
"""


def test_window_state_and_the_fired_mark_survive_a_worker_restart(stack, unique, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "agent.yaml").write_text(RULE)
    engine = Engine(stack, unique, tmp_path, rules_dir=rules)
    now = datetime.now(UTC).replace(second=0, microsecond=0)

    def ratings(agent: str, scores: list[int], first: int) -> list[bytes]:
        return encode_all(
            [
                rating(
                    id=f"r-{agent}-{first + n}",
                    rating=score,
                    agent={"id": agent},
                    time=(now + timedelta(seconds=first + n)).isoformat(),
                )
                for n, score in enumerate(scores)
            ]
        )

    worker = engine.worker("first").start()
    try:
        # Four low ratings for a-1 (one short of the minimum sample); a-2 alone would not fire.
        engine.produce(engine.kafka.ratings_topic, ratings("a-1", [1, 2, 1, 2], 0))
        engine.produce(engine.kafka.ratings_topic, ratings("a-2", [1], 0))
        time.sleep(3.0)  # let the first worker aggregate and write its changelog
        assert engine.delivered() == []
    finally:
        worker.stop()

    restarted = engine.worker("second").start()
    try:
        # The fifth rating fires only if the first four were recovered from the changelog.
        engine.produce(engine.kafka.ratings_topic, ratings("a-1", [2], 10))
        engine.wait_for(lambda: len(engine.delivered()) >= 1)
        [alert] = engine.delivered()
        assert alert["rule"] == "agent-low-average"
        assert alert["key"] == "a-1"
        assert alert["values"]["responses"] == 5
        assert alert["values"]["average"] == pytest.approx(1.6)
    finally:
        restarted.stop()

    third = engine.worker("third").start()
    try:
        # Already fired in this window: a sixth low rating after another restart stays quiet.
        engine.produce(engine.kafka.ratings_topic, ratings("a-1", [1], 20))
        engine.produce(engine.kafka.ratings_topic, ratings("a-2", [1, 1, 1, 1], 20))
        engine.wait_for(lambda: len(engine.delivered()) >= 2)
        time.sleep(1.0)
        assert sorted(alert["key"] for alert in engine.delivered()) == ["a-1", "a-2"]
    finally:
        third.stop()
