"""The `alert-engine` command: the group, and each command group from its own module."""

from __future__ import annotations

import asyncio

import click

from alert_engine.cli.deadletters import deadletter
from alert_engine.cli.routes import routes
from alert_engine.cli.rules import replay, rules
from alert_engine.cli.silences import silence
from alert_engine.cli.worker import produce, worker


@click.group()
@click.version_option(package_name="alert-engine")
def main() -> None:
    """Streaming alerts on negative customer feedback."""


for command in (worker, produce, rules, replay, routes, silence, deadletter):
    main.add_command(command)


@main.command()
@click.option(
    "--by",
    type=click.Choice(["team", "agent", "rule", "week"]),
    default="team",
    show_default=True,
    help="One row per team, agent, rule or ISO week of the alert.",
)
def report(by: str) -> None:
    """Print the recovery outcome figures: alerts, time to claim, follow-ups, rating uplift."""
    from alert_engine.followup.outcomes import load_cases
    from alert_engine.reports import table
    from alert_engine.settings import RedisSettings

    cases = asyncio.run(load_cases(RedisSettings()))
    click.echo(table(cases, by))


if __name__ == "__main__":
    main()
