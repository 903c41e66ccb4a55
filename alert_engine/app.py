"""The Faust application: topics and agents only. Everything done per event lives in `evaluate`
and `delivery`; rules and clients are built by the caller and passed in.

Each agent yields, once per input record (the input agents: once per batch of records), the
records it produces (alerts, dead letters, window batches; maybe none), and one sink publishes
them. Faust awaits the sink before taking the next record or batch, acks a batch's records only
after that, and flushes the producer before committing offsets, so an input is never committed
before its outputs are durable in Kafka.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeAlias, cast

import faust
import faust.windows
from faust.types import EventT, StreamT
from faust.windows import HoppingWindow

from alert_engine import deadletter
from alert_engine.alerts import Alert
from alert_engine.cases import CaseEvent
from alert_engine.delivery import Deliverer
from alert_engine.evaluate import Evaluator
from alert_engine.events import EventRejected, Stream
from alert_engine.followup.service import FollowupService
from alert_engine.metrics import serve_metrics
from alert_engine.redis_outage import until_redis_answers
from alert_engine.reload import RulesReloader
from alert_engine.settings import Settings
from alert_engine.stats import Stats
from alert_engine.windows.hop import HopBuilder, ReceivedBatch, WindowBatch
from alert_engine.windows.store import BufferedWindowStore, TableWindowStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeadLetter:
    """A record for a dead-letter topic: the original key and value, the reason in headers."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]

    @staticmethod
    def of(event: EventT[bytes], topic: str, *, reason: str, detail: str) -> DeadLetter:
        """The consumed record `event` as it came, with where it came from and why."""
        message = event.message
        return DeadLetter(
            topic=topic,
            key=event.key,
            value=event.value,
            headers=deadletter.headers(
                reason=reason,
                detail=detail,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
            ),
        )


Output: TypeAlias = Alert | CaseEvent | DeadLetter | WindowBatch
# What an agent yields for one input record; often empty.
Outputs: TypeAlias = list[Output]


def create_app(
    settings: Settings,
    evaluator: Evaluator,
    deliverer: Deliverer,
    stats: Stats,
    followup: FollowupService | None = None,
    reloader: RulesReloader | None = None,
) -> faust.App:
    kafka = settings.kafka
    app = faust.App(
        settings.engine.app_id,
        broker=kafka.broker_url,
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication_factor,
        producer_acks=-1,
        broker_session_timeout=kafka.session_timeout,
        broker_heartbeat_interval=kafka.heartbeat_interval,
        web_host=settings.web.host,
        web_port=settings.web.port,
        autodiscover=False,
    )

    serve_metrics(app, stats.registry)

    def topic(name: str) -> faust.TopicT:
        return app.topic(name, partitions=kafka.partitions, key_type=bytes, value_type=bytes)

    topics = {name: topic(name) for name in kafka.engine_topics}
    # One Faust windowed table per window shape the rules use (memory store, changelog-backed):
    # keys are (rule and group key, window), values the aggregates' state and the fired mark.
    # The tables' windows have no `expires`: the store expires windows by event time itself.
    windows = evaluator.ruleset.windows()
    tables = {
        shape: app.Table(
            f"window-{shape}",
            default=None,
            schema=faust.Schema(key_serializer="json", value_serializer="json"),
            partitions=kafka.partitions,
            help=f"windowed rules' state, windows of {shape}",
        ).using_window(_window_without_expiry(window))
        for shape, window in windows.items()
    }
    store = TableWindowStore(
        {shape: wrapper.table for shape, wrapper in tables.items()}, windows, kafka.partitions
    )

    if reloader is not None and settings.engine.rules_reload_seconds > 0:
        # Tables cannot be added to a running app: a reload needing a new shape is refused.
        reloader.window_shapes = set(tables)

        async def reload_rules() -> None:
            reloader.check()

        app.timer(interval=settings.engine.rules_reload_seconds, name="reload-rules")(reload_rules)

    async def publish(outputs: Outputs) -> None:
        for output in outputs:
            if isinstance(output, Alert):
                # Keyed by alert id: a re-evaluated event lands on the same alerts partition.
                await topics[kafka.alerts_topic].send(
                    key=output.id.encode(), value=output.to_json()
                )
            elif isinstance(output, CaseEvent):
                await topics[kafka.cases_topic].send(
                    key=output.alert_id.encode(), value=output.to_json()
                )
            elif isinstance(output, WindowBatch):
                await topics[kafka.windows_topic].send(
                    key=output.stream.value.encode(),
                    value=output.to_json(),
                    partition=output.partition,
                )
            else:
                await topics[output.topic].send(
                    key=output.key, value=output.value, headers=output.headers
                )

    engine = settings.engine
    windows_partitions = topics[kafka.windows_topic].partitions or kafka.partitions

    def dead_letter(event: EventT[bytes], rejected: EventRejected) -> DeadLetter:
        message = event.message
        log.warning(
            "dead-lettered %s[%s]@%s: %s",
            message.topic,
            message.partition,
            message.offset,
            rejected,
        )
        return DeadLetter.of(
            event, kafka.deadletter_topic, reason=rejected.reason, detail=rejected.detail
        )

    async def evaluate(stream: Stream, events: StreamT[bytes]) -> AsyncIterator[Outputs]:
        # In batches: the windowed rules' share of a whole batch travels as one record per
        # windows partition. Faust acks a batch's events only after its outputs are published.
        batch: Sequence[EventT[bytes]]
        # `take_events` is on Faust's Stream, not yet on its StreamT protocol.
        batches = cast(faust.Stream[bytes], events).take_events(
            engine.batch_size, within=engine.batch_wait
        )
        async for batch in batches:
            outputs: Outputs = []
            hop = HopBuilder(stream, windows_partitions, evaluator.inputs_version)
            for event in batch:
                try:
                    outcome = evaluator.process(stream, event.value)
                except EventRejected as rejected:
                    outputs.append(dead_letter(event, rejected))
                    continue
                outputs.extend(outcome.alerts)
                if outcome.regroups and event.value is not None:
                    hop.add(
                        event.value,
                        [(group.grouping, group.key, group.inputs) for group in outcome.regroups],
                        outcome.timestamp,
                        outcome.watermark,
                    )
            outputs.extend(hop.batches())
            yield outputs

    @app.agent(topics[kafka.ratings_topic], name="evaluate-ratings", sink=[publish])
    async def evaluate_ratings(events: StreamT[bytes]) -> AsyncIterator[Outputs]:
        async for outputs in evaluate(Stream.RATINGS, events):
            yield outputs

    @app.agent(topics[kafka.interactions_topic], name="evaluate-interactions", sink=[publish])
    async def evaluate_interactions(events: StreamT[bytes]) -> AsyncIterator[Outputs]:
        async for outputs in evaluate(Stream.INTERACTIONS, events):
            yield outputs

    @app.agent(topics[kafka.windows_topic], name="evaluate-windows", sink=[publish])
    async def evaluate_windows(records: StreamT[bytes]) -> AsyncIterator[Outputs]:
        # Runs on the partition of the batch's group keys, where their window state lives; the
        # table writes go to that partition's changelog when the batch is done.
        record: EventT[bytes]
        async for record in records.events():
            try:
                batch = ReceivedBatch.from_json(record.value)
            except ValueError as exc:
                # Written by an input agent: only a foreign producer could get here.
                log.warning(
                    "unreadable record on the windows topic at %s: %s", record.message.offset, exc
                )
                yield []
                continue
            partition = record.message.partition
            buffered = BufferedWindowStore(store)
            alerts: Outputs = [*evaluator.windowed_batch(batch, buffered, partition=partition)]
            buffered.flush()
            # Windows whose end is `expires` behind this partition's event time are done.
            watermark = max(
                (time for (_, at), time in evaluator.watermarks.items() if at == partition),
                default=0.0,
            )
            store.expire(partition, watermark)
            yield alerts

    @app.agent(topics[kafka.alerts_topic], name="deliver-alerts", sink=[publish])
    async def deliver_alerts(records: StreamT[bytes]) -> AsyncIterator[Outputs]:
        async for raw in records:
            alert = Alert.from_json(raw)
            if followup is not None:
                holdout = await until_redis_answers(
                    partial(followup.on_alert, alert), what=f"the holdout of {alert.id}"
                )
                if holdout is not None:
                    # Held out of recovery: recorded and surveyed, not delivered for action.
                    stats.alerts_held_out[alert.rule] += 1
                    yield [holdout]
                    continue
            failures = await deliverer.deliver(alert)
            yield [
                DeadLetter(
                    topic=kafka.failed_alerts_topic,
                    key=alert.id.encode(),
                    value=raw,
                    headers=deadletter.headers(
                        reason="delivery_failed", detail=failure.reason, topic=failure.destination
                    ),
                )
                for failure in failures
            ]

    if followup is not None:
        from alert_engine.followup.agents import add_followup

        add_followup(app, settings, followup, topics[kafka.cases_topic], publish, stats)

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        return web.json({"status": "ok", "ruleset": evaluator.ruleset.version})

    @app.page("/ready")
    async def ready(web: Any, request: Any) -> Any:
        # Ready once this worker owns partitions and no rebalance is under way.
        assigned = bool(app.consumer.assignment()) if app.consumer else False
        is_ready = assigned and not app.rebalancing
        return web.json({"ready": is_ready}, status=200 if is_ready else 503)

    @app.page("/stats")
    async def stats_view(web: Any, request: Any) -> Any:
        problems = reloader.problems if reloader is not None else []
        return web.json(
            {"ruleset": evaluator.ruleset.version, "ruleset_problems": problems, **stats.as_dict()}
        )

    return app


def _window_without_expiry(window: HoppingWindow) -> HoppingWindow:
    """The window for a table that Faust must not expire (the store does, by event time).

    Faust's compiled HoppingWindow turns `expires=None` into 0.0, and a table whose window has
    any `expires` other than None indexes every write for an expiry that then never comes: an
    index growing with each write. Its pure-Python twin keeps None."""
    python_window = getattr(faust.windows, "_PyHoppingWindow", HoppingWindow)
    without: HoppingWindow = python_window(window.size, window.step)
    return without
