"""Log lines: JSON or text, and never a customer's contact details or a secret."""

import io
import logging
import logging.config

import orjson
import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from alert_engine.logs import Redactor, logging_config, secrets_of
from alert_engine.settings import RedisSettings, Settings
from tests.engine import Engine
from tests.factories import encode, rating

SLACK_TOKEN = "xoxb-1234567890-abcdefghijklmnop"


@pytest.fixture
def capture():
    """Logs through the worker's configuration into a buffer; restores logging afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buffer = io.StringIO()

    def configure(log_format: str, secrets: list[str]) -> io.StringIO:
        config = logging_config(log_format, "info", secrets)  # type: ignore[arg-type]
        config["handlers"]["default"]["stream"] = buffer
        logging.config.dictConfig(config)
        return buffer

    yield configure
    root.handlers[:], root.level = saved


def test_json_lines_carry_time_level_logger_message_and_fields(capture):
    out = capture("json", [])
    logging.getLogger("alert_engine.delivery").warning(
        "delivery of %s failed", "al-1", extra={"destination": "slack", "attempt": 2}
    )
    [line] = out.getvalue().splitlines()
    record = orjson.loads(line)
    assert record["level"] == "warning"
    assert record["logger"] == "alert_engine.delivery"
    assert record["message"] == "delivery of al-1 failed"
    assert record["destination"] == "slack"
    assert record["attempt"] == 2
    assert record["time"].endswith("+00:00")


def test_customer_contacts_and_secrets_are_redacted_in_messages_fields_and_tracebacks(capture):
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


def test_ids_timestamps_and_offsets_are_not_mistaken_for_phone_numbers():
    redact = Redactor()
    line = "ratings[3]@1234567890 r-1002 at 2026-11-23T17:18:15.123+00:00 in 0.02 s"
    assert redact(line) == line


def test_text_format_is_one_readable_line(capture):
    out = capture("text", [])
    logging.getLogger("alert_engine.app").info("started for %s", "a@b.example")
    assert out.getvalue().rstrip().endswith("INFO alert_engine.app: started for [email]")


def test_secrets_are_found_in_settings_typed_secret_str(monkeypatch):
    class SlackSettings(BaseSettings):
        token: SecretStr = SecretStr("xoxb-not-a-real-one")

    settings = Settings(redis=RedisSettings(url="redis://:pw-1234@redis:6379/0"))
    object.__setattr__(settings, "slack", SlackSettings())
    assert sorted(secrets_of(settings)) == ["pw-1234", "xoxb-not-a-real-one"]


@pytest.mark.integration
def test_a_json_logging_worker_writes_json_lines_without_the_customers_email(
    stack, unique, tmp_path
):
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
    assert {r["logger"] for r in records} >= {"alert_engine.app"}
