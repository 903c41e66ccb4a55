"""A ``redis-server`` (Debian's package) on a free loopback port. It answers PING about 35 ms
after its start on the 2-core development machine."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from devstack.ports import HOST, free_ports
from devstack.supervisor import Server, require_tool

__all__ = ["RedisServer"]


class RedisServer(Server):
    """A ``redis-server`` with its data in ``<workdir>/redis`` and log in ``redis.log``.

    With ``appendonly`` (the default) every write goes to the AOF, fsynced each second, so a
    killed and restarted server keeps its data, as the dedup state needs.
    """

    name = "Redis server"

    def __init__(self, workdir: Path, *, appendonly: bool = True) -> None:
        super().__init__(workdir, "redis.log")
        self.data_dir = self.workdir / "redis"
        self.appendonly = appendonly

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def _answers(self, timeout: float) -> bool:
        client = redis.Redis(
            host=HOST, port=self.port, socket_connect_timeout=timeout, socket_timeout=timeout
        )
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            # Includes BusyLoadingError while a large AOF is replayed.
            return False
        finally:
            client.close()

    def start(self, timeout: float = 20.0) -> None:
        """Start ``redis-server`` and wait until it answers PING."""
        if self.is_running():
            return
        started = time.monotonic()
        server = require_tool("redis-server", "run `make setup` (it apt-get installs redis-server)")
        if self._port is None:
            (self._port,) = free_ports(1)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        offset = self._log_size()
        self._spawn(
            [
                server,
                "--port",
                str(self._port),
                "--bind",
                HOST,
                "--dir",
                str(self.data_dir),
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                "everysec",
                # No RDB snapshots: the AOF is the persistence, and fork()ing for a snapshot on
                # a busy 2-core machine only adds latency.
                "--save",
                "",
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
            ]
        )
        self._wait_ready(self._answers, started + timeout, offset, started, poll_s=0.02)
