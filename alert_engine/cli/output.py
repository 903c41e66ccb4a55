"""How the commands tell a user what went wrong: located problems on stderr, and one exit code
per kind of outcome, the same for every command.

    0  done, nothing wrong
    1  problems found (a rule or routing file refused, a rule that does not exist)
    2  usage: a command line click refuses, or settings that do not validate
    3  infrastructure unreachable: Kafka, Redis or PostgreSQL did not answer

Colour only when the stream is a terminal (click drops the styles otherwise).
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import click
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from alert_engine.problems import ProblemsError

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


def print_problems(exc: ProblemsError, outcome: str = "the rules were not loaded") -> None:
    """Every problem, sorted by file and line, then how many and what it means."""
    ordered = sorted(
        exc.problems,
        key=lambda problem: (
            str(problem.location.file),
            problem.location.line,
            problem.location.column,
        ),
    )
    for problem in ordered:
        click.echo(click.style(f"{problem.location}:", bold=True) + f" {problem.message}", err=True)
    click.secho(f"{len(exc.problems)} problem(s); {outcome}", fg="red", err=True)


def exit_with_problems(
    exc: ProblemsError, outcome: str = "the rules were not loaded", code: int = EXIT_PROBLEMS
) -> NoReturn:
    print_problems(exc, outcome)
    sys.exit(code)


def exit_with(message: str, code: int = EXIT_PROBLEMS) -> NoReturn:
    """`message` on stderr, and the command ends with `code`."""
    click.echo(message, err=True)
    sys.exit(code)


def redacted_url(url: str) -> str:
    """`redis://:secret@host:6379/0` as `redis://:***@host:6379/0`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def unreachable_message(exc: BaseException) -> str | None:
    """One line naming what could not be reached and the setting that points elsewhere, or None
    if `exc` is not about reaching Kafka or Redis."""
    from psycopg import OperationalError

    from alert_engine.settings import DatabaseSettings, KafkaSettings, RedisSettings

    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        url = redacted_url(RedisSettings().url)
        return f"cannot reach Redis at {url} ({exc}); set ALERT_ENGINE_REDIS_URL"
    if isinstance(exc, KafkaConnectionError | KafkaTimeoutError):
        bootstrap = KafkaSettings().bootstrap
        return (
            f"cannot reach Kafka at {bootstrap} ({type(exc).__name__}); "
            "set ALERT_ENGINE_KAFKA_BOOTSTRAP"
        )
    if isinstance(exc, OperationalError):
        secret = DatabaseSettings().url
        url = redacted_url(secret.get_secret_value()) if secret is not None else "(not set)"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"cannot reach PostgreSQL at {url} ({first_line}); set ALERT_ENGINE_DATABASE_URL"
    return None


class EngineGroup(click.Group):
    """The `alert-engine` group: whatever command runs, the engine's own refusals become a few
    lines and their exit code instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ProblemsError as exc:
            print_problems(exc, "nothing was changed")
            ctx.exit(EXIT_PROBLEMS)
        except ValidationError as exc:
            # Settings read from ALERT_ENGINE_* variables.
            for error in exc.errors(include_url=False):
                where = ".".join(str(part) for part in error["loc"])
                click.echo(f"setting {where}: {error['msg']}", err=True)
            ctx.exit(EXIT_USAGE)
        except Exception as exc:
            message = unreachable_message(exc)
            if message is None:
                raise
            click.secho(message, fg="red", err=True)
            ctx.exit(EXIT_UNREACHABLE)
