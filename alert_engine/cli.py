"""The `alert-engine` command."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import Counter
from pathlib import Path
from typing import BinaryIO

import click

from alert_engine.events import Stream
from alert_engine.rules import RulesetError, load_rule_files, load_ruleset
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
    import faust

    from alert_engine.producer import ensure_topics
    from alert_engine.worker import build_worker, changelog_topics

    engine = EngineSettings() if rules_dir is None else EngineSettings(rules_dir=rules_dir)
    settings = Settings(engine=engine)
    try:
        app = build_worker(settings)
    except RulesetError as exc:
        _print_problems(exc)
        sys.exit(2)
    # Before Faust subscribes: a broker that auto-creates topics would give them its own default
    # partition count, and the partition count bounds how many workers can share the load.
    asyncio.run(ensure_topics(settings.kafka, extra=changelog_topics(app)))
    faust.Worker(app, loglevel=loglevel.upper()).execute_from_commandline()


@main.group()
def rules() -> None:
    """Check and test rule files."""


@rules.command("check")
@click.argument("directory", type=click.Path(path_type=Path), default=Path("rules"))
def rules_check(directory: Path) -> None:
    """Validate every rule file in DIRECTORY; list each problem with file, line and column."""
    try:
        ruleset = load_ruleset(directory)
    except RulesetError as exc:
        _print_problems(exc)
        sys.exit(1)
    click.echo(f"{len(ruleset.rules)} rule(s) OK, ruleset version {ruleset.version}")


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
            ruleset = load_rule_files([Path(rule)], defaults_file=_defaults_next_to(Path(rule)))
            [found] = ruleset.rules[:1] or [None]
        else:
            ruleset = load_ruleset(rules_dir)
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
        ruleset = load_ruleset(directory)
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
    from alert_engine.rules import DEFAULTS_FILES

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

    from alert_engine.rules import rule_file_schema

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
    from alert_engine.producer import produce_lines

    kafka = KafkaSettings()
    topic_name = kafka.ratings_topic if topic == Stream.RATINGS.value else kafka.interactions_topic
    lines = [line.rstrip(b"\n") for line in events if line.strip()]
    count = asyncio.run(produce_lines(kafka.bootstrap, topic_name, lines))
    click.echo(f"sent {count} event(s) to {topic_name}")


@main.command()
@click.option(
    "--workdir", type=click.Path(path_type=Path), default=Path(".demo"), show_default=True
)
@click.option("--keep-running", is_flag=True, help="Leave the stack and worker up after the feed.")
def demo(workdir: Path, keep_running: bool) -> None:
    """Start Kafka, Redis and a worker, play a demo feed and show the alerts as they fire."""
    from alert_engine.demo import run_demo

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(run_demo(workdir, keep_running=keep_running))


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def stack(args: tuple[str, ...]) -> None:
    """Start or prepare the local Kafka broker and Redis (`stack up`, `stack libs`)."""
    from alert_engine import stack as local_stack

    sys.exit(local_stack.main(list(args)))


def _print_problems(exc: RulesetError) -> None:
    for problem in exc.problems:
        click.echo(f"{problem}", err=True)
    click.echo(f"{len(exc.problems)} problem(s); the rules were not loaded", err=True)


if __name__ == "__main__":
    main()
