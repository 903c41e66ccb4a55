"""The agents, driven through Faust's test context (no broker), with a real Redis for delivery."""

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from faust.types.agents import AgentTestWrapperT
from pydantic import ValidationError

from alert_engine.alerts import Alert
from alert_engine.channels.outbox import read_outbox
from alert_engine.deadletters import DeadLetter
from alert_engine.evaluate import Evaluator
from alert_engine.events import MAX_DEPTH
from alert_engine.rules.load import load_ruleset
from alert_engine.settings import (
    EngineSettings,
    EventSettings,
    KafkaSettings,
    RedisSettings,
    Settings,
)
from alert_engine.windows.hop import ReceivedBatch, WindowBatch, partition_for
from alert_engine.windows.store import MemoryWindowStore
from alert_engine.worker.build import build_worker
from devstack.stack import Endpoints
from tests.factories import encode, rating


@pytest.fixture
def settings(tmp_path: Path, unique: str) -> Settings:
    # Only the 1-2 star filter: these tests look at one agent's outputs one by one.
    rules = tmp_path / "rules"
    rules.mkdir()
    shipped = Path(__file__).parents[2] / "rules" / "negative-rating.yaml"
    (rules / "negative-rating.yaml").write_text(shipped.read_text())
    return Settings(
        # Never contacted: the test context replaces the topics with in-memory channels.
        kafka=KafkaSettings(bootstrap="127.0.0.1:9"),
        engine=EngineSettings(
            app_id=f"test-{unique}",
            rules_dir=rules,
            outbox_path=tmp_path / "outbox.jsonl",
        ),
    )


async def test_the_rating_agent_yields_an_alert_for_a_one_star_rating(settings: Settings) -> None:
    app = build_worker(settings)
    async with app.agents["evaluate-ratings"].test_context(sink=[]) as agent:
        await agent.put(encode(rating(id="r-1", rating=1)))
        await agent.put(encode(rating(id="r-2", rating=5)))
        await agent.put(encode(rating(id="r-3", rating=2)))
        alerts = [alert for outputs in agent.results.values() for alert in outputs]
    assert [alert.key for alert in alerts] == ["r-1", "r-3"]
    assert {alert.rule for alert in alerts} == {"negative-rating"}


async def test_the_rating_agent_dead_letters_bad_input_with_its_reason_and_bytes(
    settings: Settings,
) -> None:
    app = build_worker(settings)
    async with app.agents["evaluate-ratings"].test_context(sink=[]) as agent:
        await agent.put(b"{oops", key=b"k-1")
        await agent.put(encode(rating(id="r-4", rating=1)))
        [first], [second] = agent.results.values()
    assert isinstance(first, DeadLetter)
    assert first.topic == settings.kafka.deadletter_topic
    assert (first.key, first.value) == (b"k-1", b"{oops")
    assert first.headers["alert-engine.deadletter.reason"] == b"not_json"
    assert first.headers["alert-engine.deadletter.topic"] == b"ratings"
    assert second.key == "r-4"


async def test_the_delivery_agent_writes_each_alert_to_the_outbox_once(
    settings: Settings, stack: Endpoints, unique: str
) -> None:
    settings = Settings(
        kafka=settings.kafka,
        engine=settings.engine,
        redis=RedisSettings(url=stack.redis_url, key_prefix=f"test-{unique}"),
    )
    app = build_worker(settings)
    async with app.agents["evaluate-ratings"].test_context(sink=[]) as agent:
        await agent.put(encode(rating(id="r-5", rating=1)))
        [[alert]] = agent.results.values()
    async with app.agents["deliver-alerts"].test_context(sink=[]) as agent:
        await agent.put(alert.to_json())
        await agent.put(alert.to_json())  # redelivered by Kafka after a crash
    delivered = read_outbox(settings.engine.outbox_path)
    assert [entry["alert"]["id"] for entry in delivered] == [alert.id]


async def test_windowed_rules_get_the_event_once_per_group_key_on_the_windows_topic(
    settings: Settings,
) -> None:
    shipped = Path(__file__).parents[2] / "rules"
    settings = Settings(
        kafka=settings.kafka, engine=settings.engine.model_copy(update={"rules_dir": shipped})
    )
    app = build_worker(settings)
    raw = encode(rating(id="r-1", rating=1, team="orders", agent={"id": "a-7"}))
    async with app.agents["evaluate-ratings"].test_context(sink=[]) as agent:
        await agent.put(raw)
        [outputs] = agent.results.values()
    batches = [output for output in outputs if isinstance(output, WindowBatch)]
    received = [(batch.partition, ReceivedBatch.from_json(batch.to_json())) for batch in batches]
    # Counted by the input agent (windowed rules) or travelling whole (the join).
    regrouped = sorted(
        [(item.grouping, item.key, partition) for partition, got in received for item in got.items]
        + [(group[0], group[1], partition) for partition, got in received for group in got.groups]
    )
    # One group key per grouping of the shipped windowed rules, whatever the number of rules,
    # each on the windows partition of its group key.
    partitions = settings.kafka.partitions
    assert regrouped == [
        ("agent.id", "a-7", partition_for("agent.id", "a-7", partitions)),
        ("channel", "chat", partition_for("channel", "chat", partitions)),
        ("customer.id", "c-1", partition_for("customer.id", "c-1", partitions)),
        # the 1-star rating may join its interaction
        ("join:interaction", "i-1", partition_for("join:interaction", "i-1", partitions)),
        ("team", "orders", partition_for("team", "orders", partitions)),
    ]
    # The event travels once per partition, not once per group key.
    assert all(got.events == [orjson.loads(raw)] for _, got in received)
    assert len(batches) == len({batch.partition for batch in batches})


async def test_a_rating_no_windowed_rule_of_a_grouping_counts_does_not_travel_there(
    settings: Settings,
) -> None:
    shipped = Path(__file__).parents[2] / "rules"
    settings = Settings(
        kafka=settings.kafka, engine=settings.engine.model_copy(update={"rules_dir": shipped})
    )
    app = build_worker(settings)
    raw = encode(rating(id="r-5", rating=5, nps=None, agent={"id": "a-7"}))
    async with app.agents["evaluate-ratings"].test_context(sink=[]) as agent:
        await agent.put(raw)
        [outputs] = agent.results.values()
    [batch] = [output for output in outputs if isinstance(output, WindowBatch)]
    received = ReceivedBatch.from_json(batch.to_json())
    # Only `agent-low-average` counts a 5-star rating without an NPS answer: the customer.id and
    # team rules count ratings <= 2, `channel-nps` ratings with an NPS answer.
    assert received.items == []
    [(grouping, key, events, partials, _)] = received.groups
    assert (grouping, key, events) == ("agent.id", "a-7", 1)
    # Counted once, in the 5-minute pane (the rule's step) that holds it: count() and
    # avg(rating) after it, and the event itself for an alert.
    [(_, start, end, counted, states, _)] = partials
    assert (end - start, counted, states) == (300.0, 1, [1, [5.0, 1]])
    assert received.events == [orjson.loads(raw)]
    # The windowed agent adds that to each of the 12 windows (1 hour every 5 minutes) holding it.
    evaluator = Evaluator(load_ruleset(shipped), max_event_bytes=65536)
    store = MemoryWindowStore(evaluator.ruleset.windows())
    evaluator.windowed_batch(received, store, partition=batch.partition)
    windows = sorted(window for _, _, window in store.data)
    assert len(windows) == 12
    assert [later[0] - earlier[0] for earlier, later in itertools.pairwise(windows)] == [300.0] * 11
    assert all(start in range(int(window[0]), int(window[0]) + 3600) for window in windows)
    assert batch.partition == partition_for("agent.id", "a-7", settings.kafka.partitions)


def test_all_window_shapes_share_one_state_table_that_faust_does_not_expire(
    settings: Settings,
) -> None:
    # Faust expires a windowed table's keys by the wall clock (wrong for a lagging worker) and
    # indexes each of its writes; the store expires windows by event time itself.
    shipped = Path(__file__).parents[2] / "rules"
    settings = Settings(
        kafka=settings.kafka, engine=settings.engine.model_copy(update={"rules_dir": shipped})
    )
    app = build_worker(settings)
    windowed = [table for table in app.tables.values() if table.name.startswith("window")]
    assert [table.name for table in windowed] == ["window-state"]
    assert len(load_ruleset(shipped).windows()) > 1  # several shapes, one table
    assert not windowed[0]._should_expire_keys()


async def test_an_unreadable_windows_record_is_dead_lettered_with_its_reason(
    settings: Settings,
) -> None:
    app = build_worker(settings)
    async with app.agents["evaluate-windows"].test_context(sink=[]) as agent:
        await agent.put(b'{"stream": "ratings", "events": "not a list"}', key=b"ratings")
        [[dead]] = agent.results.values()
    assert isinstance(dead, DeadLetter)
    assert dead.topic == settings.kafka.deadletter_topic
    assert dead.value == b'{"stream": "ratings", "events": "not a list"}'
    assert dead.headers["alert-engine.deadletter.reason"] == b"unreadable"
    assert dead.headers["alert-engine.deadletter.topic"] == settings.kafka.windows_topic.encode()
    assert b"not a window batch" in dead.headers["alert-engine.deadletter.detail"]


def dead_letter_reasons(outputs: list[object]) -> list[tuple[bytes, bytes]]:
    return [
        (
            output.headers["alert-engine.deadletter.reason"],
            output.headers["alert-engine.deadletter.detail"],
        )
        for output in outputs
        if isinstance(output, DeadLetter)
    ]


async def put_batch(agent: AgentTestWrapperT, values: list[bytes], **kwargs: Any) -> list[object]:
    """The values as one batch: all waiting in the agent's queue when it takes them."""
    for value in values[:-1]:
        await agent.put(value, wait=False, **kwargs)
    await agent.put(values[-1], **kwargs)
    [outputs] = agent.results.values()
    batch: list[object] = outputs
    return batch


@pytest.mark.parametrize(
    ("stars", "time", "detail"),
    [
        # Faust's window maths ran out of memory on this one.
        (1, "9999-12-31T12:00:00Z", "time 9999-12-31T12:00:00Z is 7973 years ahead"),
        # This one moved the watermark: later events counted as late until a restart.
        (5, "9999-12-31T23:59:59-14:00", "time 9999-12-31T23:59:59-14:00 is 7973 years ahead"),
        (1, "2026-12-02T16:10:00+00:00", "time 2026-12-02T16:10:00+00:00 is 10 minutes ahead"),
    ],
)
async def test_an_event_timed_far_ahead_of_its_record_is_dead_lettered(
    settings: Settings, stars: int, time: str, detail: str
) -> None:
    broker_time = datetime(2026, 12, 2, 16, 0, tzinfo=UTC)
    app = build_worker(settings)
    genuine = encode(rating(id="r-1", rating=1, time=broker_time.isoformat()))
    hostile = encode(rating(id="r-2", rating=stars, time=time))
    async with app.agents["evaluate-ratings"].test_context(sink=[]) as agent:
        outputs = await put_batch(agent, [hostile, genuine], timestamp=broker_time.timestamp())
    [(reason, text)] = dead_letter_reasons(outputs)
    assert reason == b"invalid"
    assert text.decode().startswith(detail)
    assert text.decode().endswith(
        "of the broker's timestamp 2026-12-02T16:00:00Z (the limit is 5 minutes)"
    )
    assert [output.key for output in outputs if isinstance(output, Alert)] == ["r-1"]


async def test_an_event_a_little_ahead_of_its_record_is_clock_skew_and_counts(
    settings: Settings,
) -> None:
    broker_time = datetime(2026, 12, 2, 16, 0, tzinfo=UTC)
    app = build_worker(settings)
    ahead = encode(rating(id="r-1", time=(broker_time + timedelta(minutes=4)).isoformat()))
    async with app.agents["evaluate-ratings"].test_context(sink=[]) as agent:
        [alert] = await put_batch(agent, [ahead], timestamp=broker_time.timestamp())
    assert isinstance(alert, Alert) and alert.key == "r-1"


async def test_an_event_before_the_earliest_time_is_dead_lettered(settings: Settings) -> None:
    app = build_worker(settings)
    old = encode(rating(id="r-1", time="1999-12-31T23:59:59Z"))
    async with app.agents["evaluate-ratings"].test_context(sink=[]) as agent:
        outputs = await put_batch(agent, [old, encode(rating(id="r-2"))])
    assert dead_letter_reasons(outputs) == [
        (
            b"invalid",
            b"time 1999-12-31T23:59:59Z is before 2000-01-01T00:00:00Z, the earliest accepted",
        )
    ]
    assert [output.key for output in outputs if isinstance(output, Alert)] == ["r-2"]


async def test_the_time_bounds_are_settings(settings: Settings) -> None:
    events = EventSettings(max_future_skew=3600, earliest_time="1990-01-01T00:00:00Z")
    app = build_worker(dataclasses.replace(settings, events=events))
    broker_time = datetime(2026, 12, 2, 16, 0, tzinfo=UTC)
    values = [
        encode(rating(id="r-1", time="1999-12-31T23:59:59Z")),
        encode(rating(id="r-2", time="2026-12-02T16:50:00Z")),
        encode(rating(id="r-3", time="2026-12-02T17:01:00Z")),
    ]
    async with app.agents["evaluate-ratings"].test_context(sink=[]) as agent:
        outputs = await put_batch(agent, values, timestamp=broker_time.timestamp())
    assert [output.key for output in outputs if isinstance(output, Alert)] == ["r-1", "r-2"]
    [(reason, text)] = dead_letter_reasons(outputs)
    assert reason == b"invalid"
    assert text.startswith(b"time 2026-12-02T17:01:00Z is 61 minutes ahead")
    assert text.endswith(b"(the limit is 60 minutes)")


def test_the_time_bounds_are_validated() -> None:
    with pytest.raises(ValidationError, match="max_future_skew"):
        EventSettings(max_future_skew=-1)
    with pytest.raises(ValidationError, match="earliest_time"):
        EventSettings(earliest_time="2000-01-01T00:00:00")  # no offset


async def test_an_event_far_ahead_moves_no_watermark_of_the_windowed_rules(
    settings: Settings,
) -> None:
    shipped = Path(__file__).parents[2] / "rules"
    settings = Settings(
        kafka=settings.kafka, engine=settings.engine.model_copy(update={"rules_dir": shipped})
    )
    app = build_worker(settings)
    now = datetime.now(UTC)
    values = [
        encode(rating(id="r-1", rating=5, nps=None, time="9999-12-31T23:59:59-14:00")),
        encode(rating(id="r-2", rating=5, nps=None, time=now.isoformat())),
    ]
    async with app.agents["evaluate-ratings"].test_context(sink=[]) as agent:
        outputs = await put_batch(agent, values, timestamp=now.timestamp())
    [batch] = [output for output in outputs if isinstance(output, WindowBatch)]
    # What the windowed agent is told of how far the input partition has got: r-2's time.
    assert batch.mark == now.timestamp()
    assert [event["id"] for event in ReceivedBatch.from_json(batch.to_json()).events] == ["r-2"]


async def test_the_nesting_limit_is_a_setting(settings: Settings) -> None:
    app = build_worker(dataclasses.replace(settings, events=EventSettings(max_depth=4)))
    base = encode(rating(id="r-1"))
    # The event and four arrays are five levels; three arrays, four.
    values = [
        base[:-1] + b',"x":[[[[1]]]]}',
        base[:-1].replace(b"r-1", b"r-2") + b',"x":[[[1]]]}',
    ]
    async with app.agents["evaluate-ratings"].test_context(sink=[]) as agent:
        outputs = await put_batch(agent, values)
    assert dead_letter_reasons(outputs) == [
        (b"invalid", b"x: nested deeper than 4 levels, the limit")
    ]
    assert [output.key for output in outputs if isinstance(output, Alert)] == ["r-2"]
    with pytest.raises(ValidationError, match="max_depth"):
        EventSettings(max_depth=MAX_DEPTH + 1)


# A rule whose group key cannot be encoded for some events: grouping them raises a TypeError
# (`bytes` is no JSON), a fault in the engine that one event triggers.
BYTES_KEY_RULE = """\
name: by-customer-name
source: ratings
group_by: "customer.name == 'Bad' ? bytes(customer.name) : customer.id"
window: {size: 1h}
aggregates:
  responses: count()
condition: responses >= 100
"""


async def test_an_event_that_raises_while_processed_is_dead_lettered_and_its_batch_mates_alert(
    settings: Settings,
) -> None:
    (settings.engine.rules_dir / "by-customer-name.yaml").write_text(BYTES_KEY_RULE)
    app = build_worker(settings)
    bad = {"id": "c-2", "name": "Bad"}
    values = [
        encode(rating(id="r-1", rating=1)),
        encode(rating(id="r-2", rating=1, customer=bad)),
        encode(rating(id="r-3", rating=2)),
    ]
    async with app.agents["evaluate-ratings"].test_context(sink=[]) as agent:
        outputs = await put_batch(agent, values)
    assert [output.key for output in outputs if isinstance(output, Alert)] == ["r-1", "r-3"]
    [dead] = [output for output in outputs if isinstance(output, DeadLetter)]
    assert dead.value == values[1]
    assert dead.headers["alert-engine.deadletter.reason"] == b"processing_error"
    assert dead.headers["alert-engine.deadletter.detail"].startswith(b"TypeError: ")
    assert dead.headers["alert-engine.deadletter.offset"] == b"1"
