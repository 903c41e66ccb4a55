"""The six example rules of the product brief, as shipped in rules/, on the real broker.

One worker runs the shipped rule set; each test uses its own agents, teams, queues, channels and
customers so the windows of one test never see another test's events.
"""

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack.stack import Endpoints
from tests.engine import RULES_DIR, Engine, encode_all
from tests.factories import interaction, rating

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def engine(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = Engine(
        stack, uuid.uuid4().hex[:10], tmp_path_factory.mktemp("examples"), rules_dir=RULES_DIR
    )
    worker = engine.worker().start()
    try:
        yield engine
    finally:
        worker.stop()


def fired(engine: Engine, rule: str, key: str | None = None) -> list[dict[str, Any]]:
    return [
        alert
        for alert in engine.delivered()
        if alert["rule"] == rule and (key is None or alert["key"] == key)
    ]


def settle(engine: Engine, rule: str, key: str, count: int) -> list[dict[str, Any]]:
    engine.wait_for(lambda: len(fired(engine, rule, key)) >= count)
    time.sleep(1.0)  # anything more would have arrived by now
    return fired(engine, rule, key)


def seconds_ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()


def this_window(size: int, count: int) -> list[str]:
    """`count` times, in order, between the start of the current tumbling window of `size`
    seconds and now: the other tests' events moved their stream's time to now, so the previous
    window may have closed already."""
    now = datetime.now(UTC)
    start = datetime.fromtimestamp(now.timestamp() // size * size, UTC)
    return [(start + (now - start) * n / count).isoformat() for n in range(count)]


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def test_a_one_or_two_star_rating_alerts(engine: Engine) -> None:
    one, four = name("r"), name("r")
    engine.produce(
        engine.kafka.ratings_topic, encode_all([rating(id=four, rating=4), rating(id=one)])
    )
    [alert] = settle(engine, "negative-rating", one, 1)
    assert alert["values"] == {"rating": 1}
    assert fired(engine, "negative-rating", four) == []


def test_a_three_star_rating_with_a_clearly_negative_comment_alerts(engine: Engine) -> None:
    angry, mild, silent = name("r"), name("r"), name("r")
    events = [
        rating(id=mild, rating=3, comment="It was fine I guess."),
        rating(id=silent, rating=3, comment=None),
        rating(id=angry, rating=3, comment="The agent was rude and useless. Terrible service."),
    ]
    engine.produce(engine.kafka.ratings_topic, encode_all(events))
    [alert] = settle(engine, "negative-comment", angry, 1)
    assert alert["values"]["rating"] == 3
    assert fired(engine, "negative-comment", mild) == []
    assert fired(engine, "negative-comment", silent) == []


def test_an_agent_averaging_under_three_over_an_hour_with_five_responses_alerts(
    engine: Engine,
) -> None:
    agent, steady = name("a"), name("a")
    events = (
        [
            rating(id=name("r"), rating=score, agent={"id": agent}, time=seconds_ago(60 - n))
            for n, score in enumerate([3, 2, 4, 2, 3])  # average 2.8
        ]
        + [
            rating(id=name("r"), rating=score, agent={"id": steady}, time=seconds_ago(60 - n))
            for n, score in enumerate([3, 3, 3, 3, 3, 2])  # 2.83 only after the 6th
        ][:5]
    )
    engine.produce(engine.kafka.ratings_topic, encode_all(events))
    [alert] = settle(engine, "agent-low-average", agent, 1)
    assert alert["values"]["responses"] == 5
    assert alert["values"]["average"] == pytest.approx(2.8)
    assert fired(engine, "agent-low-average", steady) == []


def test_more_than_ten_negative_ratings_for_a_team_in_fifteen_minutes_alert(engine: Engine) -> None:
    team = name("team")
    # 11 negatives spread over 10 minutes, with positives in between that do not count.
    events = []
    for n in range(11):
        events.append(
            rating(id=name("r"), rating=1 + n % 2, team=team, time=seconds_ago(600 - n * 55))
        )
        events.append(rating(id=name("r"), rating=5, team=team, time=seconds_ago(600 - n * 55)))
    engine.produce(engine.kafka.ratings_topic, encode_all(events[:-2]))
    time.sleep(2.0)
    assert fired(engine, "team-negative-burst", team) == []  # 10 is not more than 10
    engine.produce(engine.kafka.ratings_topic, encode_all(events[-2:]))
    [alert] = settle(engine, "team-negative-burst", team, 1)
    assert alert["values"]["negatives"] == 11


def test_a_queue_answering_under_70_percent_within_20_seconds_over_30_minutes_alerts(
    engine: Engine,
) -> None:
    slow_queue, fine_queue = name("q"), name("q")

    def calls(queue: str, fast: int, slow: int) -> list[dict[str, Any]]:
        waits = [8.0] * fast + [45.0] * slow
        times = this_window(30 * 60, len(waits))
        return [
            interaction(id=name("i"), queue=queue, wait_seconds=w, time=at)
            for w, at in zip(waits, times, strict=True)
        ]

    # 13 of 20 in time (65%) alerts; 15 of 20 (75%) does not; chats are not counted.
    events = calls(slow_queue, 13, 7) + calls(fine_queue, 15, 5)
    events += [
        interaction(id=name("i"), queue=fine_queue, channel="chat", wait_seconds=90.0)
        for _ in range(10)
    ]
    engine.produce(engine.kafka.interactions_topic, encode_all(events))
    [alert] = settle(engine, "queue-service-level", slow_queue, 1)
    assert alert["values"]["calls"] == 20
    assert alert["values"]["answered_in_20s"] == 13
    assert fired(engine, "queue-service-level", fine_queue) == []


def test_a_channel_with_negative_nps_over_a_day_and_thirty_responses_alerts(engine: Engine) -> None:
    channel = name("ch")
    # 10 promoters, 12 detractors, 8 passives of 30 answers: NPS -6.7. Ratings without an NPS
    # answer do not count towards the 30.
    scores = [10] * 10 + [3] * 12 + [8] * 8
    events = [rating(id=name("r"), rating=4, nps=None, channel=channel) for _ in range(5)]
    events += [
        rating(id=name("r"), rating=4, nps=score, channel=channel, time=at)
        for score, at in zip(scores, this_window(86400, len(scores)), strict=True)
    ]
    engine.produce(engine.kafka.ratings_topic, encode_all(events[:-1]))
    time.sleep(2.0)
    assert fired(engine, "channel-nps", channel) == []
    engine.produce(engine.kafka.ratings_topic, encode_all(events[-1:]))
    [alert] = settle(engine, "channel-nps", channel, 1)
    assert alert["values"]["responses"] == 30
    assert alert["values"]["score"] == pytest.approx(-20 / 3)


def test_a_customer_rating_negatively_twice_within_seven_days_alerts(engine: Engine) -> None:
    twice, once = name("c"), name("c")
    events = [
        rating(id=name("r"), rating=2, customer={"id": twice}, time=seconds_ago(5 * 86400)),
        rating(id=name("r"), rating=1, customer={"id": once}, time=seconds_ago(5 * 86400)),
        rating(id=name("r"), rating=5, customer={"id": once}, time=seconds_ago(60)),
        rating(id=name("r"), rating=1, customer={"id": twice}, time=seconds_ago(60)),
    ]
    engine.produce(engine.kafka.ratings_topic, encode_all(events))
    [alert] = settle(engine, "repeat-negative-customer", twice, 1)
    assert alert["values"]["negatives"] == 2
    assert fired(engine, "repeat-negative-customer", once) == []


def test_a_low_rating_joined_with_a_hard_interaction_alerts_whichever_comes_first(
    engine: Engine,
) -> None:
    before, after, easy = name("i"), name("i"), name("i")
    engine.produce(
        engine.kafka.interactions_topic,
        encode_all(
            [
                interaction(id=before, hold_seconds=600.0, time=seconds_ago(600)),
                interaction(id=easy, hold_seconds=5.0, transfers=0, time=seconds_ago(600)),
            ]
        ),
    )
    first, second, third = name("r"), name("r"), name("r")
    engine.produce(
        engine.kafka.ratings_topic,
        encode_all(
            [
                rating(id=first, rating=1, interaction_id=before, time=seconds_ago(60)),
                rating(id=second, rating=2, interaction_id=after, time=seconds_ago(60)),
                rating(id=third, rating=1, interaction_id=easy, time=seconds_ago(60)),
            ]
        ),
    )
    [alert] = settle(engine, "low-rating-after-hard-call", first, 1)
    assert alert["values"]["interaction"]["hold_seconds"] == 600.0
    engine.produce(
        engine.kafka.interactions_topic,
        encode_all([interaction(id=after, transfers=4, time=seconds_ago(300))]),
    )
    [alert] = settle(engine, "low-rating-after-hard-call", second, 1)
    assert alert["values"]["interaction"]["transfers"] == 4
    assert fired(engine, "low-rating-after-hard-call", third) == []
