"""Assembles a worker from settings: rules, clients and destinations are built here and passed
to the app."""

from __future__ import annotations

from collections.abc import Mapping

import faust
from redis.asyncio import Redis

from alert_engine.app import create_app
from alert_engine.channels import Destination
from alert_engine.channels.outbox import OutboxDestination
from alert_engine.delivery import Deliverer, DeliveryLedger
from alert_engine.evaluate import Evaluator
from alert_engine.reload import RulesReloader
from alert_engine.rules import load_ruleset
from alert_engine.settings import Settings
from alert_engine.stats import Stats


def configured_routes(settings: Settings) -> Mapping[str, Destination]:
    """Route name -> destination. Without Slack or email configured, all goes to the outbox."""
    outbox = OutboxDestination(settings.engine.outbox_path)
    return {"default": outbox, "outbox": outbox}


def build_worker(settings: Settings) -> faust.App:
    """Raises `RulesetError` before anything connects if the rules do not load."""
    routes = configured_routes(settings)
    ruleset = load_ruleset(settings.engine.rules_dir, routes=routes)
    stats = Stats()
    evaluator = Evaluator(ruleset, max_event_bytes=settings.engine.max_event_bytes, stats=stats)
    # from_url connects lazily, inside the worker's event loop.
    redis = Redis.from_url(settings.redis.url)
    deliverer = Deliverer(routes, DeliveryLedger(redis, settings.redis.key_prefix), stats=stats)
    reloader = RulesReloader(settings.engine.rules_dir, evaluator, routes=routes)
    return create_app(settings, evaluator, deliverer, stats, reloader)


def changelog_topics(app: faust.App) -> dict[str, dict[str, str]]:
    """The tables' changelog topics and their configuration, to create before the worker starts.

    Left to Faust, they are created as the worker starts, and until the consumer's metadata knows
    their partitions the windowed agent crashes on a partition-count check and is restarted."""
    topics = {}
    for table in app.tables.values():
        topic = table.changelog_topic
        policies = [
            name for name, on in (("compact", topic.compacting), ("delete", topic.deleting)) if on
        ]
        configs = {"cleanup.policy": ",".join(policies) or "compact"}
        if topic.retention:
            configs["retention.ms"] = str(int(topic.retention * 1000))
        topics[topic.get_topic_name()] = configs
    return topics
