"""`alert-engine history`: the outcome history's schema and its rebuild from the topics."""

from __future__ import annotations

import asyncio
import sys

import click
import psycopg
from pydantic import ValidationError

from alert_engine.cli.output import EXIT_PROBLEMS, EXIT_UNREACHABLE, EXIT_USAGE, exit_with
from alert_engine.settings import DatabaseSettings, KafkaSettings


def database_settings() -> DatabaseSettings:
    """The settings, or the command ends with what is wrong with them."""
    try:
        return DatabaseSettings()
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            name = "ALERT_ENGINE_DATABASE_" + "_".join(map(str, error["loc"])).upper()
            click.echo(f"error: {name}: {error['msg']}", err=True)
        sys.exit(EXIT_USAGE)


def reachable_url() -> str:
    """The history's URL, once PostgreSQL answered there (an unreachable one ends the command:
    the worker waits out an outage, a command run by hand says so at once)."""
    database = database_settings()
    if database.url is None:
        # As `report` without it: what the command needs is missing, as for an unreachable one.
        exit_with(
            "error: set ALERT_ENGINE_DATABASE_URL to the history's PostgreSQL", EXIT_UNREACHABLE
        )
    url = database.url.get_secret_value()
    # An unreachable one raises OperationalError, which the command group turns into the one
    # line and exit code 3 every command gives for what it cannot reach.
    with psycopg.connect(url, connect_timeout=10):
        pass
    return url


@click.group()
def history() -> None:
    """The outcome history in PostgreSQL (ALERT_ENGINE_DATABASE_URL)."""


@history.command("migrate")
def history_migrate() -> None:
    """Create or update the history's tables (workers do it too, at start)."""
    from alert_engine.history.migrate import MigrationError, migrate_url

    try:
        applied = asyncio.run(migrate_url(reachable_url()))
    except MigrationError as exc:
        exit_with(f"error: {exc}", EXIT_PROBLEMS)
    for migration in applied:
        click.echo(f"applied {migration.version:04d}_{migration.name}")
    click.echo(f"{len(applied)} migration(s) applied; the schema is up to date")


@history.command("rebuild")
@click.option("--batch-size", default=5000, show_default=True, help="Records per transaction.")
def history_rebuild(batch_size: int) -> None:
    """Empty the history's tables and read the alerts, cases and followups topics into them
    again, from their start to their end now (workers go on projecting meanwhile)."""
    from alert_engine.cli.kafka import ensure_topics
    from alert_engine.history.migrate import MigrationError
    from alert_engine.history.projection import topic_names
    from alert_engine.history.rebuild import Rebuilt, rebuild

    kafka = KafkaSettings()
    url = reachable_url()

    async def run() -> Rebuilt:
        # With the configured partitions, as a worker makes them: a broker that auto-creates
        # topics would give a topic first asked for here its own default.
        await ensure_topics(kafka, topic_names(kafka).all)
        return await rebuild(kafka, url, batch_size=batch_size)

    try:
        rebuilt = asyncio.run(run())
    except MigrationError as exc:
        exit_with(f"error: {exc}", EXIT_PROBLEMS)
    click.echo(
        f"rebuilt the history from {rebuilt.records} record(s) of {kafka.alerts_topic}, "
        f"{kafka.cases_topic} and {kafka.followups_topic}"
        + (f"; {rebuilt.unreadable} unreadable record(s) skipped" if rebuilt.unreadable else "")
        + (f"; {rebuilt.refused} row(s) refused (see the log)" if rebuilt.refused else "")
    )
