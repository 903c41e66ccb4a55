"""The one loop that rides out an outage (Redis's, and PostgreSQL's through `history.database`):
what `/ready` and the counters see while a call waits, the pauses, the log lines, and that an
error about the call itself is not retried."""

from __future__ import annotations

import logging
from typing import Any, cast

import psycopg
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from alert_engine.history.database import DATABASE, Database
from alert_engine.storage.outage import REDIS, until_redis_answers


class Flaky:
    """Fails with `error` the first `failures` times it is called, then answers `answer`."""

    def __init__(self, failures: int, error: BaseException, answer: str = "answered") -> None:
        self.failures = failures
        self.error = error
        self.answer = answer
        self.calls = 0
        # What `/ready` would have said at each call.
        self.reachable_seen: list[bool] = []

    async def __call__(self) -> str:
        self.calls += 1
        self.reachable_seen.append(REDIS.reachable and DATABASE.reachable)
        if self.calls <= self.failures:
            raise self.error
        return self.answer


async def test_a_call_waits_out_a_redis_outage_counted_and_logged_then_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    errors_before = REDIS.errors["ConnectionError"]
    flaky = Flaky(6, RedisConnectionError("Connection refused"))
    with caplog.at_level(logging.WARNING, logger="alert_engine.storage.outage"):
        assert await until_redis_answers(flaky, what="a test call", sleep=sleep) == "answered"
    assert flaky.calls == 7
    # Not ready from the first failure until the call answers; ready again after.
    assert flaky.reachable_seen == [True] + [False] * 6
    assert REDIS.reachable
    assert REDIS.errors["ConnectionError"] - errors_before == 6
    # Doubling from 0.1 s, at most every 2 s.
    assert slept == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]
    assert [r.getMessage() for r in caplog.records][:2] == [
        "Redis unreachable for a test call (attempt 1), retrying in 0.1s: Connection refused",
        "Redis unreachable for a test call (attempt 2), retrying in 0.2s: Connection refused",
    ]
    assert {r.name for r in caplog.records} == {"alert_engine.storage.outage"}


async def test_a_redis_error_about_the_command_is_raised_not_waited_on() -> None:
    flaky = Flaky(1, ResponseError("WRONGTYPE"))
    with pytest.raises(ResponseError):
        await until_redis_answers(flaky, what="a test call")
    assert flaky.calls == 1
    assert REDIS.reachable


async def test_a_batch_waits_out_a_postgresql_outage_over_a_new_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    the_connection = cast(psycopg.AsyncConnection[Any], object())

    class Refusing(Database):
        """A database that refuses connections until the third pause is over."""

        opened = 0

        async def connection(self) -> psycopg.AsyncConnection[Any]:
            self.opened += 1
            if len(slept) < 3:
                raise psycopg.OperationalError("connection refused\n")
            return the_connection

    database = Refusing("postgresql://unused", sleep=sleep)
    connections: list[psycopg.AsyncConnection[Any]] = []

    async def write(conn: psycopg.AsyncConnection[Any]) -> str:
        connections.append(conn)
        return "written"

    with caplog.at_level(logging.WARNING, logger="alert_engine.history.database"):
        assert await database.until_done(write, what="a batch") == "written"
    assert slept == [0.1, 0.2, 0.4]
    # A connection asked for per attempt; the batch written once, on the one that answered.
    assert database.opened == 4
    assert connections == [the_connection]
    assert DATABASE.reachable
    assert [r.getMessage() for r in caplog.records] == [
        f"PostgreSQL unreachable for a batch (attempt {n}), retrying in {d}s: connection refused"
        for n, d in ((1, 0.1), (2, 0.2), (3, 0.4))
    ]
    assert {r.name for r in caplog.records} == {"alert_engine.history.database"}
