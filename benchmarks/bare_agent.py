"""The baseline: a Faust agent that only decodes and counts ratings, served on /stats.

Run by benchmarks/rules_throughput.py with the same broker, topic and partition count as the
engine's worker.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import faust
from faust.types import StreamT

from alert_engine.events import EventRejected, Stream, decode_event
from alert_engine.worker.collector import tune_collector

app = faust.App(
    os.environ["BENCH_APP_ID"],
    broker=f"kafka://{os.environ['ALERT_ENGINE_KAFKA_BOOTSTRAP']}",
    store="memory://",
    key_serializer="raw",
    value_serializer="raw",
    web_host="127.0.0.1",
    web_port=int(os.environ["ALERT_ENGINE_WEB_PORT"]),
    autodiscover=False,
)
topic = app.topic(os.environ["ALERT_ENGINE_KAFKA_RATINGS_TOPIC"], key_type=bytes, value_type=bytes)
counts = {"ratings": 0, "rejected": 0}


@app.agent(topic)
async def count(events: StreamT[bytes]) -> AsyncIterator[None]:
    async for raw in events:
        try:
            decode_event(Stream.RATINGS, raw, max_bytes=65536)
        except EventRejected:
            counts["rejected"] += 1
        counts["ratings"] += 1
        yield None


@app.page("/stats")
async def stats(web: Any, request: Any) -> Any:
    return web.json({"events_in": {"ratings": counts["ratings"]}, "windowed_in": {}})


@app.page("/ready")
async def ready(web: Any, request: Any) -> Any:
    assigned = bool(app.consumer.assignment()) if app.consumer else False
    return web.json({"ready": assigned}, status=200 if assigned else 503)


if __name__ == "__main__":
    runner = faust.Worker(app, loglevel="WARNING")
    runner.spinner = None  # as `alert-engine worker` does: no DEBUG root logger for a spinner
    tune_collector()  # and the same garbage collector settings
    runner.execute_from_commandline()
