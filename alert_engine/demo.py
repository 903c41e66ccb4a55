"""`make demo`: local Kafka + Redis, a real worker process, a scripted feed, alerts as they fire."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import zlib
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

# (stars, customer, agent, team, channel, comment)
FEED: list[tuple[int, str, str, str, str, str]] = [
    (5, "Maya Chen", "Sam Ortiz", "billing", "phone", "Quick and friendly, thank you!"),
    (
        1,
        "Jordan Lee",
        "Priya Nair",
        "orders",
        "chat",
        "Waited 40 minutes and my order is still lost.",
    ),
    (4, "Alex Kim", "Sam Ortiz", "billing", "email", ""),
    (
        2,
        "Riley Park",
        "Tom Becker",
        "returns",
        "phone",
        "Was transferred three times, nobody owned it.",
    ),
    (5, "Noor Haddad", "Priya Nair", "orders", "chat", "Solved in two minutes."),
    (3, "Chris Diaz", "Tom Becker", "returns", "phone", "It was fine I guess."),
    (1, "Sasha Ivanova", "Lena Vogel", "orders", "phone", "Rude agent, hung up on me."),
    (5, "Omar Said", "Lena Vogel", "orders", "chat", "Great help with my refund."),
]


def run_demo(workdir: Path, *, pause: float = 1.0, keep_running: bool = False) -> int:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    outbox = workdir / "outbox.jsonl"
    _say("starting Kafka and Redis (first run resolves the broker's jars from Maven Central)...")
    with running_stack(workdir / "stack") as endpoints:
        _say(f"Kafka at {endpoints.kafka_bootstrap}, Redis at {endpoints.redis_url}")
        env = {
            **endpoints.as_env(),
            "ALERT_ENGINE_OUTBOX_PATH": str(outbox),
            "ALERT_ENGINE_RULES_DIR": os.environ.get("ALERT_ENGINE_RULES_DIR", "rules"),
            "ALERT_ENGINE_APP_ID": "alert-engine-demo",
        }
        kafka = KafkaSettings(bootstrap=endpoints.kafka_bootstrap)
        asyncio.run(ensure_topics(kafka))
        worker = WorkerProcess(env, workdir / "worker.log")
        _say(f"starting a worker (log: {worker.log_path}, stats: {worker.url}/stats)")
        try:
            worker.start()
            _say("worker ready; playing the demo feed\n")
            expected, latencies = asyncio.run(_play(kafka, outbox, pause))
            seen = len(read_outbox(outbox))
            _say(
                f"\n{len(FEED)} ratings, {seen} alert(s) delivered, {expected} expected; "
                f"slowest alert {max(latencies, default=0.0):.2f} s after its rating."
            )
            _say(f"Alerts as delivered: {outbox}")
            _say(
                f"Alerts as the recovery team sees them, with working Claim / Resolve buttons: "
                f"{worker.url}/outbox"
                + ("" if keep_running else " (run `alert-engine demo --keep-running` to click)")
            )
            if keep_running:
                _say("Kafka, Redis and the worker keep running; press Ctrl-C to stop.")
                while True:
                    time.sleep(3600)
            return 0 if seen == expected else 1
        except KeyboardInterrupt:
            return 0
        finally:
            worker.stop()


async def _play(kafka: KafkaSettings, outbox: Path, pause: float) -> tuple[int, list[float]]:
    expected = 0
    latencies: list[float] = []
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    await producer.start()
    try:
        for number, (stars, customer, agent, team, channel, comment) in enumerate(FEED, start=1):
            produced_at = datetime.now(UTC)
            event = _rating(number, stars, customer, agent, team, channel, comment, produced_at)
            await producer.send_and_wait(kafka.ratings_topic, orjson.dumps(event))
            quote = f' "{comment}"' if comment else ""
            _say(
                f"  rating {event['id']}  {'★' * stars}{'☆' * (5 - stars)}  {customer} about "
                f"{agent} ({team}, {channel}){quote}"
            )
            if stars <= 2:
                expected += 1
            alert = await _wait_for_alert(outbox, event["id"], within=pause if stars > 2 else 10.0)
            if alert is not None:
                delivered_at = datetime.fromisoformat(str(alert["delivered_at"]))
                latency = (delivered_at - produced_at).total_seconds()
                latencies.append(latency)
                body: Any = alert["alert"]
                _say(
                    f"  ⚠ ALERT {body['rule']} [{body['severity']}] for {event['id']}: "
                    f"delivered {latency:.2f} s after the rating"
                )
            await asyncio.sleep(pause)
    finally:
        await producer.stop()
    return expected, latencies


def _rating(
    number: int,
    stars: int,
    customer: str,
    agent: str,
    team: str,
    channel: str,
    comment: str,
    at: datetime,
) -> dict[str, Any]:
    return {
        "id": f"r-{1000 + number}",
        "rating": stars,
        "comment": comment or None,
        "customer": {"id": f"c-{zlib.crc32(customer.encode()) % 10_000:04d}", "name": customer},
        "agent": {"id": agent.lower().replace(" ", "."), "name": agent},
        "team": team,
        "channel": channel,
        "interaction_id": f"i-{5000 + number}",
        "time": at.isoformat(),
    }


async def _wait_for_alert(outbox: Path, event_id: str, within: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for entry in read_outbox(outbox):
            alert: Any = entry["alert"]
            if alert["key"] == event_id:
                return entry
        await asyncio.sleep(0.02)
    return None


def _say(text: str) -> None:
    print(text, flush=True)
