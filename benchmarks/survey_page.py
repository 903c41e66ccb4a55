"""How fast the follow-up survey page answers: a real worker on a local stack, one survey sent,
then its page fetched N times over HTTP (a GET does not use the link up).

    .venv/bin/python benchmarks/survey_page.py [N]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from alert_engine.alerts import Alert, alert_id
from alert_engine.cases import CaseEvent, CaseState
from alert_engine.channels.outbox import read_outbox
from alert_engine.cli.kafka import ensure_topics, produce_lines
from alert_engine.events import Stream
from alert_engine.rules.spec import Severity
from alert_engine.settings import KafkaSettings
from devstack.stack import running_stack
from devstack.workerprocess import WorkerProcess


def main(count: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-survey-"))
    surveys = workdir / "surveys.jsonl"
    with running_stack(workdir / "stack") as endpoints:
        kafka = KafkaSettings(bootstrap=endpoints.kafka_bootstrap)
        asyncio.run(ensure_topics(kafka))
        env = {
            **endpoints.as_env(),
            "ALERT_ENGINE_APP_ID": "bench-survey",
            "ALERT_ENGINE_OUTBOX_PATH": str(workdir / "outbox.jsonl"),
            "ALERT_ENGINE_FOLLOWUP_DELAY_SECONDS": "0",
            "ALERT_ENGINE_FOLLOWUP_QUIET_START": "00:00",
            "ALERT_ENGINE_FOLLOWUP_QUIET_END": "00:00",
            "ALERT_ENGINE_FOLLOWUP_OUTBOX_PATH": str(surveys),
        }
        worker = WorkerProcess(env, workdir / "worker.log").start()
        try:
            now = datetime.now(UTC)
            event = {
                "id": "r-bench",
                "rating": 1,
                "customer": {"id": "c-1", "name": "Jordan Lee", "email": "jordan@example.com"},
                "agent": {"id": "a-1", "name": "Priya Nair"},
                "team": "orders",
                "channel": "chat",
                "time": now.isoformat(),
            }
            alert = Alert(
                id=alert_id("negative-rating", "r-bench"),
                rule="negative-rating",
                severity=Severity.HIGH,
                route="default",
                key="r-bench",
                stream=Stream.RATINGS,
                event=event,
                values={"rating": 1},
                event_time=now,
                fired_at=now,
                ruleset_version="bench",
            )
            case = CaseEvent(
                alert_id=alert.id, state=CaseState.RESOLVED_FOLLOWUP, at=now, alert=alert
            )
            asyncio.run(produce_lines(kafka.bootstrap, kafka.cases_topic, [case.to_json()]))
            deadline = time.monotonic() + 30
            while not read_outbox(surveys):
                if time.monotonic() > deadline:
                    raise SystemExit("no survey email within 30 s")
                time.sleep(0.1)
            link = str(read_outbox(surveys)[0]["link"])
            timings = []
            size = 0
            for _ in range(count):
                started = time.perf_counter()
                with urllib.request.urlopen(link, timeout=10) as response:
                    size = len(response.read())
                timings.append((time.perf_counter() - started) * 1000)
        finally:
            worker.stop()
    timings.sort()
    p95 = timings[int(0.95 * (len(timings) - 1))]
    print(
        f"{count} GETs of the survey page ({size} bytes): median "
        f"{statistics.median(timings):.1f} ms, p95 {p95:.1f} ms, max {timings[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
