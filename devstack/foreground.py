"""Running in the foreground of a terminal until Ctrl-C or SIGTERM: the signals turned into an
exception that unwinds every `with` and `finally` (so each child started is stopped), and
`run_until_stopped`, which serves a started stack the way `python -m devstack up` and
`python -m devstack.cluster up` do.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Protocol

import click

from devstack.errors import StackError
from devstack.stack import Endpoints
from devstack.supervisor import Server

__all__ = ["StopRequested", "run_until_stopped", "stop_on_signals", "workdir_option"]

# The `up` commands' one option: where the stack keeps its data and logs.
workdir_option = click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    help="Keep data and logs here (default: a temp dir, removed).",
)


class StopRequested(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived inside `stop_on_signals`.

    A KeyboardInterrupt: raised in whatever asyncio task runs when the signal arrives, asyncio
    re-raises only KeyboardInterrupt and SystemExit out of the loop. Any other exception, even a
    BaseException, only ends that task (a producer's sender, a thread's waiter) and leaves the
    demo running as if no signal had come."""


def _request_stop(signum: int, frame: FrameType | None) -> None:
    # Only the first signal interrupts: a second Ctrl-C must not abort the clean shutdown.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise StopRequested(signum)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGINT raise `StopRequested` in the block, so that its `finally` and `with`
    exits stop every child it started. SIGTERM's default action would end this process at once
    and leave the children that no death signal covers running."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    # Raising from the handler also interrupts a start in progress, whose cleanup then runs.
    for sig in previous:
        signal.signal(sig, _request_stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class ServedStack(Protocol):
    """A stack `run_until_stopped` can serve: started by `with`, its servers watched."""

    @property
    def workdir(self) -> Path: ...

    @property
    def servers(self) -> Sequence[Server]: ...

    def __enter__(self) -> Endpoints: ...

    def __exit__(self, *exc_info: object) -> None: ...


def run_until_stopped(
    stack: ServedStack,
    *,
    exports: Mapping[str, str] | None = None,
    prepare: Callable[[], object] | None = None,
) -> int:
    """Start `stack` (after `prepare`, if given, which may take long), print its endpoints and
    `exports` as shell `export` lines, and run until a signal (exit code 0) or until one of its
    servers exits on its own or the stack cannot start (1, with a line on stderr)."""
    try:
        with stop_on_signals():
            if prepare is not None:
                prepare()
            with stack as endpoints:
                for key, value in {**endpoints.as_env(), **(exports or {})}.items():
                    print(f"export {key}={shlex.quote(value)}")
                sys.stdout.flush()
                print(
                    f"# logs and data in {stack.workdir}; Ctrl-C stops",
                    file=sys.stderr,
                    flush=True,
                )
                while True:
                    time.sleep(1.0)
                    for server in stack.servers:
                        if not server.is_running():
                            print(
                                f"error: {server.name} exited unexpectedly; log: {server.log_path}",
                                file=sys.stderr,
                            )
                            return 1
    except StopRequested:
        return 0
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
