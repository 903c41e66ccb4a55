"""Windowed rules on the real broker: repartitioning, Faust windowed tables, restarts."""

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devstack.stack import Endpoints
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


def test_window_state_and_the_fired_mark_survive_a_worker_restart(
    stack: Endpoints, unique: str, tmp_path: Path
) -> None:
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


CATCH_UP_RULES = """\
name: busy-minute
source: ratings
group_by: team
window: {size: 1m}
aggregates: {ratings: count()}
min_sample: 1
condition: ratings >= 180
"""


async def _produce_to_partitions(
    bootstrap: str, topic: str, sends: list[tuple[int, bytes]]
) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    try:
        for partition, value in sends:
            await producer.send(topic, value, partition=partition)
    finally:
        await producer.stop()


def test_a_worker_catching_up_on_uneven_partitions_raises_every_windows_alert(
    stack: Endpoints, unique: str, tmp_path: Path
) -> None:
    # Both reproductions of a worker catching up after being down, through the real broker:
    # ten minutes of one team's ratings, 2 per second to partition 0 and 1 per second to
    # partition 1 (keyed production is uneven), and of another team's, 1.5 per second to both.
    # Each minute of each team holds 180 ratings: 10 alerts per team, none of them late.
    import asyncio

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "busy.yaml").write_text(CATCH_UP_RULES)
    engine = Engine(stack, unique, tmp_path, rules_dir=rules, partitions=4)
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=11)

    def at(team: str, n: int, seconds: float) -> bytes:
        [raw] = encode_all(
            [
                rating(
                    id=f"r-{team}-{n}",
                    team=team,
                    rating=4,
                    interaction_id=None,
                    time=(start + timedelta(seconds=seconds)).isoformat(),
                )
            ]
        )
        return raw

    uneven = [(0, at("orders", n, n / 2), n / 2) for n in range(1200)]
    uneven += [(1, at("orders", 10_000 + n, n), float(n)) for n in range(600)]
    even = [
        (partition, at("billing", 20_000 * (partition + 1) + n, n / 1.5), n / 1.5)
        for partition in (0, 1)
        for n in range(900)
    ]
    # In time order within each partition (sorted by time, partitions interleaved).
    sends = [(partition, raw) for partition, raw, _ in sorted(uneven + even, key=lambda s: s[2])]

    worker = engine.worker("first").start()
    worker.stop()  # SIGTERM: the ratings arrive while it is down
    asyncio.run(_produce_to_partitions(engine.kafka.bootstrap, engine.kafka.ratings_topic, sends))
    restarted = engine.worker("second").start()
    try:
        engine.wait_for(lambda: len(engine.delivered()) >= 20, timeout=180)
        time.sleep(2.0)
        delivered = engine.delivered()
        late = restarted.stats().get("late_events", {})
    finally:
        restarted.stop()
    assert late == {} or sum(late.values()) == 0, f"counted late: {late}"
    windows = sorted((alert["key"], alert["values"]["window_start"]) for alert in delivered)
    assert windows == sorted(
        (team, (start + timedelta(minutes=minute)).isoformat())
        for team in ("orders", "billing")
        for minute in range(10)
    )
    assert all(alert["values"]["ratings"] >= 180 for alert in delivered)


EXACT_RULES = """\
rules:
  - name: exact
    source: ratings
    group_by: team
    window: {size: 1h}
    aggregates: {ratings: count(), stars: sum(rating)}
    min_sample: 1
    condition: ratings >= %(count)d
  - name: one-more
    source: ratings
    group_by: team
    window: {size: 1h}
    aggregates: {ratings: count()}
    min_sample: 1
    condition: ratings >= %(more)d
"""


def run_with_kills(
    stack: Endpoints,
    unique: str,
    tmp_path: Path,
    *,
    teams: int,
    per_team: int,
    chunks: int,
    kills: set[int],
) -> dict[str, object]:
    """`per_team` ratings of each team in one hour window, produced in `chunks` while a worker
    counts them; after each chunk numbered in `kills` the worker is SIGKILLed (as soon as it
    has counted part of the chunk, before its next offset commit) and another started. The
    `exact` rule fires only on an exact count, `one-more` on one more: a count high by one
    record (a replay) fires it, one low leaves `exact` quiet."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "exact.yaml").write_text(EXACT_RULES % {"count": per_team, "more": per_team + 1})
    engine = Engine(stack, unique, tmp_path, rules_dir=rules, partitions=4)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    events = [
        rating(
            id=f"r-{team}-{n}",
            team=f"team-{team}",
            rating=1 + (n + team) % 5,
            interaction_id=None,
            time=(hour + timedelta(seconds=n * 5 + team)).isoformat(),
        )
        for n in range(per_team)
        for team in range(teams)
    ]
    size = len(events) // chunks
    workers = [engine.worker("worker-0").start()]
    try:
        for chunk in range(chunks):
            last = chunk == chunks - 1
            engine.produce(
                engine.kafka.ratings_topic,
                encode_all(events[chunk * size : None if last else (chunk + 1) * size]),
            )
            if chunk in kills:
                time.sleep(1.0)  # counted and written, not yet committed (every 2.8 s)
                workers[-1].kill()
                workers.append(engine.worker(f"worker-{len(workers)}").start())
            else:
                time.sleep(0.5)
        engine.wait_for(
            lambda: len([a for a in engine.delivered() if a["rule"] == "exact"]) >= teams,
            timeout=180,
        )
        time.sleep(4.0)  # a count high by a replay would fire `one-more` by now
        delivered = engine.delivered()
    finally:
        for worker in workers:
            worker.stop()
    exact = [alert for alert in delivered if alert["rule"] == "exact"]
    more = [alert for alert in delivered if alert["rule"] == "one-more"]
    print(
        f"\nFAULT worker-sigkill-window-counts: events={len(events)} kills={len(kills)} "
        f"exact={len(exact)}/{teams} one-more={len(more)}"
    )
    assert more == [], "a window counted some events twice"
    assert sorted(alert["key"] for alert in exact) == sorted(f"team-{t}" for t in range(teams))
    for alert in exact:
        team = int(str(alert["key"]).split("-")[1])
        assert alert["values"]["ratings"] == per_team
        assert alert["values"]["stars"] == sum(1 + (n + team) % 5 for n in range(per_team))
    return {"events": len(events)}


def test_a_sigkilled_worker_counts_every_window_exactly(
    stack: Endpoints, unique: str, tmp_path: Path
) -> None:
    run_with_kills(stack, unique, tmp_path, teams=12, per_team=40, chunks=4, kills={1})
