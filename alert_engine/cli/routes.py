"""`alert-engine routes ...`: check a routing file and see where an alert goes."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from alert_engine.cli.output import EXIT_PROBLEMS, exit_with_problems
from alert_engine.problems import ProblemsError
from alert_engine.settings import EngineSettings


@click.group()
def routes() -> None:
    """Check the routing tree and see where an alert would go."""


def _routing_file(file: Path | None) -> Path:
    file = file or EngineSettings().routing_file
    if file is None:
        raise click.UsageError("give --file or set ALERT_ENGINE_ROUTING_FILE")
    return file


@routes.command("check")
@click.option("--file", "file", type=click.Path(path_type=Path), help="The routing file.")
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
def routes_check(file: Path | None, strict: bool) -> None:
    """Validate the routing file; list each problem with file, line and column.

    Warnings mark what loads but looks written for Alertmanager's meaning where the engine's
    differs (docs/channels.md); with --strict they fail the check.
    """
    from alert_engine.routing import load_routing

    path = _routing_file(file)
    try:
        routing = load_routing(path)
    except ProblemsError as exc:
        exit_with_problems(exc, "the routing was not loaded")
    for warning in routing.warnings:
        click.echo(f"{warning.location}: warning: {warning.message}", err=True)
    warned = f", {len(routing.warnings)} warning(s)" if routing.warnings else ""
    click.echo(f"{path}: OK, {len(routing.destinations)} destination(s){warned}")
    if strict and routing.warnings:
        sys.exit(EXIT_PROBLEMS)


@routes.command("test")
@click.option("--file", "file", type=click.Path(path_type=Path), help="The routing file.")
@click.option("--event", "event_json", help="The alert's event as a JSON object.")
@click.argument("fields", nargs=-1)
def routes_test(file: Path | None, event_json: str | None, fields: tuple[str, ...]) -> None:
    """Show the route path and destinations an example alert takes.

    FIELDS are `name=value` pairs: `rule`, `severity`, `route`, `labels.NAME`, or event fields by
    dotted path (`team=orders customer.tier=gold`).
    """
    from alert_engine.routing import describe, example_alert, load_routing

    try:
        routing = load_routing(_routing_file(file))
        alert = example_alert(event_json, fields)
    except ProblemsError as exc:
        exit_with_problems(exc, "the routing was not loaded")
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(describe(routing.match(alert), routing.destinations))
