"""Log lines for people and for log pipelines: text or one JSON object per line, with customer
contact details and secrets redacted before any handler writes them.

`ALERT_ENGINE_LOG_FORMAT=json` gives `{"time", "level", "logger", "message", ...fields}` lines;
`text` (the default) gives `time level logger: message`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, SecretStr

from alert_engine.settings import LogFormat, Settings

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# International numbers (+ and 8 to 15 digits, spaces, dots, dashes or brackets between) and the
# North American (555) 123-4567 / 555-123-4567 forms. Timestamps, offsets and ids do not match.
PHONE = re.compile(
    r"(?<![\w+])\+\d(?:[\s.()-]{0,2}\d){7,14}(?!\w)"
    r"|(?<!\w)\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}(?!\w)"
)
# Credentials with a recognisable shape, whatever setting or library they came from.
TOKEN = re.compile(
    r"xox[abposr]-[\w-]{10,}"  # Slack
    r"|SG\.[\w-]{16,}\.[\w-]{16,}"  # SendGrid
    r"|(?i:bearer)\s+[\w.~+/-]{16,}=*"
    r"|(?<=://)[^/\s:@]*:[^/\s@]+(?=@)"  # user:password in a URL
)

# LogRecord's own attributes: everything else on a record was passed with `extra=`.
_RECORD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is replaced whole; JSON-escaped forms
        # too, since a secret may reach a line inside a serialized value.
        values = {s for secret in secrets if len(secret) >= 4 for s in _spellings(secret)}
        self._secrets = sorted(values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[secret]")
        text = TOKEN.sub("[secret]", text)
        text = EMAIL.sub("[email]", text)
        return PHONE.sub("[phone]", text)


def _spellings(secret: str) -> set[str]:
    return {secret, orjson.dumps(secret).decode()[1:-1]}


class RedactingFilter(logging.Filter):
    """Rewrites each record's message, fields and traceback before any formatter sees it."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redact = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for name, value in list(vars(record).items()):
            if name not in _RECORD_ATTRIBUTES and isinstance(value, str):
                setattr(record, name, self.redact(value))
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _RECORD_ATTRIBUTES and name not in line:
                line[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        return orjson.dumps(line, default=str).decode()


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def secrets_of(settings: Settings) -> list[str]:
    """Every `SecretStr` value in the settings, and the password of the Redis URL."""
    found: list[str] = []
    for component in vars(settings).values():
        if isinstance(component, BaseModel):
            for value in vars(component).values():
                if isinstance(value, SecretStr):
                    found.append(value.get_secret_value())
    password = _url_password(settings.redis.url)
    if password:
        found.append(password)
    return found


def _url_password(url: str) -> str | None:
    from urllib.parse import urlsplit

    return urlsplit(url).password


def logging_config(log_format: LogFormat, level: str, secrets: Iterable[str]) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the worker (Faust's Worker applies it at start)."""
    formatter: dict[str, Any] = (
        {"()": JsonFormatter} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactingFilter, "redactor": Redactor(secrets)}},
        "formatters": {"engine": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "engine",
                "filters": ["redact"],
                "level": level.upper(),
            }
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
    }
