"""A worker stops within its shutdown timeout of SIGTERM, even with Kafka and Redis gone."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from alert_engine.worker.shutdown import EXIT_SHUTDOWN_TIMEOUT
from devstack.stack import LocalStack
from devstack.workerprocess import WorkerProcess

pytestmark = pytest.mark.integration

SHUTDOWN_TIMEOUT = 5.0


def test_a_worker_whose_kafka_and_redis_are_gone_exits_within_its_shutdown_timeout(
    tmp_path: Path,
) -> None:
    stack = LocalStack(tmp_path / "stack")
    endpoints = stack.start()
    worker = WorkerProcess(
        {
            **endpoints.as_env(),
            "ALERT_ENGINE_OUTBOX_PATH": str(tmp_path / "outbox.jsonl"),
            "ALERT_ENGINE_RULES_DIR": "rules",
            "ALERT_ENGINE_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT),
        },
        tmp_path / "worker.log",
    )
    try:
        worker.start()
        assert worker.process is not None
        stack.kafka.kill()
        stack.redis.kill()
        worker.process.terminate()
        signalled = time.monotonic()
        # Faust alone waited over 60 s on the dead broker; the margin is for a loaded machine.
        try:
            code = worker.process.wait(timeout=SHUTDOWN_TIMEOUT + 20)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker still ran 25 s after SIGTERM:\n{worker.log_tail()}")
        took = time.monotonic() - signalled
        assert code == EXIT_SHUTDOWN_TIMEOUT, worker.log_tail()
        assert took >= SHUTDOWN_TIMEOUT
        assert "worker did not stop within 5 s of SIGTERM" in worker.log_path.read_text()
    finally:
        worker.stop()
        stack.stop()


def test_a_worker_with_its_stack_up_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with LocalStack(tmp_path / "stack") as endpoints:
        worker = WorkerProcess(
            {
                **endpoints.as_env(),
                "ALERT_ENGINE_OUTBOX_PATH": str(tmp_path / "outbox.jsonl"),
                "ALERT_ENGINE_RULES_DIR": "rules",
            },
            tmp_path / "worker.log",
        )
        try:
            worker.start()
            assert worker.process is not None
            worker.process.terminate()
            assert worker.process.wait(timeout=60) == 0, worker.log_tail()
            assert "did not stop within" not in worker.log_path.read_text()
        finally:
            worker.stop()
