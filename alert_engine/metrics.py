"""Prometheus metrics: the engine's own figures and Faust's sensor, served at `/metrics`.

Each worker has its own registry (not prometheus_client's global one), so several apps built in
one process, as the tests do, never clash over metric names.
"""

from __future__ import annotations

from collections import Counter

import faust
import prometheus_client
from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import CollectorRegistry

# Event time to delivery: a few milliseconds on a quiet worker, up to a minute behind a backlog or
# a rate-limited destination.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

PREFIX = "alert_engine"


class MeteredCounter(Counter[str]):
    """A `collections.Counter` whose increments also go to a Prometheus counter, one label value
    per key: the hot path writes `counter[key] += 1` and both `/stats` and `/metrics` see it."""

    def __init__(self, metric: prometheus_client.Counter) -> None:
        super().__init__()
        self._metric = metric

    def __setitem__(self, key: str, value: int) -> None:
        delta = value - self.get(key, 0)
        if delta < 0:
            raise ValueError(f"a counter only goes up: {key!r} from {self.get(key, 0)} to {value}")
        super().__setitem__(key, value)
        if delta:
            self._metric.labels(key).inc(delta)


def metered_counter(
    registry: CollectorRegistry, name: str, documentation: str, label: str
) -> MeteredCounter:
    return MeteredCounter(
        prometheus_client.Counter(f"{PREFIX}_{name}", documentation, [label], registry=registry)
    )


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
