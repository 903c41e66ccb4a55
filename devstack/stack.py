"""The local stack: one Kafka broker (KRaft) and one Redis on loopback, and for the outcome
history one PostgreSQL when asked (`python -m devstack up` asks), or the stack the environment
names.

Tests, the demo and CI use this instead of Docker. Kafka runs from Maven Central jars
(`devstack.kafka_libs`) on a plain ``java`` (`devstack.kafka`), Redis is the Debian
``redis-server`` (`devstack.redis_server`), PostgreSQL Debian's binaries (`devstack.postgres`).
All listen on free 127.0.0.1 ports chosen at their first start, so several stacks can run side by
side, and keep those ports across a restart of the same object (fault tests kill a server and
start it again under the same address).

Measured on the 2-core development machine (time until a metadata request / PING answers):
Kafka about 3 s on a fresh data dir, Redis about 35 ms. A cold jar cache adds the Maven download
(~45 MB) once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devstack.errors import StackError
from devstack.kafka import KafkaBroker
from devstack.postgres import PostgresServer
from devstack.redis_server import RedisServer
from devstack.supervisor import Server

__all__ = [
    "ENV_DATABASE_URL",
    "ENV_KAFKA_BOOTSTRAP",
    "ENV_REDIS_URL",
    "Endpoints",
    "LocalStack",
    "endpoints_from_env",
    "running_stack",
]

ENV_KAFKA_BOOTSTRAP = "ALERT_ENGINE_KAFKA_BOOTSTRAP"
ENV_REDIS_URL = "ALERT_ENGINE_REDIS_URL"
ENV_DATABASE_URL = "ALERT_ENGINE_DATABASE_URL"


@dataclass(frozen=True)
class Endpoints:
    """Where the running Kafka and Redis (and PostgreSQL, if the stack has it) can be reached."""

    kafka_bootstrap: str
    redis_url: str
    database_url: str | None = None

    def as_env(self) -> dict[str, str]:
        env = {ENV_KAFKA_BOOTSTRAP: self.kafka_bootstrap, ENV_REDIS_URL: self.redis_url}
        if self.database_url is not None:
            env[ENV_DATABASE_URL] = self.database_url
        return env


def endpoints_from_env() -> Endpoints | None:
    """Endpoints of an already running stack, if both environment variables name one."""
    bootstrap = os.environ.get(ENV_KAFKA_BOOTSTRAP, "").strip()
    redis_url = os.environ.get(ENV_REDIS_URL, "").strip()
    database_url = os.environ.get(ENV_DATABASE_URL, "").strip() or None
    if bootstrap and redis_url:
        return Endpoints(kafka_bootstrap=bootstrap, redis_url=redis_url, database_url=database_url)
    return None


class LocalStack:
    """Kafka and Redis together (and PostgreSQL with `with_postgres`), in ``workdir`` or in a
    fresh temporary dir removed on stop."""

    def __init__(self, workdir: Path | None = None, *, with_postgres: bool = False) -> None:
        self._owns_workdir = workdir is None
        self.workdir = (
            Path(tempfile.mkdtemp(prefix="alert-engine-stack-"))
            if workdir is None
            else Path(workdir).resolve()
        )
        self._cleanup = self._arm_cleanup()
        self.kafka = KafkaBroker(self.workdir)
        self.redis = RedisServer(self.workdir)
        self.postgres = PostgresServer(self.workdir) if with_postgres else None

    def _arm_cleanup(self) -> weakref.finalize[..., LocalStack] | None:
        # finalize also runs at interpreter exit, so an un-stopped stack leaves no temp dir.
        if not self._owns_workdir:
            return None
        return weakref.finalize(self, shutil.rmtree, self.workdir, True)

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(
            kafka_bootstrap=self.kafka.bootstrap,
            redis_url=self.redis.url,
            database_url=self.postgres.url if self.postgres is not None else None,
        )

    @property
    def servers(self) -> list[Server]:
        return [self.kafka, self.redis, *([self.postgres] if self.postgres is not None else [])]

    def start(self) -> Endpoints:
        if self._owns_workdir and (self._cleanup is None or not self._cleanup.alive):
            self.workdir.mkdir(parents=True, exist_ok=True)
            self._cleanup = self._arm_cleanup()
        try:
            self.redis.start()
            if self.postgres is not None:
                self.postgres.start()
            self.kafka.start()
        except BaseException as exc:
            for server in self.servers:
                server.stop()
            if self._cleanup is not None:
                if isinstance(exc, StackError) and any(self.workdir.glob("*.log")):
                    # The log the error points to lives there: keep it.
                    self._cleanup.detach()
                else:
                    self._cleanup()
            raise
        return self.endpoints

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        if self._cleanup is not None:
            self._cleanup()

    def __enter__(self) -> Endpoints:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_stack(
    workdir: Path | None = None, *, with_postgres: bool = False
) -> Iterator[Endpoints]:
    """The stack named by the environment if there is one, else a LocalStack for the block."""
    external = endpoints_from_env()
    if external is not None:
        yield external
        return
    with LocalStack(workdir, with_postgres=with_postgres) as endpoints:
        yield endpoints
