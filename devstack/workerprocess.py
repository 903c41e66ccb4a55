"""A worker in its own process, as `alert-engine worker` runs it: used by the demo and the tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from devstack.ports import free_ports
from devstack.supervisor import kill_process, spawn, stop_process
from devstack.webclient import Credentials, SignedInClient, new_credentials, write_members_file


class WorkerProcess:
    def __init__(
        self,
        env: Mapping[str, str],
        log_path: Path,
        options: Sequence[str] = (),
        *,
        sign_in: bool = True,
    ) -> None:
        """`options`: added to `alert-engine worker` (`--loglevel debug`). Unless the
        environment configures sign-in (or `sign_in` is false), the worker gets a members file
        with one member, `devstack`, as whom `client` signs in."""
        self.options = list(options)
        self.web_port = free_port()
        self.env = {**os.environ, **env, "ALERT_ENGINE_WEB_PORT": str(self.web_port)}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.credentials: Credentials | None = None
        if sign_in and not any(name.startswith("ALERT_ENGINE_SIGNIN_") for name in self.env):
            self.credentials = new_credentials("devstack", "Devstack")
            members = log_path.with_name(log_path.stem + "-members.json")
            write_members_file(members, [self.credentials])
            self.env["ALERT_ENGINE_SIGNIN_MEMBERS_FILE"] = str(members)
        self._client: SignedInClient | None = None

    @property
    def client(self) -> SignedInClient:
        """A client signed in as the worker's `devstack` member (see `__init__`)."""
        if self._client is None:
            self._client = SignedInClient(self.url, self.credentials)
        return self._client

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self, ready_timeout: float = 120.0) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Own process group: a terminal's Ctrl-C reaches only the caller, which stops the
        # worker before Kafka and Redis, so that its last commit still reaches the broker.
        # Should the caller die without stopping it, Linux sends it SIGTERM: its shutdown
        # is bounded (`alert_engine.worker.shutdown`) even with the broker gone too.
        self.process = spawn(
            [sys.executable, "-m", "alert_engine.cli.main", "worker", *self.options],
            self.log_path,
            death_signal=signal.SIGTERM,
            env=self.env,
        )
        self.wait_ready(ready_timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        """Until the worker has joined its group and no rebalance is under way. A worker alone in
        its group then owns every partition: events produced from then on are evaluated at once."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the worker exited with code {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the worker was not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def readiness(self) -> dict[str, Any]:
        """The worker's `/ready` body, whether it answered 200 or 503."""
        try:
            with urllib.request.urlopen(self.url + "/ready", timeout=5) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            body = exc.read()
        state: dict[str, Any] = json.loads(body)
        return state

    def stats(self) -> dict[str, Any]:
        """The worker's `/stats` counters (and the ruleset's name and problems)."""
        stats: dict[str, Any] = self.client.get_json("/stats")
        return stats

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds (the worker's own shutdown timeout is
        shorter: this is for a worker that cannot even exit)."""
        if self.process is not None:
            stop_process(self.process, timeout, "the worker")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit, as in a crash."""
        if self.process is not None:
            kill_process(self.process)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    """A free loopback port, never one this process handed out before (`devstack.ports`)."""
    (port,) = free_ports(1)
    return port
