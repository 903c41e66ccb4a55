"""Prometheus metrics scraped from a real worker's web server after a few events."""

import asyncio
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack.stack import Endpoints
from tests.engine import Engine, encode_all
from tests.factories import rating

pytestmark = pytest.mark.integration


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_events_rules_deliveries_and_latency(
    stack: Endpoints, unique: str, tmp_path: Path
) -> None:
    engine = Engine(stack, unique, tmp_path)
    worker = engine.worker().start()
    try:
        two_seconds_ago = (datetime.now(UTC) - timedelta(seconds=2)).isoformat()
        engine.produce(
            engine.kafka.ratings_topic,
            [
                *encode_all(
                    [
                        rating(id="r-neg", rating=1, time=two_seconds_ago),
                        rating(id="r-pos", rating=5),
                    ]
                ),
                b"not json",
            ],
        )
        engine.wait_for(lambda: len(engine.delivered()) >= 1)
        engine.wait_for(
            lambda: (
                scrape(worker.url).get(
                    ("alert_engine_events_rejected_total", (("reason", "not_json"),))
                )
                == 1.0
            )
        )
        metrics = scrape(worker.url)
        stats = worker.stats()
    finally:
        worker.stop()

    def value(name: str, **labels: str) -> float:
        return metrics.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("alert_engine_events_in_total", stream="ratings") == 3
    assert value("alert_engine_rule_evaluations_total", rule="negative-rating") == 2
    assert value("alert_engine_rule_matches_total", rule="negative-rating") == 1
    assert value("alert_engine_alerts_delivered_total", destination="outbox") == 1
    assert value("alert_engine_alerts_failed_total", destination="outbox") == 0
    # The event claimed to be 2 s old: its latency lands above the 1 s bucket, within 10 s.
    latency = "alert_engine_delivery_latency_seconds"
    assert value(f"{latency}_count", destination="outbox") == 1
    assert value(f"{latency}_bucket", destination="outbox", le="1.0") == 0
    assert value(f"{latency}_bucket", destination="outbox", le="10.0") == 1
    assert 2.0 <= value(f"{latency}_sum", destination="outbox") < 10.0
    # Faust's own sensor shares the endpoint.
    assert value("faust_messages_received_total") >= 4  # 3 events and 1 alert
    # /stats reads the same counters.
    assert stats["events_in"] == {"ratings": 3}
    assert stats["events_rejected"] == {"not_json": 1}
    assert stats["alerts_delivered"] == {"outbox": 1}


def test_every_declared_counter_is_an_attribute_served_on_stats() -> None:
    from typing import get_type_hints

    from alert_engine.stats import COUNTERS, Stats

    stats = Stats()
    # A counter added to the table but not declared (or the reverse) would be invisible to mypy
    # or to /stats.
    assert set(get_type_hints(Stats)) == set(COUNTERS)
    stats.late_events["team-burst"] += 2
    assert stats.as_dict()["late_events"] == {"team-burst": 2}


def test_counters_are_read_at_scrape_time_with_their_names_and_labels() -> None:
    import prometheus_client

    from alert_engine.stats import Stats

    stats = Stats()
    stats.rule_evaluations["negative-rating"] += 3
    stats.rule_misses["angry-comment"] += 1
    families = {
        family.name: family
        for family in text_string_to_metric_families(
            prometheus_client.generate_latest(stats.registry).decode()
        )
    }
    assert families["alert_engine_rule_evaluations"].type == "counter"
    assert [
        (sample.name, sample.labels, sample.value)
        for sample in families["alert_engine_rule_evaluations"].samples
    ] == [("alert_engine_rule_evaluations_total", {"rule": "negative-rating"}, 3.0)]
    stats.rule_evaluations["negative-rating"] += 1  # the next scrape sees the new value
    assert 'alert_engine_rule_misses_total{rule="angry-comment"} 1.0' in (
        prometheus_client.generate_latest(stats.registry).decode()
    )
    assert 'alert_engine_rule_evaluations_total{rule="negative-rating"} 4.0' in (
        prometheus_client.generate_latest(stats.registry).decode()
    )


def test_evaluations_of_rules_skipped_together_are_on_metrics_and_stats(tmp_path: Path) -> None:
    import prometheus_client

    from alert_engine.evaluate import Evaluator
    from alert_engine.events import Stream
    from alert_engine.rules.load import load_ruleset
    from tests.factories import encode

    (tmp_path / "rules.yaml").write_text(
        "rules:\n"
        + "".join(
            f"  - name: low-{n}\n    source: ratings\n"
            f"    condition: \"rating <= 2 && comment.contains('{n}')\"\n"
            for n in range(3)
        )
    )
    evaluator = Evaluator(load_ruleset(tmp_path), max_event_bytes=65536)
    for stars in (5, 4, 1):  # the shared `rating <= 2` is false twice: no condition runs then
        evaluator.process(Stream.RATINGS, encode(rating(rating=stars, comment="x")))
    text = prometheus_client.generate_latest(evaluator.stats.registry).decode()
    assert 'alert_engine_rule_evaluations_total{rule="low-1"} 3.0' in text
    assert evaluator.stats.as_dict()["rule_evaluations"] == {"low-0": 3, "low-1": 3, "low-2": 3}


def test_faust_sensor_serves_what_fausts_own_prometheus_sensor_serves_across_a_rebalance() -> None:
    """The engine's sensor hands its per-event figures to Prometheus when scraped: every scrape
    must read what Faust's `PrometheusMonitor`, fed the same calls, shows at that moment, also
    after a rebalance removes the partitions' series and a partition comes back."""
    from types import SimpleNamespace

    import faust
    import prometheus_client
    from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
    from faust.types import TP, StreamT

    from alert_engine.worker.metrics import FaustSensor

    app = faust.App("sensor-test", autodiscover=False)
    ratings, alerts = app.topic("ratings").stream(), app.topic("alerts").stream()

    class Task:  # the agent's task, when running
        pass

    for stream in (ratings, alerts):
        # A stand-in for the task: the sensor only asks whether the stream has one.
        stream.task_owner = cast("asyncio.Task[Any]", Task())

    def scrapes(
        sensor: PrometheusMonitor, registry: prometheus_client.CollectorRegistry
    ) -> list[list[str]]:
        def scrape() -> list[str]:
            return sorted(
                line
                for line in prometheus_client.generate_latest(registry).decode().splitlines()
                # When each series was made, and how long the calls took (the sum, and which
                # buckets they fell in): times of this run, which a busy machine stretches.
                if "_created" not in line
                and "events_runtime_ms_sum" not in line
                and "events_runtime_ms_bucket" not in line
            )

        def traffic(offsets: range, streams: dict[TP, StreamT[Any]]) -> None:
            for offset in offsets:
                for tp, stream in streams.items():
                    # A stand-in for the message and the event: the sensor only counts them.
                    message: Any = SimpleNamespace()
                    sensor.track_tp_end_offset(tp, offset + 10)
                    sensor.on_message_in(tp, offset, message)
                    state = sensor.on_stream_event_in(tp, offset, stream, message)
                    sensor.on_stream_event_out(tp, offset, stream, message, state)
                    sensor.on_message_out(tp, offset, message)
            sensor.on_tp_commit({TP("ratings", 0): offsets[-1]})

        both = {TP("ratings", 0): ratings, TP("alerts", 1): alerts}
        traffic(range(0, 5), both)
        first = scrape()
        traffic(range(5, 7), both)  # counted, but not scraped before the rebalance
        sensor._clear_partition_related_metrics()  # what Faust does on a rebalance
        after_rebalance = scrape()
        traffic(range(7, 10), {TP("ratings", 0): ratings})
        return [first, after_rebalance, scrape()]

    fausts_registry, our_registry = (
        prometheus_client.CollectorRegistry(),
        (prometheus_client.CollectorRegistry()),
    )
    fausts = scrapes(
        PrometheusMonitor(FaustMetrics.create(fausts_registry, "faust")), fausts_registry
    )
    ours = scrapes(FaustSensor.create(our_registry), our_registry)
    assert ours == fausts
    first, after_rebalance, last = ours
    assert 'faust_topic_partition_end_offset{partition="0",topic="ratings"} 14.0' in first
    assert 'faust_messages_received_per_topic_total{topic="alerts"} 5.0' in first
    assert not any("partition=" in line for line in after_rebalance)
    assert 'faust_messages_received_per_topic_total{topic="ratings"} 3.0' in last
    assert 'faust_total_events_per_stream_total{stream="stream.topic_ratings.events"} 10.0' in last
    assert "faust_messages_received_total 17.0" in last
