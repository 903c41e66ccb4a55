"""Prometheus metrics: the engine's own figures and Faust's sensor, served at `/metrics`.

Each worker has its own registry (not prometheus_client's global one), so several apps built in
one process, as the tests do, never clash over metric names.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator

import faust
import prometheus_client
from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily

# Event time to delivery: a few milliseconds on a quiet worker, up to a minute behind a backlog or
# a rate-limited destination.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

PREFIX = "alert_engine"


class CountersCollector:
    """Serves plain `collections.Counter`s as Prometheus counters, one label value per key.

    The hot path only does `counter[key] += 1` on a dict (a Prometheus `labels(...).inc()` per
    rule per event cost more than evaluating the rule); the values are read when `/metrics` is
    scraped, so `/stats` and `/metrics` still show the same figures."""

    def __init__(
        self,
        counters: Iterable[tuple[str, str, str, Counter[str]]],
        before: Callable[[], None] = lambda: None,
    ) -> None:
        # (metric name without prefix, help, label name, counter)
        self.counters = tuple(counters)
        # Brings the counters up to date before a scrape reads them.
        self.before = before

    def describe(self) -> Iterator[CounterMetricFamily]:
        for name, documentation, label, _ in self.counters:
            yield CounterMetricFamily(f"{PREFIX}_{name}", documentation, labels=[label])

    def collect(self) -> Iterator[CounterMetricFamily]:
        self.before()
        for name, documentation, label, counter in self.counters:
            family = CounterMetricFamily(f"{PREFIX}_{name}", documentation, labels=[label])
            for key, value in list(counter.items()):
                family.add_metric([key], value)
            yield family


def delivery_latency_histogram(registry: CollectorRegistry) -> prometheus_client.Histogram:
    return prometheus_client.Histogram(
        f"{PREFIX}_delivery_latency_seconds",
        "Seconds from an event's own time to its alert's delivery, by destination",
        ["destination"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )


def serve_metrics(app: faust.App, registry: CollectorRegistry) -> None:
    """Faust's Prometheus monitor (messages, commits, rebalances, send latency, ...) and the
    engine's metrics in `registry`, together at `/metrics` on the worker's web server."""
    setup_prometheus_sensors(app, pattern="/metrics", registry=registry, name_prefix="faust")
