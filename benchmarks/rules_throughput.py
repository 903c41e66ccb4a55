"""Throughput of one worker with 10, 100 and 1,000 rules against a bare Faust agent.

    .venv/bin/python benchmarks/rules_throughput.py [--events 20000] [--rules 10,100,1000]
                                                    [--repeat 1]

Starts the local Kafka broker and Redis (or uses ALERT_ENGINE_KAFKA_BOOTSTRAP and
ALERT_ENGINE_REDIS_URL), writes the same ratings to a fresh topic per run, then starts one worker
on it: first a bare agent that only decodes and counts, then `alert-engine worker` with generated
rule sets (80% filters, 20% windowed rules, state in a Faust table). The rate is events per
second from the first event the worker counted to the last one, including the windowed agent's
work on the re-keyed events, both per second of wall time and per second of the worker's own CPU
time: on a shared, busy machine the second is the steadier figure. With `--repeat N` the runs
go round N times and the table shows each run's median. Results are printed as a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from alert_engine.cli.kafka import ensure_topics, produce_lines
from alert_engine.events import Stream
from alert_engine.rules.load import load_ruleset
from alert_engine.settings import KafkaSettings
from devstack.stack import Endpoints, running_stack
from devstack.webclient import Credentials, SignedInClient, new_credentials, write_members_file
from devstack.workerprocess import free_port

BENCH_DIR = Path(__file__).parent
TEAMS, AGENTS, CHANNELS = 10, 50, 4
WINDOWED_PERCENT = int(os.environ.get("BENCH_WINDOWED_PERCENT", "20"))


def make_events(count: int) -> list[bytes]:
    rng = random.Random(7)
    now = datetime.now(UTC)
    events = []
    for n in range(count):
        events.append(
            orjson.dumps(
                {
                    "id": f"r-{n}",
                    "rating": rng.choices([1, 2, 3, 4, 5], weights=[2, 3, 10, 35, 50])[0],
                    "nps": rng.randint(0, 10),
                    "comment": rng.choice([None, "Quick and friendly.", "Waited far too long."]),
                    "customer": {"id": f"c-{rng.randint(0, 5000)}", "tier": "gold"},
                    "agent": {"id": f"a-{rng.randint(0, AGENTS - 1)}"},
                    "team": f"team-{rng.randint(0, TEAMS - 1)}",
                    "channel": f"ch-{rng.randint(0, CHANNELS - 1)}",
                    "time": (now + timedelta(milliseconds=n)).isoformat(),
                }
            )
        )
    return events


def write_rules(directory: Path, count: int) -> None:
    """80% filters of a few conditions each, 20% windowed rules over three groupings."""
    directory.mkdir(parents=True)
    windowed = count * WINDOWED_PERCENT // 100
    groupings = ["agent.id", "team", "channel"]
    windows = ["{size: 15m}", "{size: 1h}", "{size: 30m}", "{size: 1h, step: 15m}"]
    rules = []
    for i in range(count - windowed):
        rules.append(
            {
                "name": f"filter-{i}",
                "source": "ratings",
                "condition": f"rating == 1 && team == 'team-{i}' && "
                f"(comment == null || !comment.contains('thanks {i}'))",
            }
        )
    text = "rules:\n" + "".join(
        f"  - name: {r['name']}\n    source: ratings\n    condition: {json.dumps(r['condition'])}\n"
        for r in rules
    )
    for i in range(windowed):
        text += (
            f"  - name: windowed-{i}\n    source: ratings\n"
            f"    group_by: {groupings[i % len(groupings)]}\n"
            f"    window: {windows[i % len(windows)]}\n"
            "    aggregates: {n: count(), average: avg(rating), "
            f"low: count_if(rating <= {i % 3 + 1})}}\n"
            f"    min_sample: 5\n    condition: average < 1.0 && low > {1000 + i}\n"
        )
    (directory / "generated.yaml").write_text(text)


def stats(client: SignedInClient) -> dict[str, Any]:
    result: dict[str, Any] = client.get_json("/stats")
    return result


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux `/proc`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_worker(
    command: list[str],
    env: dict[str, str],
    log: Path,
    total: int,
    windowed: int,
    member: Credentials | None = None,
) -> tuple[float, float]:
    """Start a worker on pre-produced events; events per second of wall time and per second of
    the worker's CPU time, from its first counted event to the last. `member`: who reads the
    engine's `/stats` (the bare agent's needs no sign-in)."""
    port = free_port()
    env = {**os.environ, **env, "ALERT_ENGINE_WEB_PORT": str(port)}
    client = SignedInClient(f"http://127.0.0.1:{port}", member)
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600
        first: tuple[float, int, float] | None = None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"worker exited: {log.read_text()[-3000:]}")
            try:
                current = stats(client)
            except (OSError, RuntimeError):  # not serving yet
                time.sleep(0.2)
                continue
            seen = current["events_in"].get("ratings", 0)
            regrouped = current["windowed_in"].get("ratings", 0)
            now = time.monotonic()
            if first is None and seen > 0:
                first = (now, seen, cpu_seconds(process.pid))
            if os.environ.get("BENCH_VERBOSE"):
                print(f"  {now:.1f} events {seen} windowed {regrouped}", flush=True)
            if seen >= total and regrouped >= windowed and first is not None:
                cpu = cpu_seconds(process.pid) - first[2]
                return (total - first[1]) / (now - first[0]), (total - first[1]) / cpu
            time.sleep(0.05)
        raise RuntimeError("the worker did not finish within 600 s")
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rules", default="10,100,1000")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of all runs, one after the other; the table shows each run's median",
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.rules.split(",")]
    events = make_events(args.events)
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    rounds: dict[str, list[tuple[float, float]]] = {}
    with running_stack(work / "stack") as endpoints:
        # Rounds rather than each run N times in a row: a busy spell on a shared machine then
        # slows one round of every run, not every round of one.
        for round_number in range(1, args.repeat + 1):
            for size in [None, *sizes]:
                name = "bare agent (decode + count)" if size is None else f"{size} rules"
                wall, cpu = scenario(endpoints, work, events, size)
                rounds.setdefault(name, []).append((wall, cpu))
                print(
                    f"round {round_number}, {name}: {wall:,.0f} events/s, "
                    f"{cpu:,.0f} per CPU-second",
                    flush=True,
                )
    results = [
        (
            name,
            statistics.median(wall for wall, _ in runs),
            statistics.median(cpu for _, cpu in runs),
        )
        for name, runs in rounds.items()
    ]
    bare_wall, bare_cpu = results[0][1], results[0][2]
    medians = f", medians of {args.repeat} rounds" if args.repeat > 1 else ""
    print(f"\n{len(events):,} ratings, 1 worker, 4 partitions{medians}")
    print(f"{'run':<30}{'events/s':>10}{'vs bare':>9}{'events/CPU-s':>14}{'vs bare':>9}")
    for name, wall, cpu in results:
        print(
            f"{name:<30}{wall:>10,.0f}{wall / bare_wall:>9.0%}{cpu:>14,.0f}{cpu / bare_cpu:>9.0%}"
        )
    return 0


def scenario(
    endpoints: Endpoints, work: Path, events: list[bytes], rules: int | None
) -> tuple[float, float]:
    unique = uuid.uuid4().hex[:8]
    kafka = KafkaSettings(bootstrap=endpoints.kafka_bootstrap, partitions=4).with_topic_suffix(
        unique
    )
    asyncio.run(ensure_topics(kafka))
    asyncio.run(produce_lines(kafka.bootstrap, kafka.ratings_topic, events))
    env = {
        **endpoints.as_env(),
        "ALERT_ENGINE_APP_ID": f"bench-{unique}",
        "BENCH_APP_ID": f"bench-{unique}",
        "ALERT_ENGINE_REDIS_KEY_PREFIX": f"bench-{unique}",
        "ALERT_ENGINE_OUTBOX_PATH": str(work / f"outbox-{unique}.jsonl"),
        "ALERT_ENGINE_RULES_RELOAD_SECONDS": "0",
        **{
            f"ALERT_ENGINE_KAFKA_{name.upper()}": str(value)
            for name, value in kafka.model_dump().items()
            # An unset setting (None) is left to the worker's default: "None" is no number.
            if name != "bootstrap" and value is not None
        },
    }
    log = work / f"worker-{unique}.log"
    if rules is None:
        command = [sys.executable, str(BENCH_DIR / "bare_agent.py"), "worker", "-l", "warning"]
        return run_worker(command, env, log, len(events), 0)
    rules_dir = work / f"rules-{unique}"
    write_rules(rules_dir, rules)
    groupings = len(load_ruleset(rules_dir).groupings[Stream.RATINGS])
    env["ALERT_ENGINE_RULES_DIR"] = str(rules_dir)
    member = new_credentials("bench")
    members = write_members_file(work / f"members-{unique}.json", [member])
    env["ALERT_ENGINE_SIGNIN_MEMBERS_FILE"] = str(members)
    command = [sys.executable, "-m", "alert_engine.cli.main", "worker", "--loglevel", "warning"]
    return run_worker(command, env, log, len(events), len(events) * groupings, member)


if __name__ == "__main__":
    sys.exit(main())
