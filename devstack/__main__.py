"""`python -m devstack`: the local stack (`up`, `libs`) and the demo (`demo`), run from a clone."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from devstack.errors import StackError
from devstack.foreground import run_until_stopped, workdir_option
from devstack.kafka_libs import ensure_kafka_libs
from devstack.stack import LocalStack


@click.group()
def main() -> None:
    """The local development stack of alert_engine: Kafka, Redis, a worker and a demo feed."""


@main.command()
@click.option(
    "--workdir", type=click.Path(path_type=Path), default=Path(".demo"), show_default=True
)
@click.option("--keep-running", is_flag=True, help="Leave the stack and worker up after the feed.")
def demo(workdir: Path, keep_running: bool) -> None:
    """Start Kafka, Redis and a worker, play a demo feed and show the alerts as they fire."""
    from devstack.demo import run_demo

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(run_demo(workdir, keep_running=keep_running))


def _say(line: str) -> None:
    # Progress goes to stderr: stdout holds only what a script reads (exports, the jars' path).
    click.echo(line, err=True)


@main.command()
@workdir_option
def up(workdir: Path | None) -> None:
    """Start the local Kafka broker, Redis and PostgreSQL on free loopback ports, print their
    endpoints as `export` lines, and run until Ctrl-C. Resolves Kafka's jars first, if the cache
    lacks them, saying what Maven downloads."""
    stack = LocalStack(workdir, with_postgres=True)
    sys.exit(run_until_stopped(stack, prepare=lambda: ensure_kafka_libs(_say)))


@main.command()
def libs() -> None:
    """Only resolve the Kafka broker's jars from Maven Central into the cache; print its path."""
    try:
        click.echo(ensure_kafka_libs(_say))
    except StackError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
