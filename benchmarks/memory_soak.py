"""Memory soak: one worker keeping windows for 100,000 distinct keys, its RSS sampled over time.

One windowed rule, grouped by `customer.id`, counts every rating in tumbling windows (a condition
that never holds, so the figure is the window state and not alert delivery). Ratings arrive at a
steady rate, their customer cycling through `--keys` distinct ids; the worker's RSS (VmRSS from
/proc/<pid>/status) is sampled every few seconds from the start. Reports the samples, and for the
samples after the warm-up: first, last, min and max RSS and the slope of a least-squares line
(MB per minute); and how far the worker kept up. A fresh local stack is started (Kafka + Redis).

    .venv/bin/python -m benchmarks.memory_soak                       # 10 minutes, 500 events/s
    .venv/bin/python -m benchmarks.memory_soak --window 5m --duration 1200

A window's state is kept until its end is `expires` (grace + max(60 s, hop), here 2 m + 1 m)
behind the event time of its partition. So the state fills up for `size + expires` and then old
windows are dropped as fast as new ones fill: the warm-up defaults to that plus a minute
(5 minutes for the default 1 m windows), and the slope and the min/max after it are the figures to
read. With 5 m windows the warm-up is 13 minutes: a 10-minute run shows only the fill-up. Pick a
rate the worker keeps up with (`events_processed_by_end` close to `events_sent`): a backlog is
not a steady state.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from alert_engine.cli.kafka import ensure_topics
from alert_engine.settings import KafkaSettings
from alert_engine.windows.definitions import WindowSpec
from benchmarks.load import events_in, produce_at_rate, rss_mb
from devstack.stack import running_stack
from devstack.workerprocess import WorkerProcess

RULE = """\
name: soak-per-customer
description: Counts every rating per customer; never fires (memory soak).
source: ratings
group_by: customer.id
window: {{size: {window}}}
aggregates:
  ratings: count()
condition: ratings > 1000000
severity: low
route: default
"""
GRACE = "2m"
DEFAULTS = f"severity: low\nroute: default\ngrace: {GRACE}\n"


def default_warmup(window: str) -> float:
    """Until the first windows have been dropped: size + expires + Faust's 30 s cleanup + 30 s."""
    spec = WindowSpec(size=window, grace=GRACE)
    expires = spec.faust_window(spec.grace).expires
    assert expires is not None
    return spec.size + expires + 60.0


def event(n: int, keys: int) -> bytes:
    return orjson.dumps(
        {
            "id": f"r-{n}",
            "rating": 4,
            "comment": "Fine.",
            "customer": {"id": f"c-{n % keys}"},
            "agent": {"id": f"a-{n % 500}"},
            "team": "orders",
            "channel": "chat",
            "time": datetime.now(UTC).isoformat(),
        }
    )


def slope_mb_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of RSS over time."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_mb = sum(mb for _, mb in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    cov = sum((t - mean_t) * (mb - mean_mb) for t, mb in samples)
    return cov / var * 60 if var else 0.0


def run(
    rate: int, duration: float, warmup: float, every: float, keys: int, window: str, workdir: Path
) -> dict[str, Any]:
    unique = uuid.uuid4().hex[:8]
    rules = workdir / "rules"
    rules.mkdir()
    (rules / "_defaults.yaml").write_text(DEFAULTS)
    (rules / "soak.yaml").write_text(RULE.format(window=window))
    with running_stack(workdir / "stack") as endpoints:
        kafka = KafkaSettings(bootstrap=endpoints.kafka_bootstrap, partitions=4).with_topic_suffix(
            f"soak-{unique}"
        )
        asyncio.run(ensure_topics(kafka))
        env = {
            **endpoints.as_env(),
            "ALERT_ENGINE_APP_ID": f"soak-{unique}",
            "ALERT_ENGINE_RULES_DIR": str(rules),
            "ALERT_ENGINE_OUTBOX_PATH": str(workdir / "outbox.jsonl"),
            "ALERT_ENGINE_REDIS_KEY_PREFIX": f"soak-{unique}",
            **{
                f"ALERT_ENGINE_KAFKA_{name.upper()}": str(value)
                for name, value in kafka.model_dump().items()
                if name != "bootstrap"
            },
        }
        worker = WorkerProcess(env, workdir / "worker.log").start()
        assert worker.process is not None
        pid = worker.process.pid
        samples: list[tuple[float, float]] = []
        try:
            at_start = rss_mb(pid)

            async def sample() -> None:
                start = time.monotonic()
                while True:
                    samples.append((time.monotonic() - start, rss_mb(pid)))
                    await asyncio.sleep(every)

            async def soak() -> int:
                sampler = asyncio.create_task(sample())
                try:
                    return await produce_at_rate(
                        kafka.bootstrap,
                        kafka.ratings_topic,
                        rate,
                        duration,
                        lambda n: event(n, keys),
                    )
                finally:
                    sampler.cancel()

            sent = asyncio.run(soak())
            processed_at_end = events_in(worker)
        finally:
            worker.stop()
    settled = [(t, mb) for t, mb in samples if t >= warmup]
    rss = [mb for _, mb in settled]
    return {
        "rate": rate,
        "duration_s": duration,
        "keys": keys,
        "distinct_keys_sent": min(sent, keys),
        "window": window,
        "grace": GRACE,
        "warmup_s": warmup,
        "events_sent": sent,
        "events_processed_by_end": processed_at_end,
        "rss_mb_before_load": round(at_start, 1),
        "rss_mb_max_during_warmup": round(
            max((mb for t, mb in samples if t < warmup), default=0), 1
        ),
        "after_warmup": {
            "rss_mb_first": round(rss[0], 1),
            "rss_mb_last": round(rss[-1], 1),
            "rss_mb_min": round(min(rss), 1),
            "rss_mb_max": round(max(rss), 1),
            "slope_mb_per_minute": round(slope_mb_per_minute(settled), 2),
        }
        if rss
        else None,
        "samples": [(round(t), round(mb, 1)) for t, mb in samples],
        "load_average_1m_at_end": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=500, help="events per second")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument(
        "--warmup", type=float, help="seconds before the slope is measured (default: see above)"
    )
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--keys", type=int, default=100_000, help="distinct customer ids")
    parser.add_argument("--window", default="1m", help="the rule's tumbling window size")
    args = parser.parse_args()
    warmup = args.warmup if args.warmup is not None else default_warmup(args.window)
    with tempfile.TemporaryDirectory(prefix="alert-engine-soak-") as tmp:
        result = run(
            args.rate, args.duration, warmup, args.every, args.keys, args.window, Path(tmp)
        )
    result["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
