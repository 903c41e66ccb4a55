"""Sustained load through one worker on a real Kafka broker and Redis.

Produces ratings at a fixed rate (1 in 20 negative, so 5% raise an alert) for a given duration,
each stamped with the moment it is produced, and measures the latency from that moment to the
alert landing in the worker's outbox (the Slack stand-in does not exist yet). Then checks that
every expected alert arrived exactly once, and reports the worker's memory over the run.

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
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from alert_engine.channels.outbox import read_outbox
from alert_engine.producer import ensure_topics
from alert_engine.settings import KafkaSettings
from alert_engine.stack import running_stack
from alert_engine.workerprocess import WorkerProcess

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


def events_in(worker: WorkerProcess) -> int:
    with urllib.request.urlopen(worker.url + "/stats", timeout=5) as response:
        return int(sum(json.loads(response.read())["events_in"].values()))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def run(rate: int, duration: float, backlog: int, partitions: int, workdir: Path) -> dict[str, Any]:
    unique = uuid.uuid4().hex[:8]
    with running_stack(workdir / "stack") as endpoints:
        kafka = KafkaSettings(
            bootstrap=endpoints.kafka_bootstrap, partitions=partitions
        ).with_topic_suffix(f"bench-{unique}")
        asyncio.run(ensure_topics(kafka))
        outbox = workdir / "outbox.jsonl"
        env = {
            **endpoints.as_env(),
            "ALERT_ENGINE_APP_ID": f"bench-{unique}",
            "ALERT_ENGINE_RULES_DIR": str(Path(__file__).parents[1] / "rules"),
            "ALERT_ENGINE_OUTBOX_PATH": str(outbox),
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
        worker.start()
        assert worker.process is not None
        memory: list[tuple[float, float]] = []
        try:
            produce = produce_at_rate(kafka.bootstrap, kafka.ratings_topic, rate, duration)

            async def sample_memory() -> None:
                start = time.monotonic()
                while True:
                    assert worker.process is not None
                    memory.append((time.monotonic() - start, rss_mb(worker.process.pid)))
                    await asyncio.sleep(5)

            async def both() -> int:
                sampler = asyncio.create_task(sample_memory())
                try:
                    return await produce
                finally:
                    sampler.cancel()

            cpu_before, wall_before = cpu_seconds(worker.process.pid), time.monotonic()
            sent = asyncio.run(both())
            worker_cpu = (cpu_seconds(worker.process.pid) - cpu_before) / (
                time.monotonic() - wall_before
            )
            expected = len(range(0, sent, NEGATIVE_EVERY))
            deadline = time.monotonic() + 60
            while len(read_outbox(outbox)) < expected and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(1.0)
            # All of it processed by now: the worker's CPU time per event, whatever it had to wait.
            cpu_per_event = (cpu_seconds(worker.process.pid) - cpu_before) / events_in(worker)
        finally:
            worker.stop()
    # The worker runs every shipped rule (windowed ones too); the 1-star feed is what is counted.
    entries = [
        entry
        for entry in read_outbox(outbox)
        if entry["alert"]["rule"] == "negative-rating"  # type: ignore[index]
    ]

    def seconds(entry: dict[str, Any], start: str, end: str) -> float:
        def at(name: str) -> datetime:
            holder = entry if name == "delivered_at" else entry["alert"]
            return datetime.fromisoformat(str(holder[name]))

        return (at(end) - at(start)).total_seconds()

    latencies = [seconds(entry, "event_time", "delivered_at") for entry in entries]
    # Where the time goes: produce -> rule fired, and fired -> delivered (alerts topic, delivery).
    to_fired = [seconds(entry, "event_time", "fired_at") for entry in entries]
    to_delivered = [seconds(entry, "fired_at", "delivered_at") for entry in entries]
    keys = Counter(str(entry["alert"]["key"]) for entry in entries)  # type: ignore[index]
    return {
        "mode": "sustained",
        "rate": rate,
        "duration_s": duration,
        "events": sent,
        "expected_alerts": expected,
        "delivered": len(entries),
        "duplicates": sum(n - 1 for n in keys.values() if n > 1),
        "lost": expected - len(keys),
        "latency_ms": {
            "p50": round(percentile(latencies, 0.50) * 1000, 1),
            "p95": round(percentile(latencies, 0.95) * 1000, 1),
            "p99": round(percentile(latencies, 0.99) * 1000, 1),
            "max": round(max(latencies) * 1000, 1),
            "mean": round(statistics.fmean(latencies) * 1000, 1),
        },
        "produce_to_fired_ms": {
            "p50": round(percentile(to_fired, 0.50) * 1000, 1),
            "p99": round(percentile(to_fired, 0.99) * 1000, 1),
        },
        "fired_to_delivered_ms": {
            "p50": round(percentile(to_delivered, 0.50) * 1000, 1),
            "p99": round(percentile(to_delivered, 0.99) * 1000, 1),
        },
        "worker_cpu_share_of_one_core": round(worker_cpu, 2),
        "worker_cpu_ms_per_event": round(cpu_per_event * 1000, 3),
        "load_average_1m_at_end": os.getloadavg()[0],
        "worker_rss_mb": [(round(t), round(mb, 1)) for t, mb in memory],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000, help="events per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--backlog", type=int, default=0, help="drain N events instead")
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="alert-engine-bench-") as tmp:
        result = run(args.rate, args.duration, args.backlog, args.partitions, Path(tmp))
    result["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
