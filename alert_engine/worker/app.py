"""The Faust application: topics and agents only. Everything done per event lives in `evaluate`
and `delivery`; rules and clients are built by the caller and passed in.

Each agent yields, once per input record (most agents: once per batch of records), the records
it produces (alerts, dead letters, window batches; maybe none), and one sink publishes them.
Faust awaits the sink before taking the next record or batch, acks a batch's records only after
that, and flushes the producer before committing offsets, so an input is never committed before
its outputs are durable in Kafka. The windowed agent sends its alerts itself, and waits for Kafka
to have them before it writes the window state that says they fired; it writes that state once
per commit interval, and acks its records only then (`worker.batches.DeferredAcks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from functools import partial
from typing import Any, cast

import faust
from faust.types import EventT, StreamT

from alert_engine import deadletters
from alert_engine.alerts import Alert
from alert_engine.cases import CaseEvent
from alert_engine.deadletters import PROCESSING_ERROR, UNREADABLE, DeadLetter
from alert_engine.delivery.deliverer import Deliverer
from alert_engine.delivery.inorder import InOrderAcks, Taken
from alert_engine.edge import Edge
from alert_engine.evaluate import Evaluator
from alert_engine.events import EventRejected, Stream
from alert_engine.followup.service import FollowupService
from alert_engine.rules.reload import RulesReloader
from alert_engine.settings import Settings
from alert_engine.stats import Stats
from alert_engine.storage.outage import until_redis_answers
from alert_engine.windows.hop import HopBuilder, ReceivedBatch, WindowBatch
from alert_engine.windows.store import TableWindowStore, WindowStateTable
from alert_engine.worker.batches import DeferredAcks, waiting_batches
from alert_engine.worker.contiguity import Contiguity
from alert_engine.worker.metrics import serve_metrics
from alert_engine.worker.outputs import Outputs
from alert_engine.worker.readiness import readiness
from alert_engine.worker.topics import Topics

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    evaluator: Evaluator,
    deliverer: Deliverer,
    stats: Stats,
    followup: FollowupService | None = None,
    reloader: RulesReloader | None = None,
) -> tuple[faust.App, Topics]:
    """The app, and its topics for whatever else sends to them."""
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
        producer_linger=kafka.producer_linger,
        broker_session_timeout=kafka.session_timeout,
        broker_heartbeat_interval=kafka.heartbeat_interval,
        web_host=settings.web.host,
        web_port=settings.web.port,
        autodiscover=False,
    )

    metrics_token = settings.metrics.token
    serve_metrics(app, stats.registry, metrics_token.get_secret_value() if metrics_token else None)

    topics = Topics.create(app, kafka)
    # The windowed rules' state: one Faust table (memory store, changelog-backed) holding all
    # windows of a group key in one entry, so a batch writes one changelog message per key (see
    # `TableWindowStore`). Windows expire by event time in the store, not by Faust.
    # (`app.Table` with our table class, which places entries by their key.)
    table = WindowStateTable(
        app,
        name="window-state",
        default=None,
        beacon=app.tables.beacon,
        schema=faust.Schema(key_serializer="json", value_serializer="json"),
        partitions=kafka.partitions,
        help="windowed rules' state: per group key, per window shape and window",
    )
    app.tables.add(table)
    store = TableWindowStore(table, evaluator.ruleset.windows(), kafka.partitions)

    # Per agent: records its stream passed over are read again (see `worker.contiguity`).
    contiguities: list[Contiguity] = []

    def contiguity() -> Contiguity:
        made = Contiguity(app)
        contiguities.append(made)
        return made

    @app.on_rebalance_complete.connect
    async def reread_windows(_: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Faust read entries back from the changelog or dropped revoked partitions' entries.
        store.table_changed()
        evaluator.forget_watermarks()
        for each in contiguities:
            each.forget()

    @app.on_partitions_revoked.connect
    async def forget_offsets(_: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        for each in contiguities:
            each.forget()

    if reloader is not None and settings.engine.rules_reload_seconds > 0:

        async def reload_rules() -> None:
            if reloader.check():
                # A reloaded rule set may use new window shapes: one table holds them all.
                store.add_windows(evaluator.ruleset.windows())

        app.timer(interval=settings.engine.rules_reload_seconds, name="reload-rules")(reload_rules)

    # The largest record the producer sends; a dead letter must fit in it.
    max_record_bytes = int(app.conf.producer_max_request_size)

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
                key, value, headers = deadletters.fit(
                    output.key, output.value, output.headers, max_record_bytes
                )
                if value is not output.value or key is not output.key:
                    log.warning(
                        "dead letter for %s truncated to fit in a record of %d bytes",
                        output.headers.get(deadletters.HEADER_PREFIX + "topic", b"").decode(),
                        max_record_bytes,
                    )
                await topics[output.topic].send(key=key, value=value, headers=headers)

    engine = settings.engine
    windows_partitions = topics[kafka.windows_topic].partitions or kafka.partitions
    edge = Edge(settings.events, stats)

    # An agent's events in batches (`EngineSettings.batch_size`, the waits), with a `Contiguity`
    # of its own.
    def batches(
        events: StreamT[bytes], linger: float, ack: bool = True
    ) -> AsyncIterator[list[EventT[bytes]]]:
        return waiting_batches(
            cast(faust.Stream[bytes], events),
            engine.batch_size,
            engine.batch_wait,
            contiguity().admit,
            linger=linger,
            ack=ack,
        )

    def dead_letter(
        event: EventT[bytes], rejected: EventRejected, fault: Exception | None = None
    ) -> DeadLetter:
        message = event.message
        where = (message.topic, message.partition, message.offset)
        if fault is None:
            log.warning("dead-lettered %s[%s]@%s: %s", *where, rejected)
        else:
            # The engine's fault, not the event's: an error, with its traceback.
            log.error("dead-lettered %s[%s]@%s: %s", *where, rejected.reason, exc_info=fault)
        return DeadLetter.of(
            event, kafka.deadletter_topic, reason=rejected.reason, detail=rejected.detail
        )

    def processing_error(event: EventT[bytes], exc: Exception) -> DeadLetter:
        stats.events_rejected[PROCESSING_ERROR] += 1
        detail = f"{type(exc).__name__}: {exc}"
        return dead_letter(event, EventRejected(PROCESSING_ERROR, detail), fault=exc)

    async def evaluate(stream: Stream, events: StreamT[bytes]) -> AsyncIterator[Outputs]:
        # In batches: the windowed rules' share of a whole batch travels as one record per
        # windows partition. Faust acks a batch's events only after its outputs are published.
        async for batch in batches(events, engine.batch_linger):
            outputs: Outputs = []
            hop = HopBuilder(
                stream,
                windows_partitions,
                evaluator.inputs_version,
                fold=partial(evaluator.fold, stream),
            )
            for event in batch:
                message = event.message
                try:
                    edge.check(stream.value, event.value, message.timestamp)
                    outcome = evaluator.process(stream, event.value, partition=message.partition)
                    if outcome.regroups and event.value is not None:
                        hop.add(
                            event.value,
                            [(g.grouping, g.key, g.inputs) for g in outcome.regroups],
                            outcome.timestamp,
                            outcome.watermark,
                            message.partition,
                            outcome.event_id,
                        )
                except EventRejected as rejected:
                    outputs.append(dead_letter(event, rejected))
                    continue
                except Exception as exc:
                    # A fault of the engine that this event sets off. Raised, it would stop the
                    # agent with its whole batch unpublished, and every restart would replay
                    # the batch into the same fault: the event is dead-lettered instead.
                    outputs.append(processing_error(event, exc))
                    continue
                outputs.extend(outcome.alerts)
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
        # Runs on the partitions of the records' group keys, where their window state lives.
        # In batches of records; the state the batches changed is written once per commit
        # interval, one changelog message per group key however many batches changed it, and
        # the records are acknowledged (so committed) only once it is written.
        stream = cast(faust.Stream[bytes], records)
        acks = DeferredAcks(stream, store.flush, float(app.conf.broker_commit_interval))
        writer = asyncio.create_task(acks.run())
        try:
            async for batch in batches(stream, engine.windows_batch_linger, ack=False):
                async with acks.lock:
                    letters = await apply_windows(batch)
                yield letters
                # Its dead letters are published by now.
                acks.done(batch)
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def apply_windows(batch: list[EventT[bytes]]) -> Outputs:
        """A batch of `windows` records applied to the window state, its alerts in Kafka; its
        dead letters."""
        alerts: list[Alert] = []
        letters: Outputs = []
        partitions: set[int] = set()
        for record in batch:
            try:
                received = ReceivedBatch.from_json(record.value)
            except ValueError as exc:
                # Written by an input agent: only a foreign producer could get here. Kept,
                # never dropped silently: it may hold events some windows should count.
                stats.events_rejected[UNREADABLE] += 1
                letters.append(dead_letter(record, EventRejected(UNREADABLE, str(exc))))
                continue
            partition = record.message.partition
            partitions.add(partition)
            # With its offset: a record replayed after a crash counts once (the state of
            # each group key says which records it holds).
            alerts.extend(
                evaluator.windowed_batch(
                    received, store, partition=partition, offset=record.message.offset
                )
            )
        for partition in partitions:
            # Windows whose end is `expires` behind this partition's watermark are done.
            store.expire(partition, evaluator.watermark(partition))
        # The alerts are in Kafka before the state that marks their rules fired is written:
        # killed in between, the worker fires them again when it replays the records (the
        # same ids, delivered once); the other way round it would lose them. One wait per
        # batch.
        sent = [
            await topics[kafka.alerts_topic].send(key=alert.id.encode(), value=alert.to_json())
            for alert in alerts
        ]
        await asyncio.gather(*sent)
        return letters

    async def deliver(alert: Alert, raw: bytes) -> Outputs:
        if followup is not None:
            holdout = await until_redis_answers(
                partial(followup.on_alert, alert), what=f"the holdout of {alert.id}"
            )
            if holdout is not None:
                # Held out of recovery: recorded and surveyed, not delivered for action.
                stats.alerts_held_out[alert.rule] += 1
                return [holdout]
        failures = await deliverer.deliver(alert)
        return [
            DeadLetter.failed_delivery(
                kafka.failed_alerts_topic,
                alert.id,
                raw,
                destination=failure.destination,
                error=failure.reason,
            )
            for failure in failures
        ]

    @app.agent(topics[kafka.alerts_topic], name="deliver-alerts")
    async def deliver_alerts(records: StreamT[bytes]) -> None:
        # Each alert is delivered on its own, as soon as it is read: one that waits for a retry
        # (or for its destination to answer again) holds up no other. Acknowledgements keep
        # each partition's order (`InOrderAcks`), after the alert's dead letters are sent: Faust
        # flushes the producer before it commits. At most `max_pending` alerts are in hand.
        stream = cast(faust.Stream[bytes], records)
        stream.enable_acks = False
        acks = InOrderAcks(stream.ack)
        contiguous = contiguity()
        room = asyncio.Semaphore(settings.delivery.max_pending)
        in_hand: dict[str, asyncio.Task[None]] = {}

        async def deliver_one(
            alert: Alert, raw: bytes, taken: Taken, before: asyncio.Task[None] | None
        ) -> None:
            try:
                if before is not None:
                    # The same alert twice (an event evaluated again after a restart) is
                    # delivered once: at once, both would find it not yet delivered.
                    await asyncio.wait([before])
                await publish(await deliver(alert, raw))
                await acks.done(taken)
            finally:
                room.release()
                if in_hand.get(alert.id) is asyncio.current_task():
                    del in_hand[alert.id]

        # A delivery that raises (a bug, not a failed send) stops the agent, as it always did.
        async with asyncio.TaskGroup() as deliveries:
            async for value in stream:
                event = stream.current_event
                if event is None:  # pragma: no cover - Faust sets it for every value it yields
                    raise RuntimeError("a stream value without its event")
                if not await contiguous.admit(event):
                    continue
                await room.acquire()
                raw = value or b""
                alert = Alert.from_json(raw)
                taken = acks.take(event)
                in_hand[alert.id] = deliveries.create_task(
                    deliver_one(alert, raw, taken, in_hand.get(alert.id))
                )

    if followup is not None:
        from alert_engine.worker.followup_agents import add_followup

        add_followup(app, settings, followup, topics.cases, publish, stats)

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        return web.json({"status": "ok", "ruleset": evaluator.ruleset.version})

    @app.page("/ready")
    async def ready(web: Any, request: Any) -> Any:
        # Joined the group and not rebalancing; a member without partitions is a ready standby.
        state = readiness(app, topics.by_name.keys())
        return web.json(state.as_dict(), status=200 if state.ready else 503)

    @app.page("/stats")
    async def stats_view(web: Any, request: Any) -> Any:
        problems = reloader.problems if reloader is not None else []
        return web.json(
            {"ruleset": evaluator.ruleset.version, "ruleset_problems": problems, **stats.as_dict()}
        )

    return app, topics
