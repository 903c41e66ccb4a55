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
import phonenumbers
from pydantic import BaseModel, SecretStr

from alert_engine.settings import LogFormat, Settings
from alert_engine.spans import merged

# A local part and `@` is enough: a detail cut short ("got 'jordan.lee@exam...'") must not leave
# the name in the line because its domain has no dot any more. `Name@0x7f0c...` is an object's
# address in a library's log line, not a mailbox.
EMAIL = re.compile(r"[\w.!#$%&*+^`{|}~-]+@(?!0x[0-9a-fA-F]+\b)(?:[\w-]+(?:\.[\w-]+)*)?")
# Phone-shaped whatever the number (a made-up 555 one is still somebody's): `+` and 8 to 15
# digits with spaces, dots, dashes or brackets between, and the North American (555) 123-4567,
# (555)123-4567 and 555-123-4567 forms. Everything else is left to libphonenumber's matcher.
PHONE_SHAPED = re.compile(
    r"(?<![\w+])\+\d(?:[\s.()-]{0,2}\d){7,14}(?!\w)"
    r"|(?<![\w(])(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?!\w)"
)
# A number written as a decimal (a float, a coordinate): never a phone, however many digits.
_DECIMAL = re.compile(r"[+-]?\d*\.\d+")
# Digits right after these are a fraction or an exponent (`3.14...`, `4.1e-44 ...`).
_DECIMAL_BEFORE = re.compile(r"\d[.,]$|\d[eE][+-]?$")
DEFAULT_PHONE_REGIONS = ("US", "GB")
# Fewer digits than the shortest national number with its country code: no phone in the text.
_MIN_PHONE_DIGITS = 7

# Credentials with a recognisable shape, whatever setting or library they came from.
TOKEN = re.compile(
    r"xox[abposr]-[\w-]{10,}"  # Slack
    r"|SG\.[\w-]{16,}\.[\w-]{16,}"  # SendGrid
    r"|(?i:bearer)\s+[\w.~+/-]{16,}=*"
    r"|(?<=://)[^/\s:@]*:[^/\s@]+(?=@)"  # user:password in a URL
)

# Libraries that format request and response bodies into their debug messages themselves (no
# arguments to withhold): held at INFO whatever `--loglevel` says.
BODY_LOGGING_LIBRARIES = ("slack_sdk", "python_http_client")
_SCALARS = (str, int, float, bool, type(None), BaseException)

# LogRecord's own attributes: everything else on a record was passed with `extra=`.
_RECORD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class Redactor:
    """Replaces secrets, e-mail addresses and phone numbers in a line of text.

    Phone numbers are found by libphonenumber's matcher (`phonenumbers`, valid numbers only): in
    international form (`+44 20 7946 0958`, `0044 20 7946 0958`, `14155550134`) of any country,
    and in national form (`020 7946 0958`, `4155550134`) of `phone_regions`. A national number
    must carry its trunk prefix where its country writes one (the 0 of `020`), so a bare
    `1732382295` (a Unix time) is not taken for a British number. Decimals are never phones.
    """

    def __init__(
        self, secrets: Iterable[str] = (), phone_regions: Iterable[str] = DEFAULT_PHONE_REGIONS
    ) -> None:
        # Longest first, so a secret containing another is replaced whole; JSON-escaped forms
        # too, since a secret may reach a line inside a serialized value.
        values = {s for secret in secrets if len(secret) >= 4 for s in _spellings(secret)}
        self._secrets = sorted(values, key=len, reverse=True)
        self._regions = tuple(phone_regions)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[secret]")
        text = TOKEN.sub("[secret]", text)
        text = EMAIL.sub("[email]", text)
        return self._redact_phones(text)

    def _redact_phones(self, text: str) -> str:
        if sum(char.isdigit() for char in text) < _MIN_PHONE_DIGITS:
            return text
        spans = [
            match.span() for match in PHONE_SHAPED.finditer(text) if not _is_decimal(text, match)
        ]
        for region in self._regions:
            for found in phonenumbers.PhoneNumberMatcher(
                text, region, leniency=phonenumbers.Leniency.VALID
            ):
                if _as_written(found, region) and not _is_decimal(text, found):
                    spans.append((found.start, found.end))
        for start, end in reversed(merged(spans)):
            text = text[:start] + "[phone]" + text[end:]
        return text


def _is_decimal(text: str, span: re.Match[str] | phonenumbers.PhoneNumberMatch) -> bool:
    """Whether the digits at `span` are (or hold) a decimal number: `+7.01262417199996`, the
    fraction of `3.14159265358`, the whole part of `4155550134.5`, a mantissa (`...e+20`), or
    floats in a row (`+0.0 10000.0`)."""
    start, end = span.span() if isinstance(span, re.Match) else (span.start, span.end)
    if any(_DECIMAL.fullmatch(piece) for piece in text[start:end].split()):
        return True
    before, after = text[max(0, start - 3) : start], text[end : end + 2]
    return bool(_DECIMAL_BEFORE.search(before)) or (
        len(after) == 2 and after[0] in ".,eE" and (after[1].isdigit() or after[1] in "+-")
    )


def _as_written(found: phonenumbers.PhoneNumberMatch, region: str) -> bool:
    """Whether the text holds the number as people write it: with its country code (after `+`,
    the region's international prefix such as `00`, or nothing), or nationally with the trunk
    prefix its country writes opening it (`020 7946 0958`; not `20...`, nor the `0` of a
    neighbouring id in `r-0 1130000000`). The matcher is more lenient: it reads 13-digit Unix
    milliseconds such as `1118562000000` as a North American number behind stray digits."""
    number = found.number
    written = _digits(found.raw_string)
    significant = phonenumbers.national_significant_number(number)
    international = f"{number.country_code}{significant}"
    if written.endswith(international):
        dialled = written[: len(written) - len(international)]
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        idd = metadata.international_prefix if metadata is not None else None
        return not dialled or (idd is not None and re.fullmatch(idd, dialled) is not None)
    national = _digits(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL))
    if national == significant:  # no trunk prefix (North America): the area code too
        return written.endswith(significant) and len(significant) >= 10
    trunk = national[: len(national) - len(significant)]
    return written == national and found.raw_string.lstrip("(").startswith(trunk + significant[0])


def _digits(text: str) -> str:
    return "".join(char for char in text if char.isdigit())


def _spellings(secret: str) -> set[str]:
    return {secret, orjson.dumps(secret).decode()[1:-1]}


class RedactingFilter(logging.Filter):
    """Rewrites each record's message, fields and traceback before any formatter sees it."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redact = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and not record.name.startswith("alert_engine"):
            record.args = _without_payloads(record.args)
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


class _Withheld:
    """Stands in for a library's log argument that may hold a record: shows only its kind."""

    def __init__(self, value: object) -> None:
        if isinstance(value, bytes | bytearray | memoryview):
            self.text = f"<{len(value)} bytes>"
        elif isinstance(value, list | tuple | set | frozenset) and not hasattr(value, "_fields"):
            self.text = "[" + ", ".join(repr(_without_payload(item)) for item in value) + "]"
        else:
            self.text = f"<{type(value).__name__}>"

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


def _without_payload(value: object) -> object:
    return value if isinstance(value, _SCALARS) else _Withheld(value)


def _without_payloads(args: Any) -> Any:
    """Faust and aiokafka log whole records at debug (`yielded: [Alert(...)]`, `send: ... v=b'...'`,
    fetch responses with their message sets): names and comments no redaction pattern knows. Their
    arguments keep their scalars (topics, offsets, errors) and show the kind of everything else."""
    if isinstance(args, dict):
        return {key: _without_payload(value) for key, value in args.items()}
    return tuple(_without_payload(value) for value in args)


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
        "loggers": {
            name: {"level": max(logging.INFO, logging.getLevelNamesMapping()[level.upper()])}
            for name in BODY_LOGGING_LIBRARIES
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
    }
