"""Assembles a worker from settings: rules, routing, clients and destinations are built here and
passed to the app."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import faust
from redis.asyncio import Redis
from slack_sdk.web.async_client import AsyncWebClient

from alert_engine.alerts import Alert
from alert_engine.cases import CaseEvent, CasePolicy, CaseState, CaseStore
from alert_engine.channels import Destination
from alert_engine.channels.email import EmailDestination, sendgrid_client
from alert_engine.channels.outbox import OutboxDestination
from alert_engine.channels.presentation import LinkTemplates
from alert_engine.channels.slack import SlackCaseUpdates, SlackDestination, make_client
from alert_engine.console.actions import WebActions, team_of
from alert_engine.console.case_page import register_case_page
from alert_engine.console.views import CONSOLE_SCRIPTS, register_console
from alert_engine.deadletters import DeadLetter
from alert_engine.delivery.deliverer import Deliverer, DeliveryLedger, Failure, RetryPolicy
from alert_engine.delivery.digests import Groups
from alert_engine.delivery.escalation import Escalations, escalated
from alert_engine.delivery.inhibition import Inhibitor
from alert_engine.delivery.silences import SilenceStore
from alert_engine.evaluate import Evaluator
from alert_engine.followup.mailer import survey_mailer
from alert_engine.followup.service import FollowupService
from alert_engine.routing import EmailSpec, Routing, SlackSpec, default_routing, load_routing
from alert_engine.rules.load import load_ruleset
from alert_engine.rules.reload import RulesReloader
from alert_engine.settings import Settings
from alert_engine.signin.gate import Gate
from alert_engine.signin.views import register_signin_views
from alert_engine.stats import Stats
from alert_engine.storage.outage import tick_skipped_on_outage, until_redis_answers
from alert_engine.worker.app import create_app
from alert_engine.worker.history_agents import add_history
from alert_engine.worker.metrics import serve_open_cases
from alert_engine.worker.outbox_page import PAGE_SCRIPTS
from alert_engine.worker.web import register_views
from alert_engine.worker.webguard import guard_pages

log = logging.getLogger(__name__)


def configured_routing(settings: Settings) -> Routing:
    """Raises `RoutingError` if the routing file has problems."""
    if settings.engine.routing_file is None:
        return default_routing()
    return load_routing(settings.engine.routing_file)


def link_templates(settings: Settings) -> LinkTemplates:
    return LinkTemplates(settings.engine.customer_url, settings.engine.interaction_url)


def build_destinations(
    routing: Routing, settings: Settings, cases: CaseStore | None = None
) -> dict[str, Destination]:
    """One destination per name in the routing file. A Slack or email destination whose account
    is not configured delivers to the local outbox under its own name instead. Slack
    destinations keep where they posted each alert in `cases`, for replies in its thread."""
    links = link_templates(settings)
    slack_token = settings.slack.bot_token
    # Posts are retried by the delivery layer alone (see `make_client`).
    slack_client = (
        make_client(slack_token.get_secret_value(), settings.slack.api_url)
        if slack_token is not None
        else None
    )
    destinations: dict[str, Destination] = {}
    sendgrid = sendgrid_client(settings.sendgrid)
    for name, spec in routing.destinations.items():
        if isinstance(spec, SlackSpec) and slack_client is not None:
            destinations[name] = SlackDestination(
                name,
                spec.channel,
                slack_client,
                links,
                routing.slack_templates.get(name),
                cases=cases,
                contact=settings.cases.show_contact,
            )
        elif isinstance(spec, EmailSpec) and sendgrid is not None:
            destinations[name] = EmailDestination(
                name,
                spec.to,
                sendgrid,
                settings.sendgrid.sender,
                templates=routing.email_templates.get(name),
                links=links,
                contact=settings.cases.show_contact,
            )
        else:
            destinations[name] = OutboxDestination(settings.engine.outbox_path, name=name)
    return destinations


def build_worker(settings: Settings) -> faust.App:
    """Raises `RulesetError` (or `RoutingError`) before anything connects if the rules or the
    routing do not load."""
    routing = configured_routing(settings)
    # from_url connects lazily, inside the worker's event loop.
    redis = Redis.from_url(settings.redis.url)
    cases = CaseStore(redis, settings.redis.key_prefix, CasePolicy.of(settings.cases))
    destinations = build_destinations(routing, settings, cases)
    # A rule's `route:` is a field the routing tree may match on, not a destination name.
    ruleset = load_ruleset(settings.engine.rules_dir, limits=settings.engine.rule_file_limits)
    stats = Stats()
    serve_open_cases(stats.registry, cases.open_count)
    evaluator = Evaluator(
        ruleset,
        max_event_bytes=settings.engine.max_event_bytes,
        stats=stats,
        idle_seconds=settings.engine.windows_idle_seconds,
        input_partitions=settings.kafka.partitions,
    )
    escalations = Escalations(redis, settings.redis.key_prefix)
    groups = Groups(redis, settings.redis.key_prefix)

    def escalate_after(alert: Alert) -> timedelta | None:
        # The rules in force now: hot reload may have replaced those the worker started with.
        rule = evaluator.ruleset.get(alert.rule)
        return rule.spec.escalate_after if rule is not None else None

    deliverer = Deliverer(
        destinations,
        DeliveryLedger(redis, settings.redis.key_prefix),
        stats=stats,
        routing=routing,
        escalations=escalations,
        escalate_after=escalate_after,
        silences=SilenceStore(redis, settings.redis.key_prefix),
        inhibitor=Inhibitor(redis, settings.redis.key_prefix, routing.inhibit_rules),
        groups=groups,
        cases=cases,
        retry=RetryPolicy.of(settings.delivery),
        max_in_flight=settings.engine.delivery_concurrency,
    )
    followup = FollowupService(
        settings.followup,
        redis,
        settings.redis.key_prefix,
        survey_mailer(settings),
        public_url=settings.followup.public_url
        or f"http://{settings.web.host}:{settings.web.port}",
        rule_policies={
            rule.name: rule.spec.followup for rule in ruleset.rules if rule.spec.followup
        },
    )
    reloader = RulesReloader(
        settings.engine.rules_dir, evaluator, limits=settings.engine.rule_file_limits
    )
    app, topics = create_app(settings, evaluator, deliverer, stats, followup, reloader)
    add_history(app, settings, topics, followup, stats)

    async def publish_case(change: CaseEvent) -> None:
        # Someone acted on the alert: it no longer escalates.
        await escalations.cancel(change.alert_id)
        # Awaited until the broker has it: a click is only answered once its record is durable.
        sent = await topics.cases.send(key=change.alert_id.encode(), value=change.to_json())
        await sent

    @app.timer(settings.engine.escalation_check_interval)  # type: ignore[untyped-decorator]
    async def send_due_escalations() -> None:
        # Redis down: try again at the next tick. A taken escalation is leased, not removed, so
        # one interrupted here is taken again when its lease ends.
        with tick_skipped_on_outage("due escalations"):
            for alert in await escalations.take_due(datetime.now(UTC)):
                if (await cases.get(alert.id)).state is CaseState.OPEN:
                    for failure in await deliverer.deliver(escalated(alert)):
                        await dead_letter(escalated(alert), failure)
                await escalations.cancel(alert.id)

    @app.timer(settings.engine.escalation_check_interval)  # type: ignore[untyped-decorator]
    async def send_due_digests() -> None:
        with tick_skipped_on_outage("due digests"):
            for digest in await groups.take_due(datetime.now(UTC)):
                for failure in await deliverer.deliver_digest(digest):
                    for alert in digest.alerts:
                        await dead_letter(alert, failure)
                await groups.sent(digest, datetime.now(UTC))

    async def dead_letter(alert: Alert, failure: Failure) -> None:
        letter = DeadLetter.failed_delivery(
            topics.failed_alerts.get_topic_name(),
            alert.id,
            alert.to_json(),
            destination=failure.destination,
            error=failure.reason,
        )
        await topics.failed_alerts.send(key=letter.key, value=letter.value, headers=letter.headers)

    secret = settings.slack.signing_secret
    slack_client = next(
        (d.client for d in destinations.values() if isinstance(d, SlackDestination)), None
    )
    updates_client = None
    if slack_client is not None and settings.slack.bot_token is not None:
        reuse_connections(app, slack_client)
        # A click's message update and thread reply have no retry layer but slack_sdk's.
        updates_client = make_client(
            settings.slack.bot_token.get_secret_value(),
            settings.slack.api_url,
            settings.slack.max_retries,
        )
        reuse_connections(app, updates_client)
    gate = Gate(settings.signin, redis, settings.redis.key_prefix, base_url=pages_url(settings))
    members = gate.members
    show_in_slack = register_views(
        app,
        cases,
        publish_case,
        signing_secret=secret.get_secret_value() if secret is not None else None,
        slack_updates=(
            SlackCaseUpdates(updates_client, cases.policy) if updates_client is not None else None
        ),
        outbox_path=settings.engine.outbox_path,
        links=link_templates(settings),
        cases_topic=topics.cases,
        show_contact=settings.cases.show_contact,
        slack_member=members.by_slack_user if members is not None else None,
    )
    register_signin_views(app, gate)
    web_actions = WebActions(cases, publish_case, show_in_slack)
    register_console(app, web_actions)
    register_case_page(
        app,
        web_actions,
        team_members=lambda: team_of(gate),
        links=link_templates(settings),
        show_contact=settings.cases.show_contact,
    )
    guard_pages(
        app, settings.web.host_names, gate=gate, inline_scripts=PAGE_SCRIPTS + CONSOLE_SCRIPTS
    )
    warn_of_open_metrics(settings)

    @app.task  # type: ignore[untyped-decorator]
    async def announce_signin_link() -> None:
        # The demo's way in (no members, no proxy configured); Redis holds the links' secret.
        await until_redis_answers(gate.announce_link, what="the sign-in link")

    return app


def pages_url(settings: Settings) -> str:
    """Where an operator reaches the worker's own pages, as the demo's sign-in link says: the
    first allowed host name, else the listening address (`localhost` when it listens on every
    address, as through `kubectl port-forward`). Not the public URL: an ingress routes only
    Slack's and the surveys' paths there."""
    host = next(iter(settings.web.allowed_hosts), settings.web.host)
    if host in ("", "0.0.0.0", "::"):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.web.port}"


def warn_of_open_metrics(settings: Settings) -> None:
    loopback = settings.web.host in ("127.0.0.1", "::1", "localhost")
    if settings.metrics.token is None and not loopback:
        log.warning(
            "/metrics is served without a token on %s: set ALERT_ENGINE_METRICS_TOKEN (see "
            "docs/operations.md, Sign-in) unless only your scraper reaches that port",
            settings.web.host or "every address",
        )


def reuse_connections(app: faust.App, client: AsyncWebClient) -> None:
    """Give the Slack client one connection pool for the worker's life: without a session of its
    own, slack_sdk opens and closes a connection (and an aiohttp session) for every call, which
    cost more CPU than building the message under load. Until the session exists (the first
    moments of a start) calls still work the per-call way."""

    @app.task  # type: ignore[untyped-decorator]
    async def open_session() -> None:
        client.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=client.timeout))

    @app.on_before_shutdown.connect
    async def close_session(_: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        if client.session is not None:
            await client.session.close()


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
