"""Session-wide real infrastructure: one Kafka broker, one Redis and one PostgreSQL for the whole
test run.

Started on first use by a test that needs them; a failure to start fails those tests (no skips).
Set ALERT_ENGINE_KAFKA_BOOTSTRAP and ALERT_ENGINE_REDIS_URL to test against servers you run, and
ALERT_ENGINE_TEST_DATABASE_URL for a PostgreSQL you run (a role that may create databases: each
test gets a database of its own).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from devstack.postgres import PostgresServer, create_database
from devstack.stack import Endpoints, running_stack


@pytest.fixture(scope="session")
def stack() -> Iterator[Endpoints]:
    with running_stack() as endpoints:
        yield endpoints


@pytest.fixture
async def redis(stack: Endpoints) -> AsyncIterator[Redis]:
    client = Redis.from_url(stack.redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def unique() -> str:
    """A name no other test uses: topics, consumer groups and Redis prefixes stay apart."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """The URL of a PostgreSQL server's `postgres` database, for the whole session."""
    external = os.environ.get("ALERT_ENGINE_TEST_DATABASE_URL", "").strip()
    if external:
        yield external
        return
    with tempfile.TemporaryDirectory(prefix="alert-engine-pg-") as workdir:
        server = PostgresServer(Path(workdir))
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


@pytest.fixture
def database_url(postgres_server_url: str, unique: str) -> str:
    """A new empty database of the session's PostgreSQL, for one test."""
    return create_database(postgres_server_url, f"test_{unique}")
