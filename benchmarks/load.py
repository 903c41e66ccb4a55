"""Sustained load through one worker on a real Kafka broker and Redis, delivering to Slack.

Produces ratings at a fixed rate (1 in 20 negative, so 5% raise a `negative-rating` alert) for a
given duration and measures the latency from the moment each negative rating is produced to the
moment its `chat.postMessage` request arrives at the Slack stand-in (`standins/slack.py`, the
worker's real slack_sdk client pointed at it through `ALERT_ENGINE_SLACK_API_URL`, the alerts routed
there by a routing file). The worker runs the shipped rules (`rules/`, windowed ones too). Then
checks that every expected alert arrived exactly once, and reports the worker's memory over the run.

    .venv/bin/python -m benchmarks.load                       # 1,000 events/s for 60 s
    .venv/bin/python -m benchmarks.load --duration 300        # the 5-minute run
    .venv/bin/python -m benchmarks.load --backlog 50000       # one worker's top rate

`--backlog N` produces N events before the worker starts and times how fast one worker drains
them: the figure to size a deployment with. A fresh local stack is started unless
ALERT_ENGINE_KAFKA_BOOTSTRAP and ALERT_ENGINE_REDIS_URL name one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from alert_engine.alerts import alert_id
from alert_engine.cli.kafka import ensure_topics
from alert_engine.settings import KafkaSettings
from devstack.stack import Endpoints, running_stack
from devstack.workerprocess import WorkerProcess
from standins.slack import TOKEN, SlackStandIn

SHIPPED_RULES = Path(__file__).parents[1] / "rules"

NEGATIVE_EVERY = 20  # 5%
TICK = 0.01  # produce in 10 ms slices


def event(n: int) -> bytes:
    return orjson.dumps(
        {
            "id": f"r-{n}",
            "rating": 1 if n % NEGATIVE_EVERY == 0 else 5,
            "comment": "Waited 40 minutes and my order is still lost.",
            "customer": {"id": f"c-{n % 100_000}", "tier": "gold"},
            "agent": {"id": f"a-{n % 500}"},
            "team": "orders",
            "channel": "chat",
            "time": datetime.now(UTC).isoformat(),
        }
    )


async def produce_at_rate(
    bootstrap: str,
    topic: str,
    rate: int,
    duration: float,
    make_event: Callable[[int], bytes] = event,
) -> int:
    """Sends `make_event(n)` for n = 0, 1, ... at `rate` per second for `duration` seconds."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    sent = 0
    try:
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < duration:
            due = int(elapsed * rate)
            while sent < due:
                await producer.send(topic, make_event(sent))
                sent += 1
            await asyncio.sleep(TICK)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


async def produce_backlog(bootstrap: str, topic: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        for n in range(count):
            await producer.send(topic, event(n))
        await producer.flush()
    finally:
        await producer.stop()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pids_running(needle: str) -> list[int]:
    """Processes whose command line holds `needle` (the broker started for this run's directory)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if needle.encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def events_in(worker: WorkerProcess) -> int:
    return int(sum(worker.stats()["events_in"].values()))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


# Every alert to one Slack channel (the stand-in), as a deployment routing alerts to Slack does.
ROUTING = """\
destinations:
  recovery: {type: slack, channel: C0RECOVERY}
route:
  destinations: [recovery]
"""
# The rule whose alerts are timed and counted: one per negative rating. The windowed shipped rules
# fire too (a burst per team, repeat customers); their posts are counted apart.
TIMED_RULE = "negative-rating"


async def fired_times(bootstrap: str, topic: str, partitions: int) -> dict[str, datetime]:
    """Alert id -> when its rule fired, read back from the alerts topic once the run is over."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: dict[str, datetime] = {}
    try:
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)

        async def behind() -> bool:
            return any([await consumer.position(tp) < end for tp, end in ends.items()])

        while await behind():
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    alert = orjson.loads(record.value)
                    found[alert["id"]] = datetime.fromisoformat(alert["fired_at"])
    finally:
        await consumer.stop()
    return found


def run(
    rate: int,
    duration: float,
    backlog: int,
    partitions: int,
    workdir: Path,
    with_timeline: bool = False,
) -> dict[str, Any]:
    unique = uuid.uuid4().hex[:8]
    slack = SlackStandIn().start()
    try:
        with running_stack(workdir / "stack") as endpoints:
            return _run(
                endpoints,
                slack,
                unique,
                rate,
                duration,
                backlog,
                partitions,
                workdir,
                with_timeline,
            )
    finally:
        slack.stop()


def _run(
    endpoints: Endpoints,
    slack: SlackStandIn,
    unique: str,
    rate: int,
    duration: float,
    backlog: int,
    partitions: int,
    workdir: Path,
    with_timeline: bool,
) -> dict[str, Any]:
    kafka = KafkaSettings(
        bootstrap=endpoints.kafka_bootstrap, partitions=partitions
    ).with_topic_suffix(f"bench-{unique}")
    asyncio.run(ensure_topics(kafka))
    routing = workdir / "routing.yaml"
    routing.write_text(ROUTING)
    env = {
        **endpoints.as_env(),
        "ALERT_ENGINE_APP_ID": f"bench-{unique}",
        "ALERT_ENGINE_RULES_DIR": str(SHIPPED_RULES),
        "ALERT_ENGINE_ROUTING_FILE": str(routing),
        "ALERT_ENGINE_SLACK_BOT_TOKEN": TOKEN,
        "ALERT_ENGINE_SLACK_SIGNING_SECRET": "bench-signing-secret",
        "ALERT_ENGINE_SLACK_API_URL": slack.base_url,
        "ALERT_ENGINE_OUTBOX_PATH": str(workdir / "outbox.jsonl"),
        "ALERT_ENGINE_REDIS_KEY_PREFIX": f"bench-{unique}",
        "ALERT_ENGINE_KAFKA_PARTITIONS": str(partitions),
        **{
            f"ALERT_ENGINE_KAFKA_{name.upper()}": value
            for name, value in kafka.model_dump().items()
            if name.endswith("_topic")
        },
    }
    worker = WorkerProcess(env, workdir / "worker.log")
    if backlog:
        asyncio.run(produce_backlog(kafka.bootstrap, kafka.ratings_topic, backlog))
        started = time.monotonic()
        worker.start()
        try:
            while events_in(worker) < backlog:
                time.sleep(0.2)
            drained = time.monotonic() - started
            return {
                "mode": "backlog",
                "events": backlog,
                "seconds_from_start_to_drained": round(drained, 1),
                "events_per_second_including_start": round(backlog / drained),
            }
        finally:
            worker.stop()

    # Alert id of each negative rating -> when it was handed to the producer (wall clock, as the
    # stand-in's arrival time).
    produced_at: dict[str, float] = {}

    # Events handed to the producer so far: the generator, on a loaded machine, falls behind too.
    produced = [0]

    def timed_event(n: int) -> bytes:
        produced[0] = n + 1
        value = event(n)
        if n % NEGATIVE_EVERY == 0:
            produced_at[alert_id(TIMED_RULE, f"r-{n}")] = time.time()
        return value

    def slack_posts() -> list[tuple[str, float]]:
        """(alert id, arrival time) of every alert posted to the stand-in."""
        return [
            (str(post.metadata["event_payload"].get("alert_id")), post.received_at)
            for post in slack.posts()
            if post.metadata is not None
        ]

    worker.start()
    assert worker.process is not None
    memory: list[tuple[float, float]] = []
    behind: list[tuple[float, int]] = []
    # Per half second: the CPU the worker and the broker used in it (a stall shows which one
    # was busy, or neither: a wait), and the events the worker had taken in by then.
    timeline: list[dict[str, float]] = []
    broker = [pid for pid in pids_running(str(workdir / "stack")) if pid != worker.process.pid]
    try:
        produce = produce_at_rate(kafka.bootstrap, kafka.ratings_topic, rate, duration, timed_event)

        async def sample_memory() -> None:
            start = time.monotonic()
            while True:
                assert worker.process is not None
                elapsed = time.monotonic() - start
                memory.append((elapsed, rss_mb(worker.process.pid)))
                # Events produced by now that the worker has not taken in yet.
                taken_in = await asyncio.to_thread(events_in, worker)
                behind.append((elapsed, int(elapsed * rate) - taken_in))
                await asyncio.sleep(5)

        async def sample_cpu() -> None:
            assert worker.process is not None
            start = time.monotonic()
            last = (cpu_seconds(worker.process.pid), sum(map(cpu_seconds, broker)), start)
            while True:
                await asyncio.sleep(0.5)
                now = (cpu_seconds(worker.process.pid), sum(map(cpu_seconds, broker)))
                at = time.monotonic()
                taken_in = await asyncio.to_thread(events_in, worker)
                timeline.append(
                    {
                        "t": round(at - start, 2),
                        "worker_cpu": round((now[0] - last[0]) / (at - last[2]), 2),
                        "broker_cpu": round((now[1] - last[1]) / (at - last[2]), 2),
                        "behind": int((at - start) * rate) - taken_in,
                        # Produced and not yet taken in: what the worker had waiting.
                        "waiting": produced[0] - taken_in,
                        "load": os.getloadavg()[0],
                    }
                )
                last = (*now, at)

        async def both() -> int:
            samplers = [asyncio.create_task(sample_memory())]
            if with_timeline:
                samplers.append(asyncio.create_task(sample_cpu()))
            try:
                return await produce
            finally:
                for sampler in samplers:
                    sampler.cancel()

        cpu_before, wall_before = cpu_seconds(worker.process.pid), time.monotonic()
        sent = asyncio.run(both())
        worker_cpu = (cpu_seconds(worker.process.pid) - cpu_before) / (
            time.monotonic() - wall_before
        )
        expected = len(produced_at)
        deadline = time.monotonic() + 60
        while (
            len({i for i, _ in slack_posts()} & produced_at.keys()) < expected
            and time.monotonic() < deadline
        ):
            time.sleep(0.5)
        time.sleep(1.0)  # a duplicate would arrive now
        # All of it processed by now: the worker's CPU time per event, whatever it had to wait.
        cpu_per_event = (cpu_seconds(worker.process.pid) - cpu_before) / events_in(worker)
    finally:
        worker.stop()
    fired_at = asyncio.run(fired_times(kafka.bootstrap, kafka.alerts_topic, partitions))

    posts = slack_posts()
    timed = [(i, at) for i, at in posts if i in produced_at]
    latencies = [at - produced_at[i] for i, at in timed]
    # Where the time goes: produce -> rule fired, and fired -> Slack request (alerts topic,
    # delivery ledger, the Slack client).
    to_fired = [fired_at[i].timestamp() - produced_at[i] for i, _ in timed if i in fired_at]
    to_slack = [at - fired_at[i].timestamp() for i, at in timed if i in fired_at]
    counts = Counter(i for i, _ in timed)
    # Whether the worker keeps up: the median latency of the alerts of each 10 s of production
    # (a lag that grows slice after slice is a worker slower than the feed).
    first = min(produced_at.values(), default=0.0)
    slices: dict[int, list[float]] = {}
    seconds: dict[int, list[float]] = {}
    for i, at in timed:
        slices.setdefault(int((produced_at[i] - first) // 10), []).append(at - produced_at[i])
        seconds.setdefault(int(produced_at[i] - first), []).append(at - produced_at[i])
    return {
        "mode": "sustained",
        "rate": rate,
        "duration_s": duration,
        "rules": sorted(path.stem for path in SHIPPED_RULES.glob("[!_]*.yaml")),
        "events": sent,
        "expected_alerts": expected,
        "delivered": len(timed),
        "duplicates": sum(n - 1 for n in counts.values() if n > 1),
        # Not at the stand-in 60 s after the last event: lost, or late behind a backlog.
        "not_posted": expected - len(counts),
        "other_rules_posts": len(posts) - len(timed),
        "latency_ms": milliseconds(latencies, mean=True),
        "produce_to_fired_ms": milliseconds(to_fired),
        "fired_to_slack_ms": milliseconds(to_slack),
        "p50_ms_by_10s_of_production": [
            round(percentile(values, 0.5) * 1000, 1) for _, values in sorted(slices.items())
        ],
        "worker_cpu_share_of_one_core": round(worker_cpu, 2),
        "worker_cpu_ms_per_event": round(cpu_per_event * 1000, 3),
        "load_average_1m_at_end": os.getloadavg()[0],
        "worker_rss_mb": [(round(t), round(mb, 1)) for t, mb in memory],
        "events_not_yet_taken_in": [(round(t), n) for t, n in behind],
        **(
            {
                "timeline": timeline,
                # The slowest alert of each second of production: when a stall began.
                "max_latency_ms_by_1s_of_production": [
                    round(max(values) * 1000) for _, values in sorted(seconds.items())
                ],
            }
            if with_timeline
            else {}
        ),
    }


def milliseconds(seconds: list[float], mean: bool = False) -> dict[str, float] | None:
    if not seconds:
        return None
    figures = {
        "p50": percentile(seconds, 0.50),
        "p95": percentile(seconds, 0.95),
        "p99": percentile(seconds, 0.99),
        "max": max(seconds),
    }
    if mean:
        figures["mean"] = statistics.fmean(seconds)
    return {name: round(value * 1000, 1) for name, value in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000, help="events per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--backlog", type=int, default=0, help="drain N events instead")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--keep", type=Path, help="keep the worker's log and files here")
    parser.add_argument(
        "--timeline",
        action="store_true",
        help="also sample the worker's and the broker's CPU every 0.5 s, and report the slowest "
        "alert of each second (to find a stall)",
    )
    args = parser.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        result = run(
            args.rate, args.duration, args.backlog, args.partitions, args.keep, args.timeline
        )
    else:
        with tempfile.TemporaryDirectory(prefix="alert-engine-bench-") as tmp:
            result = run(
                args.rate, args.duration, args.backlog, args.partitions, Path(tmp), args.timeline
            )
    result["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
