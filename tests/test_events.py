from datetime import UTC, datetime

import orjson
import pytest
from pydantic import ValidationError

from alert_engine.events import (
    MAX_DEPTH,
    EventRejected,
    Interaction,
    Rating,
    Stream,
    decode_event,
)
from alert_engine.settings import EngineSettings
from tests.factories import encode, interaction, rating

LIMIT = 4096


def decode(stream: Stream, raw: bytes | None) -> Rating | Interaction:
    return decode_event(stream, raw, max_bytes=LIMIT)


def test_a_valid_rating_decodes_with_nested_fields_and_event_time() -> None:
    event = decode(Stream.RATINGS, encode(rating(rating=2, comment="slow")))
    assert isinstance(event, Rating)
    assert event.rating == 2
    assert event.customer.id == "c-1"
    assert event.time.tzinfo is not None


def test_a_valid_interaction_decodes() -> None:
    event = decode(Stream.INTERACTIONS, encode(interaction(wait_seconds=25)))
    assert isinstance(event, Interaction)
    assert event.wait_seconds == 25.0


def test_unknown_fields_are_kept_for_rules_to_read() -> None:
    event = decode(Stream.RATINGS, encode(rating(store="SF-01")))
    assert event.model_dump()["store"] == "SF-01"


@pytest.mark.parametrize(
    ("raw", "reason", "detail"),
    [
        (b"", "empty", "no value"),
        (None, "empty", "no value"),
        (b"{not json", "not_json", ""),
        (b"[1, 2]", "not_object", "list"),
        (encode(rating(rating=7)), "invalid", "rating: Input should be less than or equal to 5"),
        (encode(rating(rating=0)), "invalid", "rating: Input should be greater than or equal to 1"),
        (
            encode(rating(rating="1")),
            "invalid",
            "rating: Input should be a valid integer (got '1')",
        ),
        (encode(rating(rating=True)), "invalid", "rating: Input should be a valid integer"),
        (encode(rating(nps=11)), "invalid", "nps: Input should be less than or equal to 10"),
        (encode(rating(time="2026-01-01T10:00:00")), "invalid", "time: Input should have timezone"),
        (encode(rating(time="yesterday")), "invalid", "time:"),
        (
            encode({k: v for k, v in rating().items() if k != "team"}),
            "invalid",
            "team: Field required",
        ),
        (encode(rating(customer={"name": "x"})), "invalid", "customer.id: Field required"),
        (b"{" + b'"pad": "' + b"x" * LIMIT + b'"}', "too_large", "the limit is 4096"),
    ],
)
def test_bad_events_are_rejected_with_a_reason_and_a_readable_detail(
    raw: bytes | None, reason: str, detail: str
) -> None:
    with pytest.raises(EventRejected) as caught:
        decode(Stream.RATINGS, raw)
    assert caught.value.reason == reason
    assert detail in caught.value.detail


def test_an_interaction_with_a_negative_wait_is_rejected() -> None:
    with pytest.raises(EventRejected, match="wait_seconds"):
        decode(Stream.INTERACTIONS, encode(interaction(wait_seconds=-1)))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("wait_seconds", "12.5"),
        ("wait_seconds", True),
        ("handle_seconds", "300"),
        ("hold_seconds", "Infinity"),
        ("hold_seconds", "NaN"),
    ],
)
def test_seconds_are_numbers_not_text_or_booleans(field: str, value: str | bool) -> None:
    with pytest.raises(EventRejected) as caught:
        decode(Stream.INTERACTIONS, encode(interaction(**{field: value})))
    assert caught.value.reason == "invalid"
    assert caught.value.detail.startswith(f"{field}: ")


def test_whole_seconds_are_still_seconds() -> None:
    event = decode(Stream.INTERACTIONS, encode(interaction(wait_seconds=12, hold_seconds=0)))
    assert isinstance(event, Interaction)
    assert (event.wait_seconds, event.hold_seconds) == (12.0, 0.0)


def test_an_epoch_time_is_read_as_seconds() -> None:
    event = decode(Stream.RATINGS, encode(rating(time=1_700_000_000.5)))
    assert event.time == datetime.fromtimestamp(1_700_000_000.5, UTC)


@pytest.mark.parametrize(
    ("time", "detail"),
    [
        # Milliseconds are not guessed: read as seconds, this is about year 55,800.
        (1.7e12, "time: Value error, epoch seconds out of range"),
        (1_700_000_000_000, "time: Value error, epoch seconds out of range"),
        ("1700000000", "time: Value error, epoch seconds must be a JSON number"),
        (True, "time:"),
    ],
)
def test_an_epoch_time_that_is_not_seconds_is_refused(
    time: float | str | bool, detail: str
) -> None:
    with pytest.raises(EventRejected) as caught:
        decode(Stream.RATINGS, encode(rating(time=time)))
    assert caught.value.reason == "invalid"
    assert caught.value.detail.startswith(detail)


def test_a_duplicate_key_is_refused_not_read_last_wins() -> None:
    # `rating` twice: a lenient parser takes the 1 and alerts on a 5-star rating.
    raw = encode(rating(rating=5))[:-1] + b',"rating":1}'
    with pytest.raises(EventRejected) as caught:
        decode(Stream.RATINGS, raw)
    assert (caught.value.reason, caught.value.detail) == ("invalid", "duplicate key 'rating'")


def test_a_duplicate_key_in_a_nested_object_is_refused() -> None:
    raw = encode(rating()).replace(b'"customer":{', b'"customer":{"id":"c-2",')
    with pytest.raises(EventRejected) as caught:
        decode(Stream.RATINGS, raw)
    assert caught.value.detail == "duplicate key 'customer.id'"


def test_an_escaped_colon_is_no_duplicate() -> None:
    raw = encode(rating(comment="10:30")).replace(b"10:30", b"10\\u003a30")
    event = decode(Stream.RATINGS, raw)
    assert isinstance(event, Rating) and event.comment == "10:30"
    twice = raw[:-1] + b',"comment":"again"}'
    with pytest.raises(EventRejected, match="duplicate key 'comment'"):
        decode(Stream.RATINGS, twice)


def nested(depth: int) -> bytes:
    """`depth` arrays one inside the other, as JSON text (orjson writes at most 255 levels)."""
    return b"[" * depth + b"1" + b"]" * depth


def with_field(event: bytes, name: str, value: bytes) -> bytes:
    return event[:-1] + b',"' + name.encode() + b'":' + value + b"}"


def test_an_unknown_field_nested_too_deep_is_refused_with_its_name() -> None:
    # 1,023 levels pass orjson's parser; Alert.to_json and the windows record could not carry it.
    raw = with_field(encode(rating()), "x", nested(1023))
    with pytest.raises(EventRejected) as caught:
        decode(Stream.RATINGS, raw)
    assert caught.value.reason == "invalid"
    assert caught.value.detail == f"x: nested deeper than {MAX_DEPTH} levels, the limit"


def test_the_depth_limit_counts_the_event_itself_and_nested_known_objects() -> None:
    limit = 8
    fits = with_field(encode(rating()), "x", nested(limit - 1))  # the event, then 7 arrays
    assert decode_event(Stream.RATINGS, fits, max_bytes=LIMIT, max_depth=limit)
    too_deep = with_field(encode(rating()), "x", nested(limit))
    with pytest.raises(EventRejected, match="x: nested deeper than 8 levels"):
        decode_event(Stream.RATINGS, too_deep, max_bytes=LIMIT, max_depth=limit)
    deep_customer = encode(rating(customer={"id": "c-1", "store": orjson.loads(nested(limit))}))
    with pytest.raises(EventRejected, match="customer: nested deeper than 8 levels"):
        decode_event(Stream.RATINGS, deep_customer, max_bytes=LIMIT, max_depth=limit)


def test_the_event_size_limit_leaves_room_for_the_records_an_event_travels_in() -> None:
    # An alert carries its event (a join alert two), a windows record one at least: all must
    # fit in one Kafka record of 1,000,000 bytes.
    assert EngineSettings(max_event_bytes=256 * 1024).max_event_bytes == 256 * 1024
    with pytest.raises(ValidationError, match="max_event_bytes"):
        EngineSettings(max_event_bytes=1024 * 1024)
