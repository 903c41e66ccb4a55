"""Session-wide real infrastructure: one Kafka broker and one Redis for the whole test run.

Started on first use by a test that needs them; a failure to start fails those tests (no skips).
Set ALERT_ENGINE_KAFKA_BOOTSTRAP and ALERT_ENGINE_REDIS_URL to test against servers you run.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

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
