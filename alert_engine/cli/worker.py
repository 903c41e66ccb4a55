"""`alert-engine worker` and `alert-engine produce`: run a worker; send events to its topics."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import BinaryIO

import click

from alert_engine.cli.output import EXIT_USAGE, exit_with, exit_with_problems
from alert_engine.events import Stream
from alert_engine.rules.load import RulesetError
from alert_engine.settings import EngineSettings, KafkaSettings, Settings
from alert_engine.worker.collector import tune_collector


@click.command()
@click.option("--rules", "rules_dir", type=click.Path(path_type=Path), help="Rules directory.")
@click.option("--loglevel", default="info", show_default=True)
def worker(rules_dir: Path | None, loglevel: str) -> None:
    """Run a worker: evaluate rules on the input topics and deliver alerts.

    Kafka, Redis and the web server are configured with ALERT_ENGINE_* environment variables.
    """
    from alert_engine.cli.kafka import ensure_topics
    from alert_engine.logs import logging_config, secrets_of
    from alert_engine.routing import RoutingError
    from alert_engine.signin.members import MembersError
    from alert_engine.worker.build import build_worker, changelog_topics
    from alert_engine.worker.shutdown import BoundedShutdownWorker

    engine = EngineSettings() if rules_dir is None else EngineSettings(rules_dir=rules_dir)
    settings = Settings(engine=engine)
    try:
        app = build_worker(settings)
    except RoutingError as exc:
        exit_with_problems(exc, "the routing was not loaded", EXIT_USAGE)
    except RulesetError as exc:
        exit_with_problems(exc, code=EXIT_USAGE)
    except MembersError as exc:
        exit_with(f"{exc}; the worker did not start", EXIT_USAGE)
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
    tune_collector()
    runner.execute_from_commandline()


@click.command()
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
