"""Prometheus metrics: the engine's own figures and Faust's sensor, served at `/metrics`.

Each worker has its own registry (not prometheus_client's global one), so several apps built in
one process, as the tests do, never clash over metric names.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any
from weakref import WeakKeyDictionary

import faust
import prometheus_client
from faust import web
from faust.exceptions import ConsumerNotStarted
from faust.sensors.monitor import Monitor
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP, EventT, Message, StreamT
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

# Event time to delivery: a few milliseconds on a quiet worker, up to a minute behind a backlog or
# a rate-limited destination.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

PREFIX = "alert_engine"

log = logging.getLogger(__name__)

# Gauges whose value needs I/O (Redis) are brought up to date by `/metrics` before it renders:
# a registry's collectors are called synchronously, inside the event loop.
_REFRESH_BEFORE_SCRAPE: WeakKeyDictionary[
    CollectorRegistry, list[Callable[[], Awaitable[None]]]
] = WeakKeyDictionary()
# A scrape waits this long for them, then serves the last values.
REFRESH_TIMEOUT_SECONDS = 2.0


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


class FaustSensor(PrometheusMonitor):
    """Faust's Prometheus sensor, with its per-event figures handed over when they are scraped.

    Faust's own sensor calls prometheus_client about nine times per event (messages in and out,
    stream events, partition offsets), each call taking a lock and most checking label names:
    11 µs per event over Faust's base `Monitor`, measured in-process, or about 7% of a loaded
    worker. Here those hooks only do the base `Monitor`'s counting in plain fields, and
    `catch_up`, run before each scrape, brings the same Prometheus metrics up to date: a scrape
    reads what Faust's sensor would show. The rarer hooks (sends, tables, commits, rebalances,
    web requests) are Faust's.
    """

    def __init__(self, metrics: FaustMetrics) -> None:
        super().__init__(metrics=metrics)
        # What the Prometheus counters have been given so far.
        self._handed_messages = 0
        self._handed_events = 0
        self._handed_by_topic: dict[str, int] = {}
        self._handed_by_stream: dict[str, int] = {}

    @classmethod
    def create(cls, registry: CollectorRegistry) -> FaustSensor:
        before_scrape = _BeforeScrape()
        # Registered ahead of Faust's metrics: a registry collects in the order of registration.
        registry.register(before_scrape)
        sensor = cls(FaustMetrics.create(registry, "faust"))
        before_scrape.run = sensor.catch_up
        return sensor

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        Monitor.on_message_in(self, tp, offset, message)

    def on_stream_event_in(
        self, tp: TP, offset: int, stream: StreamT[Any], event: EventT[Any]
    ) -> dict[str, Any] | None:
        return Monitor.on_stream_event_in(self, tp, offset, stream, event)

    def on_stream_event_out(
        self,
        tp: TP,
        offset: int,
        stream: StreamT[Any],
        event: EventT[Any],
        state: dict[str, Any] | None = None,
    ) -> None:
        Monitor.on_stream_event_out(self, tp, offset, stream, event, state)
        if state is not None:  # a histogram keeps every observation: this one stays per event
            self._metrics.events_runtime_latency.observe(self.secs_to_ms(self.events_runtime[-1]))

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        Monitor.on_message_out(self, tp, offset, message)

    def track_tp_end_offset(self, tp: TP, offset: int) -> None:
        Monitor.track_tp_end_offset(self, tp, offset)

    def catch_up(self) -> None:
        metrics = self._metrics
        metrics.messages_received.inc(self.messages_received_total - self._handed_messages)
        self._handed_messages = self.messages_received_total
        metrics.active_messages.set(self.messages_active)
        for topic, received in list(self.messages_received_by_topic.items()):
            # Only a topic with messages since has a series (none since a rebalance removed it).
            new = received - self._handed_by_topic.get(topic, 0)
            if new:
                metrics.messages_received_per_topics.labels(topic=topic).inc(new)
                self._handed_by_topic[topic] = received
        for tp, offset in list(self.tp_read_offsets.items()):
            metrics.messages_received_per_topics_partition.labels(
                topic=tp.topic, partition=tp.partition
            ).set(offset)
        for tp, offset in list(self.tp_end_offsets.items()):
            metrics.topic_partition_end_offset.labels(topic=tp.topic, partition=tp.partition).set(
                offset
            )
        metrics.total_events.inc(self.events_total - self._handed_events)
        self._handed_events = self.events_total
        metrics.total_active_events.set(self.events_active)
        # Faust counts per stream under `str(stream)` and labels the metric by the stream's label.
        for stream, key in list(self.stream_lookup.items()):
            events = self.events_by_stream[key]
            metrics.total_events_per_stream.labels(
                stream=f"stream.{self._stream_label(stream)}.events"
            ).inc(events - self._handed_by_stream.get(key, 0))
            self._handed_by_stream[key] = events

    def _clear_partition_related_metrics(self) -> None:
        # Faust removes the per-topic series on a rebalance and counts afresh from there.
        self._handed_by_topic = dict(self.messages_received_by_topic)
        super()._clear_partition_related_metrics()


class _BeforeScrape:
    """A collector of no metrics, which runs a hook when the registry is collected."""

    def __init__(self) -> None:
        self.run: Callable[[], None] = lambda: None

    def collect(self) -> Iterator[Metric]:
        self.run()
        return iter(())


class ConsumerLag:
    """`alert_engine_consumer_lag{topic,partition}`: the records of each partition this worker
    consumes that its group has not committed yet (the partition's end offset minus the
    committed offset, as `kafka-consumer-groups --describe` shows LAG), read when scraped.

    A worker that falls behind, or whose delivery is stuck, shows a growing lag; a standby
    member without partitions serves none. Faust's sensor has both offsets only as separate
    series, and only for partitions with messages since the last rebalance."""

    NAME = f"{PREFIX}_consumer_lag"
    HELP = "Records of a consumed partition not yet committed (end offset - committed offset)"

    def __init__(self, app: faust.App) -> None:
        self.app = app

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.NAME, self.HELP, labels=["topic", "partition"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.NAME, self.HELP, labels=["topic", "partition"])
        for tp, lag in sorted(self.lags().items()):
            family.add_metric([tp.topic, str(tp.partition)], lag)
        yield family

    def lags(self) -> dict[TP, int]:
        app = self.app
        if app.consumer_generation_id <= 0:  # not in the group yet: no consumer to ask
            return {}
        try:
            assigned = app.consumer.assignment()
            consumer = app.consumer
        except ConsumerNotStarted:
            return {}
        # Faust's record of the group's committed offsets: read from Kafka when a partition is
        # assigned, moved on each commit, dropped on revocation (its sensor's copy is only moved
        # on this worker's own commits, so it goes stale across a rebalance). Faust keeps an
        # offset of 0 as None: then the next offset to read, else the start.
        committed_offsets = getattr(consumer, "_committed_offset", {})
        read_offsets = app.monitor.tp_read_offsets
        lags = {}
        for tp in assigned:
            end = consumer.highwater(tp)
            if end is None:
                continue  # nothing fetched from this partition yet: its end is not known
            committed = committed_offsets.get(tp)
            if committed is None:
                read = read_offsets.get(tp)
                committed = 0 if read is None else read + 1
            lags[tp] = max(0, end - committed)
        return lags


class OpenCases:
    """`alert_engine_cases_open`: cases not closed yet (open or claimed) over the whole
    deployment, counted in Redis when scraped; every worker serves the same figure (take the
    max, not the sum). While Redis does not answer, the last count is served."""

    NAME = f"{PREFIX}_cases_open"
    HELP = "Cases not closed yet (open or claimed), over all workers: take the max"

    def __init__(self, count: Callable[[], Awaitable[int]]) -> None:
        self._count = count
        self.value: int | None = None

    async def refresh(self) -> None:
        try:
            self.value = await self._count()
        except Exception as exc:  # any Redis or connection error: keep the last count
            log.warning("cannot count the open cases for /metrics: %r", exc)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.NAME, self.HELP)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.NAME, self.HELP)
        if self.value is not None:
            family.add_metric([], self.value)
        yield family


def serve_open_cases(registry: CollectorRegistry, count: Callable[[], Awaitable[int]]) -> None:
    """Serve the open-cases gauge at `/metrics`, counted by `count` before each scrape."""
    gauge = OpenCases(count)
    registry.register(gauge)
    _REFRESH_BEFORE_SCRAPE.setdefault(registry, []).append(gauge.refresh)


async def refresh_before_scrape(registry: CollectorRegistry) -> None:
    hooks = _REFRESH_BEFORE_SCRAPE.get(registry, [])
    if hooks:
        try:
            await asyncio.wait_for(
                asyncio.gather(*(hook() for hook in hooks)), REFRESH_TIMEOUT_SECONDS
            )
        except TimeoutError:
            log.warning(
                "/metrics serves the last values: refreshing them took over %s s",
                REFRESH_TIMEOUT_SECONDS,
            )


def bearer_token_matches(authorization: str | None, token: str) -> bool:
    """Whether an `Authorization` header carries `Bearer <token>` (the scheme in any case)."""
    scheme, _, credentials = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        credentials.strip().encode(), token.encode()
    )


def serve_metrics(app: faust.App, registry: CollectorRegistry, token: str | None = None) -> None:
    """Faust's Prometheus sensor (messages, commits, rebalances, send latency, ...) and the
    engine's metrics in `registry`, together at `/metrics` on the worker's web server; with a
    `token`, only to a scrape that sends it as a bearer token (401 otherwise)."""
    app.monitor = FaustSensor.create(registry)
    registry.register(ConsumerLag(app))

    @app.page("/metrics")
    async def metrics(view: web.View, request: web.Request) -> web.Response:
        if token is not None and not bearer_token_matches(
            request.headers.get("Authorization"), token
        ):
            return view.text(
                "/metrics needs the bearer token (ALERT_ENGINE_METRICS_TOKEN)\n",
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        await refresh_before_scrape(registry)
        latest = prometheus_client.generate_latest(registry)
        return view.bytes(latest, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})
