"""The projection's PostgreSQL connection, riding out an outage: a batch that cannot be written is
tried again (backing off to every `MAX_DELAY` s, over a new connection) until PostgreSQL answers,
never dropped, and its Kafka offsets are not committed meanwhile. Kafka keeps the records behind
it.

`DATABASE` counts the waits for the worker's `/ready`, as `storage.outage.REDIS` does for Redis.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg

from alert_engine.storage.outage import Reachability, Service, until_answered

log = logging.getLogger(__name__)

T = TypeVar("T")

# Errors of reaching PostgreSQL (a refused connection, a server shut down or restarted under us,
# a connection found closed), as opposed to errors about what was sent.
OUTAGE_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, OSError)
MAX_DELAY = 5.0


# One per process, like `REDIS`; its `waiting` counts the batches waiting for PostgreSQL now.
DATABASE = Reachability()
_POSTGRESQL = Service(
    "PostgreSQL",
    OUTAGE_ERRORS,
    DATABASE,
    MAX_DELAY,
    log,
    describe=lambda exc: str(exc).strip() or type(exc).__name__,
)


class Database:
    """One connection, made when first needed and made again after an outage."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self._sleep = sleep
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, connect_timeout=max(1, int(self.connect_timeout))
            )
        return self._conn

    async def until_done(
        self, call: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]], *, what: str
    ) -> T:
        """`call(connection)`, tried again over a new connection while PostgreSQL is
        unreachable; counted in `DATABASE` meanwhile. Any other error is raised."""

        async def attempt() -> T:
            return await call(await self.connection())

        return await until_answered(
            _POSTGRESQL, attempt, what=what, on_outage=self._drop_connection, sleep=self._sleep
        )

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:  # a broken connection may fail to close: it is gone anyway
                log.debug("closing a broken PostgreSQL connection failed", exc_info=True)

    async def close(self) -> None:
        await self._drop_connection()
