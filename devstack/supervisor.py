"""Child processes that cannot outlive us: started in their own process group with their output
in a log file, stopped with SIGTERM then SIGKILL, and `Server`, a supervised server process that
answers on a port.

Every child of the local stack (Kafka, Redis, PostgreSQL, a worker) runs through `spawn`, so the
rules are written once: its own session (a terminal's Ctrl-C reaches only us, and we stop the
children in order), a death signal from Linux should we die without stopping it, and signals sent
to the whole group (a server's own children go with it).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from devstack.errors import StackError
from devstack.ports import HOST, port_accepts

__all__ = [
    "Server",
    "die_with_parent",
    "kill_process",
    "require_tool",
    "spawn",
    "stop_process",
]

log = logging.getLogger(__name__)

_LOG_TAIL_LINES = 40
_PR_SET_PDEATHSIG = 1


def require_tool(name: str, hint: str) -> str:
    """The path of program `name` on PATH; `hint` says how to install it when it is missing."""
    path = shutil.which(name)
    if path is None:
        raise StackError(f"`{name}` is not on PATH; {hint}")
    return path


def die_with_parent(death_signal: signal.Signals = signal.SIGKILL) -> Callable[[], None] | None:
    """A preexec_fn that has Linux send the child `death_signal` when this process dies.

    atexit covers normal exits; this covers SIGKILL and crashes of the caller. The death signal
    fires when the *thread* that forked exits, so it is only armed from the main thread: a child
    started from a short-lived worker thread would otherwise die with that thread.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not (
        threading.main_thread()
    ):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before fork: the child only calls into it
    parent = os.getpid()

    def arm() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(death_signal))
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return arm


def spawn(
    argv: Sequence[str],
    log_path: Path,
    *,
    death_signal: signal.Signals = signal.SIGKILL,
    **popen: Any,
) -> subprocess.Popen[bytes]:
    """Start `argv` in a session of its own, its output appended to `log_path`, sent
    `death_signal` should this process die first. `popen`: more arguments of Popen (cwd, env,
    the user to run as)."""
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(death_signal),
            **popen,
        )


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    # Only called before the leader is reaped, so its pid (= the group id) cannot be reused.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def stop_process(proc: subprocess.Popen[bytes], timeout: float, name: str) -> None:
    """SIGTERM to `proc`'s group, then SIGKILL after `timeout` seconds; a no-op once it exited."""
    if proc.poll() is not None:
        return
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("%s did not stop within %.0fs; killing it", name, timeout)
        _signal_group(proc, signal.SIGKILL)
        proc.wait()


def kill_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL to `proc`'s group, no clean shutdown; a no-op once it exited."""
    if proc.poll() is not None:
        return
    _signal_group(proc, signal.SIGKILL)
    proc.wait()


class Server:
    """A server process in its own process group, logging into one file, stopped at exit."""

    name = "server"

    def __init__(self, workdir: Path, log_name: str) -> None:
        self.workdir = Path(workdir).resolve()
        self.log_path = self.workdir / log_name
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise StackError(f"{self.name} has not been started: its port is chosen by start()")
        return self._port

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self.is_running() and self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def _log_tail(self, offset: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(offset)
                text = fh.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log written)"
        lines = text.splitlines()[-_LOG_TAIL_LINES:]
        return "\n".join(lines) if lines else "(log is empty)"

    def _error(self, what: str, offset: int) -> StackError:
        return StackError(
            f"{self.name} {what}; log: {self.log_path}\n"
            f"--- last lines of the log ---\n{self._log_tail(offset)}"
        )

    def _run_step(
        self, what: str, argv: list[str], deadline: float, offset: int, **popen: Any
    ) -> None:
        """Run a one-off preparation (`what`: "storage format", "initdb") to its end, its output
        in the server's log, by `deadline`. `popen`: more arguments of subprocess.run."""
        with open(self.log_path, "ab") as log_file:
            try:
                done = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    timeout=max(1.0, deadline - time.monotonic()),
                    check=False,
                    **popen,
                )
            except subprocess.TimeoutExpired as exc:
                raise self._error(f"{what} timed out", offset) from exc
        if done.returncode != 0:
            raise self._error(f"{what} failed (exit {done.returncode})", offset)

    def _spawn(self, argv: list[str], **popen: Any) -> None:
        """`popen`: more arguments of Popen (the user to run as, say)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._proc = spawn(argv, self.log_path, cwd=self.workdir, **popen)
        except OSError as exc:
            command = shlex.join(argv)
            raise StackError(f"{self.name} could not be started: {command}: {exc}") from exc
        atexit.register(self.stop)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds. Safe to call at any time, repeatedly."""
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is not None:
            stop_process(proc, timeout, self.name)

    def kill(self) -> None:
        """SIGKILL, no clean shutdown: for fault tests. Data and port stay for a later start()."""
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is not None:
            kill_process(proc)

    def _check_alive(self, offset: int) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            code = self._proc.returncode
            self._proc = None
            atexit.unregister(self.stop)
            raise self._error(f"exited during start-up (exit code {code})", offset)

    def _wait_ready(
        self,
        probe: Callable[[float], bool],
        deadline: float,
        offset: int,
        started: float,
        poll_s: float,
    ) -> None:
        while True:
            self._check_alive(offset)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop(timeout=5.0)
                raise self._error(f"was not ready within {time.monotonic() - started:.0f}s", offset)
            if port_accepts(self.port) and probe(min(5.0, remaining)):
                log.info(
                    "%s ready on %s:%d in %.1fs (log: %s)",
                    self.name,
                    HOST,
                    self.port,
                    time.monotonic() - started,
                    self.log_path,
                )
                return
            time.sleep(poll_s)
