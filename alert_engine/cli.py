"""The `alert-engine` command."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import BinaryIO

import click

from alert_engine.events import Stream
from alert_engine.rules import RulesetError, load_ruleset
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
    from alert_engine.worker import build_worker

    engine = EngineSettings() if rules_dir is None else EngineSettings(rules_dir=rules_dir)
    settings = Settings(engine=engine)
    try:
        app = build_worker(settings)
    except RulesetError as exc:
        _print_problems(exc)
        sys.exit(2)
    # Before Faust subscribes: a broker that auto-creates topics would give them its own default
    # partition count, and the partition count bounds how many workers can share the load.
    asyncio.run(ensure_topics(settings.kafka))
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
