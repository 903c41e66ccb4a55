"""`python -m devstack`: the local stack (`up`, `libs`) and the demo (`demo`), run from a clone."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from devstack import stack


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


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def up(args: tuple[str, ...]) -> None:
    """Start the local Kafka broker, Redis and PostgreSQL on free loopback ports, until Ctrl-C."""
    sys.exit(stack.main(["up", *args]))


@main.command()
def libs() -> None:
    """Only resolve the Kafka broker's jars from Maven Central into the cache."""
    sys.exit(stack.main(["libs"]))


if __name__ == "__main__":
    main()
