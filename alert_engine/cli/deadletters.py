"""`alert-engine deadletter ...`: alerts whose delivery failed for good."""

from __future__ import annotations

import asyncio

import click

from alert_engine.settings import KafkaSettings


@click.group()
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
