"""Log lines: JSON or text, and never a customer's contact details or a secret."""

import io
import logging
import logging.config
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Protocol

import orjson
import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from alert_engine.events import EventRejected, Stream, validate_event
from alert_engine.logs import Redactor, logging_config, secrets_of
from alert_engine.settings import RedisSettings, Settings
from devstack.stack import Endpoints
from tests.engine import Engine
from tests.factories import encode, make_alert, rating

SLACK_TOKEN = "xoxb-1234567890-abcdefghijklmnop"


class Configure(Protocol):
    def __call__(self, log_format: str, secrets: list[str], level: str = "info") -> io.StringIO: ...


@pytest.fixture
def capture() -> Iterator[Configure]:
    """Logs through the worker's configuration into a buffer; restores logging afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buffer = io.StringIO()

    def configure(log_format: str, secrets: list[str], level: str = "info") -> io.StringIO:
        config = logging_config(log_format, level, secrets)  # type: ignore[arg-type]
        config["handlers"]["default"]["stream"] = buffer
        logging.config.dictConfig(config)
        return buffer

    yield configure
    root.handlers[:], root.level = saved


def test_json_lines_carry_time_level_logger_message_and_fields(capture: Configure) -> None:
    out = capture("json", [])
    logging.getLogger("alert_engine.delivery.deliverer").warning(
        "delivery of %s failed", "al-1", extra={"destination": "slack", "attempt": 2}
    )
    [line] = out.getvalue().splitlines()
    record = orjson.loads(line)
    assert record["level"] == "warning"
    assert record["logger"] == "alert_engine.delivery.deliverer"
    assert record["message"] == "delivery of al-1 failed"
    assert record["destination"] == "slack"
    assert record["attempt"] == 2
    assert record["time"].endswith("+00:00")


def test_customer_contacts_and_secrets_are_redacted_in_messages_fields_and_tracebacks(
    capture: Configure,
) -> None:
    out = capture("json", ["s3cret-password", 'with"quote'])
    log = logging.getLogger("alert_engine.test")
    log.warning(
        "customer %s (%s, +44 20 7946 0958, (555) 123-4567) token %s",
        "jordan@example.com",
        "Jordan Lee",
        SLACK_TOKEN,
        extra={
            "contact": "jordan.lee+cx@mail.example.co.uk",
            "redis": "redis://:s3cret-password@r",
        },
    )
    try:
        raise ValueError('bad secret: with"quote, key SG.abcdefghijklmnopqr.stuvwxyz0123456789')
    except ValueError:
        log.exception("failed for jordan@example.com")
    text = out.getvalue()
    for leaked in (
        "jordan@example.com",
        "jordan.lee+cx",
        "7946",
        "123-4567",
        SLACK_TOKEN,
        "s3cret-password",
        "quote",
        "SG.abc",
    ):
        assert leaked not in text
    first, second = (orjson.loads(line) for line in text.splitlines())
    assert first["message"] == ("customer [email] (Jordan Lee, [phone], [phone]) token [secret]")
    assert first["contact"] == "[email]"
    assert "ValueError: bad secret: [secret]" in second["exception"]


def test_ids_timestamps_and_offsets_are_not_mistaken_for_phone_numbers() -> None:
    redact = Redactor()
    line = "ratings[3]@1234567890 r-1002 at 2026-11-23T17:18:15.123+00:00 in 0.02 s"
    assert redact(line) == line


@pytest.mark.parametrize(
    "written",
    [
        "(415)555-0134",
        "4155550134",
        "14155550134",  # a phone sent as a JSON number
        "0044 20 7946 0958",
        "020 7946 0958",
        "+1 (415) 555-0134",
        "+44-20-7946-0958",
        "(555)123-4567",  # fictional, but shaped like a phone
    ],
)
def test_phone_numbers_in_the_forms_customers_write_them_are_redacted(written: str) -> None:
    redact = Redactor()
    line = (
        f'dead-lettered: customer.phone: should be a string (got {written}); {{"p": "{written}"}}'
    )
    assert redact(line) == (
        'dead-lettered: customer.phone: should be a string (got [phone]); {"p": "[phone]"}'
    )


def test_a_decimal_with_many_digits_is_not_a_phone_number() -> None:
    redact = Redactor()
    line = "score +7.01262417199996 at lat -33.868820171 long 151.2092955 pi 3.14159265358"
    assert redact(line) == line


def test_the_local_part_of_an_email_whose_domain_was_cut_off_is_redacted() -> None:
    # The dead-letter detail shortens a bad value to 60 characters: the domain loses its dot.
    customer = {"id": "c-1", "name": "J", "email": "jordan.lee@examplecorp.com"}
    with pytest.raises(EventRejected) as rejected:
        validate_event(Stream.RATINGS, rating(customer=[customer]))
    assert "'jordan.lee@examplec..." in rejected.value.detail
    redacted = Redactor()(rejected.value.detail)
    assert "jordan" not in redacted
    assert "[email]" in redacted
    assert Redactor()("sent to jordan.lee@ and") == "sent to [email] and"


def test_object_addresses_in_library_logs_are_not_email_addresses() -> None:
    line = "[QueueServiceThread@0x7f0cddd579c0 index=0]: Started."
    assert Redactor()(line) == line


# Countries whose numbers a log line may hold: written internationally they are found whatever
# the region setting; nationally only in the configured regions (US and GB by default).
COUNTRIES = ["US", "GB", "DE", "FR", "IN", "BR", "AU", "JP", "MX", "ZA", "NG", "ES", "IT", "CA"]
NATIONAL_REGIONS = {"US", "GB", "CA"}  # Canada shares +1 and the NANP plan with the US
FORMATS = ["e164", "international", "idd", "rfc3966", "national", "digits", "json_number"]


@st.composite
def phone_numbers(draw: st.DrawFn) -> str:
    """A valid number of one of COUNTRIES, written as people and systems write them."""
    region = draw(st.sampled_from(COUNTRIES))
    kind = draw(
        st.sampled_from(
            [phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]
        )
    )
    example = phonenumbers.example_number_for_type(region, kind)
    assert example is not None, f"phonenumbers has no example of {kind} in {region}"
    national = phonenumbers.national_significant_number(example)
    # Vary the subscriber digits, keeping the area or mobile prefix that makes it valid.
    tail = draw(st.text("0123456789", min_size=4, max_size=4))
    number = phonenumbers.parse(f"+{example.country_code}{national[:-4]}{tail}")
    if not phonenumbers.is_valid_number(number):
        number = example
    form = draw(st.sampled_from(FORMATS))
    if form in ("national", "digits") and region not in NATIONAL_REGIONS:
        form = "international"
    if form == "json_number" and example.country_code not in (1, 44):
        form = "e164"
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if form == "e164":
        return e164
    if form == "international":
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    if form == "idd":
        return "00" + phonenumbers.format_number(
            number, phonenumbers.PhoneNumberFormat.INTERNATIONAL
        ).removeprefix("+")
    if form == "rfc3966":
        # tel:+44-20-7946-0958; the `tel:` is kept, the number is not.
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.RFC3966)[4:]
    written = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    if form == "digits":
        return "".join(char for char in written if char.isdigit())
    if form == "json_number":
        return e164.removeprefix("+")
    return written


# What else log lines hold: numbers that are no phone, however many digits they have.
NOT_PHONES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(min_value=-180, max_value=180).map(lambda x: f"{x:+}"),
    st.floats(min_value=1e9, max_value=2e9).map(repr),  # Unix time with a fraction
    st.integers(min_value=10**9, max_value=2 * 10**9 - 1).map(str),  # Unix time, 2001-2033
    st.integers(min_value=10**12, max_value=4 * 10**12).map(str),  # Unix time in ms
    st.datetimes(timezones=st.just(UTC)).map(lambda t: t.isoformat(timespec="microseconds")),
    st.tuples(st.integers(0, 99), st.integers(0, 10**9 - 1)).map(
        lambda p: f"ratings[{p[0]}]@{p[1]}"  # Kafka coordinates
    ),
    st.integers(min_value=0, max_value=10**6).map(lambda n: f"r-{n}"),
    st.uuids().map(lambda u: u.hex),
    st.uuids().map(str),
    st.floats(min_value=0, max_value=600).map(lambda s: f"in {s:.3f} s"),
)
WORDS = st.text(st.characters(categories=["L"]), min_size=1, max_size=12)


@given(word=WORDS, before=NOT_PHONES, phone=phone_numbers(), after=NOT_PHONES)
def test_a_phone_in_any_form_is_redacted_and_the_numbers_beside_it_are_kept(
    word: str, before: str, phone: str, after: str
) -> None:
    line = f"{word}: {before} customer {phone}, {after}"
    assert Redactor()(line) == f"{word}: {before} customer [phone], {after}"


@given(values=st.lists(NOT_PHONES, min_size=1, max_size=6))
def test_floats_ids_and_timestamps_are_never_taken_for_phone_numbers(values: list[str]) -> None:
    line = " ".join(values)
    assert Redactor()(line) == line


def test_library_debug_records_carry_no_event_or_alert(capture: Configure) -> None:
    # What Faust, aiokafka and slack_sdk log at `--loglevel debug`: the records they send and
    # receive, whole (customer names and comments are neither e-mails nor phones).
    out = capture("text", [], level="debug")
    alert = make_alert("r-1")
    value = alert.to_json()
    logging.getLogger("faust.agents.agent").debug("%r yielded: %r", print, [alert])
    logging.getLogger("faust.topics").debug("send: topic=%r k=%r v=%r", "alerts", b"al-1", value)
    logging.getLogger("aiokafka.producer.producer").debug(
        "Sending (key=%r value=%r) to %s", b"al-1", value, ("alerts", 0)
    )
    logging.getLogger("slack_sdk.web.async_base_client").debug(
        f"Sending a request - url: https://slack.com/api/chat.postMessage, json_body: {value!r}"
    )
    logging.getLogger("alert_engine.delivery.deliverer").debug("delivering %s", alert.id)
    text = out.getvalue()
    for customer_field in ("Jordan Lee", "Nobody called me back", "Priya Nair"):
        assert customer_field not in text
    assert "yielded: [<Alert>]" in text
    assert f"v=<{len(value)} bytes>" in text
    assert f"delivering {alert.id}" in text  # the engine's own debug lines stay


def test_text_format_is_one_readable_line(capture: Configure) -> None:
    out = capture("text", [])
    logging.getLogger("alert_engine.worker.app").info("started for %s", "a@b.example")
    assert out.getvalue().rstrip().endswith("INFO alert_engine.worker.app: started for [email]")


def test_secrets_are_found_in_settings_typed_secret_str(monkeypatch: pytest.MonkeyPatch) -> None:
    class SlackSettings(BaseSettings):
        token: SecretStr = SecretStr("xoxb-not-a-real-one")

    settings = Settings(redis=RedisSettings(url="redis://:pw-1234@redis:6379/0"))
    object.__setattr__(settings, "slack", SlackSettings())
    assert sorted(secrets_of(settings)) == ["pw-1234", "xoxb-not-a-real-one"]


@pytest.mark.integration
def test_a_json_logging_worker_writes_json_lines_without_the_customers_email(
    stack: Endpoints, unique: str, tmp_path: Path
) -> None:
    engine = Engine(stack, unique, tmp_path)
    engine.env["ALERT_ENGINE_LOG_FORMAT"] = "json"
    worker = engine.worker().start()
    try:
        # Dead-lettered, and the reason quotes the bad value: the customer's email address.
        engine.produce(
            engine.kafka.ratings_topic,
            [encode(rating(id="r-bad", customer="jordan.lee@example.com"))],
        )
        engine.wait_for(lambda: "dead-lettered" in worker.log_path.read_text())
    finally:
        worker.stop()
    lines = [line for line in worker.log_path.read_text().splitlines() if line.startswith("{")]
    records = [orjson.loads(line) for line in lines]
    [dead] = [r for r in records if "dead-lettered" in r["message"]]
    assert dead["level"] == "warning"
    assert "[email]" in dead["message"]
    assert "jordan.lee@example.com" not in worker.log_path.read_text()
    assert {r["logger"] for r in records} >= {"alert_engine.worker.app"}


@pytest.mark.integration
def test_a_worker_at_debug_level_logs_no_customer_name_or_comment(
    stack: Endpoints, unique: str, tmp_path: Path
) -> None:
    engine = Engine(stack, unique, tmp_path)
    worker = engine.worker(options=["--loglevel", "debug"]).start()
    try:
        engine.produce(
            engine.kafka.ratings_topic,
            [
                encode(
                    rating(
                        id="r-debug",
                        customer={"id": "c-9", "name": "Zebulon Quartermaine"},
                        comment="Waited forty minutes for nothing",
                    )
                )
            ],
        )
        engine.wait_for(lambda: len(engine.delivered()) == 1)
    finally:
        worker.stop()
    log = worker.log_path.read_text()
    assert " DEBUG faust." in log and " DEBUG aiokafka." in log  # the libraries did log at debug
    assert "r-debug" in engine.delivered()[0]["key"]
    for customer_field in ("Zebulon", "Quartermaine", "forty minutes", "Priya Nair"):
        assert customer_field not in log
