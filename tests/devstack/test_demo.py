"""The demo's scripted recovery team on a real worker: with `--keep-running` it leaves a case for
the user to claim and resolve on the outbox page."""

import asyncio
import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from alert_engine.settings import DatabaseSettings
from devstack.demo import close_the_loop
from devstack.stack import ENV_KAFKA_BOOTSTRAP, ENV_REDIS_URL, Endpoints
from tests.engine import encode_all
from tests.factories import rating
from tests.followup.test_schedule import read_emails
from tests.followup_factories import followup_engine

pytestmark = pytest.mark.integration


def test_kept_running_the_demo_leaves_the_last_case_for_the_user(
    stack: Endpoints,
    unique: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    database_url: str,
) -> None:
    engine = followup_engine(stack, unique, tmp_path)
    # As the demo runs it: the worker projects the outcome history the demo's report reads.
    engine.env["ALERT_ENGINE_DATABASE_URL"] = database_url
    worker = engine.worker().start()
    try:
        other = {"id": "c-2", "name": "Maya Chen", "email": "maya@example.com"}
        engine.produce(
            engine.kafka.ratings_topic,
            encode_all([rating(id="r-demo-1"), rating(id="r-demo-2", customer=other)]),
        )
        engine.wait_for(lambda: len(engine.delivered()) == 2)
        history = DatabaseSettings(url=database_url)
        answered = asyncio.run(
            close_the_loop(worker.client, engine.outbox, engine.surveys, history, leave_open=1)
        )
        assert answered == 1
        [closed, left] = engine.delivered()
        [email] = read_emails(engine.surveys)
        assert email["alert_id"] == closed["id"]
        out = capsys.readouterr().out
        assert f"Left open for you: case {left['id']}" in out
        # The outcome as the history has it: both alerts, the answered one 1 -> 4 stars.
        report = out[out.index("Outcome by team, from the history") :]
        cases, outcome = [line.split() for line in report.splitlines() if line.startswith("all ")]
        assert cases[1:3] == ["2", "1"]  # two alerts, one claimed
        assert outcome[1:3] == ["1.0→4.0", "4.00x"]

        # The user's clicks on the page: the open case can still be claimed and resolved.
        form = {"alert_id": left["id"]}
        assert worker.client.post_form("/outbox/act", {**form, "action": "claim"}) == 303
        resolve = {**form, "action": "resolved_followup", "reason": "refund"}
        # The page asks first (200, the confirm step), then takes the confirmed form.
        assert worker.client.post_form("/outbox/act", resolve) == 200
        assert worker.client.post_form("/outbox/act", {**resolve, "confirm": "yes"}) == 303
        engine.wait_for(lambda: len(read_emails(engine.surveys)) == 2)
        assert read_emails(engine.surveys)[1]["alert_id"] == left["id"]
    finally:
        worker.stop()


REPO_ROOT = Path(__file__).resolve().parents[2]


def _descendants(pid: int) -> dict[int, int]:
    """Live descendants of `pid` and their process groups (Linux /proc)."""
    found: dict[int, int] = {}
    parents = [pid]
    while parents:
        parent = parents.pop()
        for task in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                children = [int(child) for child in task.read_text().split()]
            except FileNotFoundError:
                continue
            for child in children:
                try:
                    found[child] = os.getpgid(child)
                except ProcessLookupError:
                    continue
                parents.append(child)
    return found


def _alive_in_groups(groups: set[int]) -> list[str]:
    """Processes (not zombies) still in any of `groups`, as "pid command"."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ")".
        comm_end = text.rindex(")")
        state, _ppid, pgrp = text[comm_end + 2 :].split()[:3]
        if int(pgrp) in groups and state != "Z":
            alive.append(f"{stat.parent.name} {text[: comm_end + 1]}")
    return alive


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["SIGTERM", "SIGINT", "SIGKILL"]
)
def test_a_signalled_demo_leaves_no_process_behind(tmp_path: Path, sig: signal.Signals) -> None:
    env = {k: v for k, v in os.environ.items() if k not in (ENV_KAFKA_BOOTSTRAP, ENV_REDIS_URL)}
    # Killed, the demo cannot stop its worker first: the worker's shutdown meets a dead broker.
    env["ALERT_ENGINE_SHUTDOWN_TIMEOUT"] = "5"
    demo = subprocess.Popen(
        [sys.executable, "-m", "devstack", "demo", "--workdir", str(tmp_path / "demo")],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # A group of its own, apart from pytest's: what is left in it is the demo's doing.
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    # A reader thread: a pipe read cannot time out, and a hung start must fail the test.

    def read() -> None:
        for line in demo.stdout or ():
            lines.put(line)

    threading.Thread(target=read).start()
    children: dict[int, int] = {}
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"the demo's worker was not ready in 180 s (exit {demo.poll()})")
            if "worker ready" in line:
                break
        children = _descendants(demo.pid)
        # Redis, the Kafka broker and the worker.
        assert len(children) >= 3, children
        demo.send_signal(sig)
        assert demo.wait(timeout=60) == (-signal.SIGKILL if sig is signal.SIGKILL else 0)
        groups = set(children.values())
        # Orphans are re-parented, not gone: look for them by process group.
        deadline = time.monotonic() + 30
        while (left := _alive_in_groups(groups)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert left == []
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        for group in set(children.values()) - {os.getpgrp()}:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
