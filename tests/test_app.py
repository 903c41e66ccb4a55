"""The agents, driven through Faust's test context (no broker), with a real Redis for delivery."""

import itertools
from pathlib import Path

import orjson
import pytest

from alert_engine.app import DeadLetter
from alert_engine.channels.outbox import read_outbox
from alert_engine.evaluate import Evaluator
from alert_engine.rules import load_ruleset
from alert_engine.settings import EngineSettings, KafkaSettings, RedisSettings, Settings
from alert_engine.windows.hop import ReceivedBatch, WindowBatch, partition_for
from alert_engine.windows.store import MemoryWindowStore
from alert_engine.worker import build_worker
from tests.factories import encode, rating


@pytest.fixture
def settings(tmp_path: Path, unique: str) -> Settings:
    # Only the 1-2 star filter: these tests look at one agent's outputs one by one.
    rules = tmp_path / "rules"
    rules.mkdir()
    shipped = Path(__file__).parents[1] / "rules" / "negative-rating.yaml"
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


async def test_the_rating_agent_yields_an_alert_for_a_one_star_rating(settings):
    app = build_worker(settings)
    async with app.agents["evaluate-ratings"].test_context(sink=[]) as agent:
        await agent.put(encode(rating(id="r-1", rating=1)))
        await agent.put(encode(rating(id="r-2", rating=5)))
        await agent.put(encode(rating(id="r-3", rating=2)))
        alerts = [alert for outputs in agent.results.values() for alert in outputs]
    assert [alert.key for alert in alerts] == ["r-1", "r-3"]
    assert {alert.rule for alert in alerts} == {"negative-rating"}


async def test_the_rating_agent_dead_letters_bad_input_with_its_reason_and_bytes(settings):
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


async def test_the_delivery_agent_writes_each_alert_to_the_outbox_once(settings, stack, unique):
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


async def test_windowed_rules_get_the_event_once_per_group_key_on_the_windows_topic(settings):
    shipped = Path(__file__).parents[1] / "rules"
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


async def test_a_rating_no_windowed_rule_of_a_grouping_counts_does_not_travel_there(settings):
    shipped = Path(__file__).parents[1] / "rules"
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
    [(grouping, key, events, partials)] = received.groups
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


def test_all_window_shapes_share_one_state_table_that_faust_does_not_expire(settings):
    # Faust expires a windowed table's keys by the wall clock (wrong for a lagging worker) and
    # indexes each of its writes; the store expires windows by event time itself.
    shipped = Path(__file__).parents[1] / "rules"
    settings = Settings(
        kafka=settings.kafka, engine=settings.engine.model_copy(update={"rules_dir": shipped})
    )
    app = build_worker(settings)
    windowed = [table for table in app.tables.values() if table.name.startswith("window")]
    assert [table.name for table in windowed] == ["window-state"]
    assert len(load_ruleset(shipped).windows()) > 1  # several shapes, one table
    assert not windowed[0]._should_expire_keys()


async def test_an_unreadable_windows_record_is_dead_lettered_with_its_reason(settings):
    app = build_worker(settings)
    async with app.agents["evaluate-windows"].test_context(sink=[]) as agent:
        await agent.put(b'{"stream": "ratings", "events": "not a list"}', key=b"ratings")
        [[dead]] = agent.results.values()
    assert isinstance(dead, DeadLetter)
    assert dead.topic == settings.kafka.deadletter_topic
    assert dead.value == b'{"stream": "ratings", "events": "not a list"}'
    assert dead.headers["alert-engine.deadletter.reason"] == b"unreadable_windows_record"
    assert dead.headers["alert-engine.deadletter.topic"] == settings.kafka.windows_topic.encode()
    assert b"not a window batch" in dead.headers["alert-engine.deadletter.detail"]
