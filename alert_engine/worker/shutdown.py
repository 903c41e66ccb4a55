"""A worker that stops within a bounded time of SIGTERM or SIGINT, whatever Kafka and Redis do.

Faust's shutdown waits on the broker: the consumer thread's stop alone waits up to 60 s for a
commit and a group leave that a dead broker never answers, so a worker whose Kafka is gone
outlived its SIGTERM by over a minute. A supervisor (Kubernetes, systemd, the demo) then kills it
without a word. Here a watchdog thread, armed by the first signal, ends the process after the
shutdown timeout with a log line and a non-zero exit code: the thread runs even when the event
loop is stuck.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

import faust

log = logging.getLogger(__name__)

# EX_SOFTWARE: the process ended itself, its clean shutdown unfinished.
EXIT_SHUTDOWN_TIMEOUT = 70


class BoundedShutdownWorker(faust.Worker):
    """`faust.Worker` whose shutdown after a signal lasts at most `shutdown_timeout` seconds."""

    def __init__(self, app: faust.App, *args: Any, shutdown_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, *args, **kwargs)
        self.shutdown_timeout = shutdown_timeout
        self._deadline: threading.Timer | None = None

    def _schedule_shutdown(self, signal: signal.Signals) -> None:
        # mode.Worker's one entry point for SIGTERM and SIGINT (it is called again on a repeat).
        if self._deadline is None:
            self._deadline = threading.Timer(
                self.shutdown_timeout, _exit_unfinished, (signal, self.shutdown_timeout)
            )
            self._deadline.daemon = True
            self._deadline.start()
        super()._schedule_shutdown(signal)


def _exit_unfinished(received: signal.Signals, timeout: float) -> None:
    log.critical(
        "worker did not stop within %.0f s of %s (shutdown_timeout; is Kafka or Redis gone?): "
        "exiting with code %d, offsets not committed since the last commit are consumed again",
        timeout,
        received.name,
        EXIT_SHUTDOWN_TIMEOUT,
    )
    for handler in logging.getLogger().handlers:
        handler.flush()
    # os._exit: a normal exit would join the threads that are stuck.
    os._exit(EXIT_SHUTDOWN_TIMEOUT)
