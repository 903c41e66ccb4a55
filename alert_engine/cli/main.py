"""The `alert-engine` command: the group, and each command group from its own module."""

from __future__ import annotations

import logging

import click

from alert_engine.cli.deadletters import deadletter
from alert_engine.cli.failed import failed
from alert_engine.cli.history import history
from alert_engine.cli.members import members
from alert_engine.cli.output import EngineGroup
from alert_engine.cli.report import report
from alert_engine.cli.routes import routes
from alert_engine.cli.rules import replay, rules
from alert_engine.cli.silences import silence
from alert_engine.cli.worker import produce, worker


@click.group(cls=EngineGroup)
@click.version_option(package_name="alert-engine")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Streaming alerts on negative customer feedback.

    Exit codes: 0 done, 1 problems found, 2 usage or settings, 3 Kafka, Redis or PostgreSQL
    unreachable.
    """
    if ctx.invoked_subcommand != "worker":
        # aiokafka logs each failed connection attempt; a command says it once, on one line.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


for command in (
    worker,
    produce,
    rules,
    replay,
    routes,
    silence,
    failed,
    deadletter,
    members,
    report,
    history,
):
    main.add_command(command)


if __name__ == "__main__":
    main()
