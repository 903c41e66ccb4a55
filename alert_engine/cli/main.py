"""The `alert-engine` command."""

from __future__ import annotations

import asyncio
import gc
import os
import re
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import click

from alert_engine.events import Stream
from alert_engine.rules.ruleset import RulesetError, load_rule_files, load_ruleset
from alert_engine.settings import EngineSettings, KafkaSettings, Settings


@click.group()
@click.version_option(package_name="alert-engine")
def main() -> None:
    """Streaming alerts on negative customer feedback."""


@main.command()
@click.option("--rules", "rules_dir", type=click.Path(path_type=Path), help="Rules directory.")
@click.option("--loglevel", default="info", show_default=True)
def worker(rules_dir: Path | None, loglevel: str) -> None:
    """Run a worker: evaluate rules on the input topics and deliver alerts.

    Kafka, Redis and the web server are configured with ALERT_ENGINE_* environment variables.
    """
    from alert_engine.cli.kafka import ensure_topics
    from alert_engine.logs import logging_config, secrets_of
    from alert_engine.routing import RoutingError
    from alert_engine.worker.build import build_worker, changelog_topics
    from alert_engine.worker.shutdown import BoundedShutdownWorker

    engine = EngineSettings() if rules_dir is None else EngineSettings(rules_dir=rules_dir)
    settings = Settings(engine=engine)
    try:
        app = build_worker(settings)
    except RoutingError as exc:
        _print_problems(exc, "the routing was not loaded")
        sys.exit(2)
    except RulesetError as exc:
        _print_problems(exc)
        sys.exit(2)
    # Before Faust subscribes: a broker that auto-creates topics would give them its own default
    # partition count, and the partition count bounds how many workers can share the load.
    asyncio.run(ensure_topics(settings.kafka, extra=changelog_topics(app)))
    runner = BoundedShutdownWorker(
        app,
        shutdown_timeout=settings.engine.shutdown_timeout,
        loglevel=loglevel.upper(),
        logging_config=logging_config(settings.log.format, loglevel, secrets_of(settings)),
    )
    # Faust's terminal spinner puts the root logger at DEBUG whenever the level is WARNING or
    # above, so every debug call of Faust and aiokafka builds a log record: a few percent of a
    # busy worker's time, for a spinner nobody watches in production.
    runner.spinner = None
    # The hot path makes many small lists and dicts (window states, batch records): with Python's
    # default thresholds the cyclic collector runs every 700 of them and rescans the app's
    # long-lived objects, 10-15% of the windowed rules' time (`benchmarks/evaluate_inprocess.py`).
    # What exists now lives as long as the worker; most garbage is freed by reference counting.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    runner.execute_from_commandline()


@main.group()
def rules() -> None:
    """Check and test rule files."""


@rules.command("check")
@click.argument("directory", type=click.Path(path_type=Path), default=Path("rules"))
def rules_check(directory: Path) -> None:
    """Validate every rule file in DIRECTORY; list each problem with file, line and column."""
    from alert_engine.rules.reload import snapshot

    # Files a worker would skip (a dangling symlink, a symlink loop): a check fails on them.
    skipped = snapshot(directory).unreadable if directory.is_dir() else ()
    for entry in skipped:
        click.echo(entry, err=True)
    try:
        ruleset = load_ruleset(directory, limits=EngineSettings().rule_file_limits)
    except RulesetError as exc:
        _print_problems(exc)
        sys.exit(1)
    if skipped:
        click.echo(f"{len(skipped)} rule file(s) cannot be read and would be skipped", err=True)
        sys.exit(1)
    click.echo(f"{len(ruleset.rules)} rule(s) OK, ruleset version {ruleset.version}")


@main.group()
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
    except RulesetError as exc:
        _print_problems(exc, "the routing was not loaded")
        sys.exit(1)
    for warning in routing.warnings:
        click.echo(f"{warning.location}: warning: {warning.message}", err=True)
    warned = f", {len(routing.warnings)} warning(s)" if routing.warnings else ""
    click.echo(f"{path}: OK, {len(routing.destinations)} destination(s){warned}")
    if strict and routing.warnings:
        sys.exit(1)


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
    except RulesetError as exc:
        _print_problems(exc, "the routing was not loaded")
        sys.exit(1)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(describe(routing.match(alert), routing.destinations))


@main.group()
def silence() -> None:
    """Mute alerts matching some matchers until an end time (stored in Redis)."""


def _silences() -> Any:
    from redis.asyncio import Redis

    from alert_engine.delivery.silences import SilenceStore
    from alert_engine.settings import RedisSettings

    settings = RedisSettings()
    return SilenceStore(Redis.from_url(settings.url), settings.key_prefix)


def _duration(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if match is None:
        raise click.BadParameter(f"expected a duration like 30m, 2h or 1d, got {text!r}")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


@silence.command("add")
@click.option(
    "-m",
    "--matcher",
    "matchers",
    multiple=True,
    required=True,
    help="`field OP value` as in the routing file (repeatable; all must match).",
)
@click.option("--for", "duration", default="2h", show_default=True, help="30m, 2h, 1d...")
@click.option("--by", "created_by", default=lambda: os.environ.get("USER", "unknown"))
@click.option("--comment", default="")
def silence_add(matchers: tuple[str, ...], duration: str, created_by: str, comment: str) -> None:
    """Add a silence."""
    ends_at = datetime.now(UTC) + _duration(duration)

    async def add() -> Any:
        store = _silences()
        try:
            return await store.add(list(matchers), ends_at, created_by=created_by, comment=comment)
        finally:
            await store.redis.aclose()

    try:
        added = asyncio.run(add())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--matcher") from None
    click.echo(f"{added.id} until {added.ends_at:%Y-%m-%d %H:%M} UTC: {', '.join(added.matchers)}")


@silence.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include silences that ended.")
def silence_list(show_all: bool) -> None:
    """List active silences."""

    async def read() -> list[Any]:
        store = _silences()
        try:
            return list(await store.all())
        finally:
            await store.redis.aclose()

    now = datetime.now(UTC)
    for item in asyncio.run(read()):
        if show_all or item.is_active(now):
            state = "active" if item.is_active(now) else "ended"
            click.echo(
                f"{item.id}  {state}  until {item.ends_at:%Y-%m-%d %H:%M} UTC  "
                f"{', '.join(item.matchers)}  by {item.created_by}  {item.comment}".rstrip()
            )


@silence.command("expire")
@click.argument("silence_id")
def silence_expire(silence_id: str) -> None:
    """End a silence now."""

    async def expire() -> bool:
        store = _silences()
        try:
            return bool(await store.expire(silence_id))
        finally:
            await store.redis.aclose()

    if not asyncio.run(expire()):
        click.echo(f"no silence {silence_id}", err=True)
        sys.exit(1)
    click.echo(f"{silence_id} ended")


@main.group()
def deadletter() -> None:
    """Alerts whose delivery failed for good (the `alerts.failed` topic)."""


@deadletter.command("list")
def deadletter_list() -> None:
    """List failed deliveries: alert, destination, time and error."""
    from alert_engine.delivery.failed import read_failed

    failed = asyncio.run(read_failed(KafkaSettings()))
    for item in failed:
        click.echo(f"{item.time}  {item.alert_id}  {item.destination}  {item.reason}")
    click.echo(f"{len(failed)} failed delivery(ies)")


@deadletter.command("replay")
@click.option("--alert", "alert_ids", multiple=True, help="Only this alert id (repeatable).")
def deadletter_replay(alert_ids: tuple[str, ...]) -> None:
    """Send failed alerts back for delivery; destinations that already have them are skipped."""
    from alert_engine.delivery.failed import read_failed, replay

    kafka = KafkaSettings()
    failed = asyncio.run(read_failed(kafka))
    if alert_ids:
        failed = [item for item in failed if item.alert_id in alert_ids]
    count = asyncio.run(replay(kafka, failed))
    click.echo(f"replayed {count} alert(s) to {kafka.alerts_topic}")


@rules.command("test")
@click.argument("rule")
@click.option(
    "--events",
    "event_files",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    multiple=True,
    required=True,
    help="JSON lines of events (repeatable).",
)
@click.option("--rules", "rules_dir", type=click.Path(path_type=Path), default=Path("rules"))
def rules_test(rule: str, event_files: tuple[Path, ...], rules_dir: Path) -> None:
    """Run RULE (a rule name in --rules, or a rule file) on events: what matches, and why."""
    from alert_engine.backtest import read_events, try_rule

    try:
        if Path(rule).is_file():
            ruleset = load_rule_files(
                [Path(rule)],
                defaults_file=_defaults_next_to(Path(rule)),
                limits=EngineSettings().rule_file_limits,
            )
            [found] = ruleset.rules[:1] or [None]
        else:
            ruleset = load_ruleset(rules_dir, limits=EngineSettings().rule_file_limits)
            found = ruleset.get(rule)
    except RulesetError as exc:
        _print_problems(exc)
        sys.exit(1)
    if found is None:
        click.echo(f"no rule named {rule!r} in {rules_dir}", err=True)
        sys.exit(1)
    max_bytes = EngineSettings().max_event_bytes
    verdicts = try_rule(found, read_events(event_files), max_event_bytes=max_bytes)
    for verdict in verdicts:
        label = (
            verdict.outcome.upper() if verdict.outcome in ("match", "alert") else verdict.outcome
        )
        click.echo(f"{verdict.source}  {verdict.event_id or '-'}  {label:<8} {verdict.detail}")
    outcomes = Counter(verdict.outcome for verdict in verdicts)
    summary = ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items()))
    click.echo(f"{found.name}: {len(verdicts)} event(s): {summary or 'none'}")


@main.command()
@click.argument("directory", type=click.Path(path_type=Path), default=Path("rules"))
@click.option(
    "--events",
    "event_files",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    multiple=True,
    required=True,
    help="JSON lines of past events, ratings and interactions (repeatable).",
)
@click.option("--top", default=5, show_default=True, help="How many top keys to show per rule.")
def replay(directory: Path, event_files: tuple[Path, ...], top: int) -> None:
    """Backtest the rules in DIRECTORY on past events: alerts per rule, per day, top keys."""
    from alert_engine.backtest import read_events
    from alert_engine.backtest import replay as run_replay

    try:
        ruleset = load_ruleset(directory, limits=EngineSettings().rule_file_limits)
    except RulesetError as exc:
        _print_problems(exc)
        sys.exit(1)
    report = run_replay(
        ruleset, read_events(event_files), max_event_bytes=EngineSettings().max_event_bytes
    )
    rejected = sum(report.rejected.values())
    click.echo(
        f"{report.events} event(s) replayed against ruleset {ruleset.version}"
        + (f"; {rejected} rejected ({dict(report.rejected)})" if rejected else "")
    )
    for name, rule in report.rules.items():
        throttled = f", {rule.throttled} throttled" if rule.throttled else ""
        click.echo(f"\n{name}: {rule.alerts} alert(s){throttled}")
        for day, count in sorted(rule.per_day.items()):
            click.echo(f"  {day}  {count}")
        if rule.keys:
            keys = ", ".join(f"{key} ({count})" for key, count in rule.keys.most_common(top))
            click.echo(f"  top keys: {keys}")


def _defaults_next_to(rule_file: Path) -> Path | None:
    from alert_engine.rules.ruleset import DEFAULTS_FILES

    found = [rule_file.parent / name for name in DEFAULTS_FILES]
    return next((path for path in found if path.is_file()), None)


@rules.command("schema")
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=Path("rules.schema.json"),
    show_default=True,
    help="Where to write the schema; `-` for stdout.",
)
def rules_schema(output: Path) -> None:
    """Write the JSON Schema of rule files, for editors with a YAML language server."""
    import json

    from alert_engine.rules.ruleset import rule_file_schema

    text = json.dumps(rule_file_schema(), indent=2, sort_keys=True) + "\n"
    if str(output) == "-":
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        click.echo(f"wrote {output}")


@main.command()
@click.argument("topic", type=click.Choice([stream.value for stream in Stream]))
@click.argument("events", type=click.File("rb"), default="-")
def produce(topic: str, events: BinaryIO) -> None:
    """Send EVENTS (JSON lines; `-` for stdin) to TOPIC as they are, invalid ones included."""
    from alert_engine.cli.kafka import produce_lines

    kafka = KafkaSettings()
    topic_name = kafka.ratings_topic if topic == Stream.RATINGS.value else kafka.interactions_topic
    lines = [line.rstrip(b"\n") for line in events if line.strip()]
    count = asyncio.run(produce_lines(kafka.bootstrap, topic_name, lines))
    click.echo(f"sent {count} event(s) to {topic_name}")


def _print_problems(exc: RulesetError, outcome: str = "the rules were not loaded") -> None:
    for problem in exc.problems:
        click.echo(f"{problem}", err=True)
    click.echo(f"{len(exc.problems)} problem(s); {outcome}", err=True)


# Command groups in modules of their own.
from alert_engine.cli.history import history  # noqa: E402
from alert_engine.cli.report import report  # noqa: E402

main.add_command(report)
main.add_command(history)

if __name__ == "__main__":
    main()
