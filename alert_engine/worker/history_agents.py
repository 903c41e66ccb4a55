"""The outcome history on the worker: the follow-up sends onto the `followups` topic (always:
the topic is the record a history rebuilt later reads), and, with a database configured
(`ALERT_ENGINE_DATABASE_URL`), the projection of the topics into PostgreSQL as a task of the
worker (`alert_engine.history.projection`) and the dashboard on it (`alert_engine.dashboard`)."""

from __future__ import annotations

import asyncio
import logging

import faust

from alert_engine.dashboard.page import register_dashboard
from alert_engine.followup.sends import FollowupSettled
from alert_engine.followup.service import FollowupService
from alert_engine.history.projection import Projection
from alert_engine.settings import Settings
from alert_engine.stats import Stats
from alert_engine.worker.topics import Topics

log = logging.getLogger(__name__)

FIRST_DELAY = 0.2
MAX_DELAY = 5.0
# After the projection stopped on an error.
RESTART_SECONDS = 30.0


def add_history(
    app: faust.App,
    settings: Settings,
    topics: Topics,
    followup: FollowupService | None,
    stats: Stats,
) -> Projection | None:
    """The projection, if the history has a database."""
    if followup is not None:
        followups = topics[settings.kafka.followups_topic]

        async def publish_settled(settled: FollowupSettled) -> None:
            # The survey is settled in Redis already (sent at most once): its record waits for
            # the broker rather than being lost from the history.
            delay = FIRST_DELAY
            while True:
                try:
                    sent = await followups.send(
                        key=settled.alert_id.encode(), value=settled.to_json()
                    )
                    await sent
                    return
                except Exception as exc:  # the producer's errors have no common base
                    log.warning(
                        "follow-up record of %s not sent, retrying in %.1fs: %s",
                        settled.alert_id,
                        delay,
                        exc,
                    )
                    await asyncio.sleep(delay)
                    delay = min(MAX_DELAY, delay * 2)

        followup.on_settled = publish_settled

    if not settings.database.enabled:
        return None
    register_dashboard(app, settings.database, company=settings.followup.company)
    projection = Projection(
        settings.kafka,
        settings.database,
        group_id=f"{settings.engine.app_id}-{settings.database.group_suffix}",
    )

    def settle() -> None:
        # The projection's own counts, as the worker's counters (`/stats`, `/metrics`).
        for counter, counts in (
            (stats.history_records, projection.stats.records_by_topic),
            (stats.history_unreadable, projection.stats.unreadable),
            (stats.history_refused, projection.stats.refused_by_topic),
        ):
            counter.clear()
            counter.update(counts)

    stats.on_settle(settle)

    @app.task  # type: ignore[untyped-decorator]
    async def project_history() -> None:
        # A fault of the history (a schema from a newer release, a bug) must not stop the
        # worker: Faust would crash the app, and delivery with it. Logged, and tried again.
        while True:
            try:
                await projection.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "the outcome history's projection stopped; starting it again in %.0f s",
                    RESTART_SECONDS,
                )
                await asyncio.sleep(RESTART_SECONDS)

    return projection
