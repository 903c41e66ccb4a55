"""Dead letters on the real broker: whatever an input record holds, its dead letter can be sent,
and the worker goes on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from alert_engine.deadletters import read_headers
from devstack.stack import Endpoints
from tests.engine import Engine, alert_keys, encode_all
from tests.factories import encode, rating

pytestmark = pytest.mark.integration

MB = 1024 * 1024
# The largest record the engine's producer sends (Faust's default request size).
MAX_RECORD = 1_000_000


async def produce(
    bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]], **config: Any
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **config)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


def test_dead_letters_too_big_to_send_whole_go_truncated_and_the_worker_goes_on(
    stack: Endpoints, unique: str, tmp_path: Path
) -> None:
    engine = Engine(stack, unique, tmp_path, partitions=1)
    topic = engine.kafka.ratings_topic
    two_mb = b'{"pad": "' + b"x" * (2 * MB) + b'"}'
    spaces = b" " * 1_048_400
    worker = engine.worker().start()
    try:
        # Compressed, the broker takes records far larger than the engine's producer may send.
        asyncio.run(
            produce(
                engine.kafka.bootstrap,
                topic,
                [(None, two_mb), (b"k" * MB, b"{oops")],
                compression_type="gzip",
                max_request_size=4 * MB,
            )
        )
        asyncio.run(produce(engine.kafka.bootstrap, topic, [(None, spaces)]))
        engine.produce(topic, encode_all([rating(id="r-after", rating=1)]))
        engine.wait_for(lambda: alert_keys(engine.delivered()) == ["r-after"], timeout=60)
        records = engine.consume(engine.kafka.deadletter_topic, 3)
    finally:
        worker.stop()
    letters = sorted(
        ((read_headers(record.headers), record) for record in records),
        key=lambda item: int(item[0]["offset"]),
    )
    assert [headers["reason"] for headers, _ in letters] == ["too_large", "not_json", "too_large"]
    originals = [(None, two_mb), (b"k" * MB, b"{oops"), (None, spaces)]
    for offset, (letter, (key, value)) in enumerate(zip(letters, originals, strict=True)):
        headers, record = letter
        assert (headers["topic"], headers["partition"]) == (topic, "0")
        assert headers["offset"] == str(offset)
        assert headers["truncated"] == "true"
        assert headers["original-key-bytes"] == ("" if key is None else str(len(key)))
        assert headers["original-value-bytes"] == str(len(value))
        # A prefix of the original, as much as fits in one record.
        assert value.startswith(record.value) and record.value
        assert key is None or key.startswith(record.key)
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(
            record.key, record.value, list(record.headers)
        )
        assert MAX_RECORD - 64 <= size <= MAX_RECORD or len(record.value) == len(value)


AGENT_RULE = """\
name: agent-low-average
source: ratings
group_by: agent.id
window: {size: 1h}
aggregates:
  responses: count()
  average: avg(rating)
min_sample: 5
condition: average < 3.0
"""


def test_a_deep_event_last_in_its_batch_is_dead_lettered_and_its_batch_mates_count(
    stack: Endpoints, unique: str, tmp_path: Path
) -> None:
    # It made the batch's `windows` record too deep to parse: the windowed agent dropped the
    # whole record, and the five genuine ratings never counted.
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "agent.yaml").write_text(AGENT_RULE)
    engine = Engine(stack, unique, tmp_path, rules_dir=rules, partitions=1)
    now = datetime.now(UTC).replace(microsecond=0)
    genuine = encode_all(
        [
            rating(id=f"r-{n}", rating=stars, agent={"id": "a-1"}, time=now.isoformat())
            for n, stars in enumerate([1, 2, 1, 2, 1])
        ]
    )
    deep = encode(rating(id="r-deep", rating=5, agent={"id": "a-1"}, time=now.isoformat()))
    deep = deep[:-1] + b',"x":' + b"[" * 1023 + b"]" * 1023 + b"}"
    worker = engine.worker().start()
    try:
        engine.produce(engine.kafka.ratings_topic, [*genuine, deep])
        engine.wait_for(lambda: len(engine.delivered()) >= 1, timeout=60)
        [letter] = engine.consume(engine.kafka.deadletter_topic, 1)
    finally:
        worker.stop()
    [alert] = engine.delivered()
    assert (alert["rule"], alert["key"]) == ("agent-low-average", "a-1")
    assert alert["values"]["responses"] == 5
    assert letter.value == deep
    headers = read_headers(letter.headers)
    assert (headers["reason"], headers["detail"]) == (
        "invalid",
        "x: nested deeper than 32 levels, the limit",
    )


def test_an_unreadable_windows_record_is_dead_lettered_not_dropped_silently(
    stack: Endpoints, unique: str, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "agent.yaml").write_text(AGENT_RULE)
    engine = Engine(stack, unique, tmp_path, rules_dir=rules, partitions=1)
    worker = engine.worker().start()
    try:
        # Only a foreign producer writes such a record to the internal topic.
        engine.produce(engine.kafka.windows_topic, [b'{"stream": "ratings"}'])
        [letter] = engine.consume(engine.kafka.deadletter_topic, 1)
    finally:
        worker.stop()
    assert letter.value == b'{"stream": "ratings"}'
    headers = read_headers(letter.headers)
    assert (headers["reason"], headers["topic"]) == ("unreadable", engine.kafka.windows_topic)
    assert headers["detail"].startswith("not a window batch")


def test_deadletter_list_shows_refused_events_and_replay_sends_them_back_unchanged(
    stack: Endpoints, unique: str, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from alert_engine import deadletters
    from alert_engine.cli.main import main

    engine = Engine(stack, unique, tmp_path, partitions=1)
    ratings = engine.kafka.ratings_topic
    refused = [
        (b"k-1", b"{oops", "not_json", "not JSON: unexpected end of data", False),
        (None, b'{"id": "r-9"}', "invalid", "rating: field required", False),
        (None, b'{"pad": "xxx', "too_large", "70000 bytes", True),
    ]

    async def dead_letter_them() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=engine.kafka.bootstrap, acks="all")
        await producer.start()
        try:
            for offset, (key, value, reason, detail, truncated) in enumerate(refused):
                headers = deadletters.headers(
                    reason=reason, detail=detail, topic=ratings, partition=0, offset=offset
                )
                if truncated:
                    headers[deadletters.HEADER_PREFIX + "truncated"] = b"true"
                await producer.send_and_wait(
                    engine.kafka.deadletter_topic,
                    key=key,
                    value=value,
                    headers=list(headers.items()),
                )
        finally:
            await producer.stop()

    asyncio.run(dead_letter_them())
    listed = CliRunner().invoke(main, ["deadletter", "list"], env=engine.env)
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert f"{ratings}[0]@0  not_json  not JSON: unexpected end of data" in lines[0]
    assert f"{ratings}[0]@2  too_large (truncated)  70000 bytes" in lines[2]
    assert lines[-1] == "3 dead letter(s): 1 invalid, 1 not_json, 1 too_large"

    only = CliRunner().invoke(main, ["deadletter", "list", "--reason", "invalid"], env=engine.env)
    assert only.output.splitlines()[-1] == "1 dead letter(s): 1 invalid"

    replayed = CliRunner().invoke(main, ["deadletter", "replay", "--yes"], env=engine.env)
    assert replayed.exit_code == 0, replayed.output
    assert f"not replayed (truncated): {ratings}@2" in replayed.output
    assert "replayed 2 event(s)" in replayed.output
    back = engine.consume(ratings, 2)
    assert [(record.key, record.value) for record in back] == [
        (key, value) for key, value, *_ in refused[:2]
    ]
