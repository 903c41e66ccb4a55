"""`alert-engine failed ...`: alerts whose delivery failed for good (the `alerts.failed` topic)."""

from __future__ import annotations

import asyncio

import click

from alert_engine.settings import KafkaSettings


@click.group()
def failed() -> None:
    """Alerts whose delivery failed for good (the `alerts.failed` topic)."""


@failed.command("list")
def failed_list() -> None:
    """List failed deliveries: alert, destination, time and error."""
    from alert_engine.delivery.failed import read_failed

    items = asyncio.run(read_failed(KafkaSettings()))
    for item in items:
        click.echo(f"{item.time}  {item.alert_id}  {item.destination}  {item.reason}")
    click.echo(f"{len(items)} failed delivery(ies)")


@failed.command("replay")
@click.option("--alert", "alert_ids", multiple=True, help="Only this alert id (repeatable).")
def failed_replay(alert_ids: tuple[str, ...]) -> None:
    """Send failed alerts back for delivery; destinations that already have them are skipped."""
    from alert_engine.delivery.failed import read_failed, replay

    kafka = KafkaSettings()
    items = asyncio.run(read_failed(kafka))
    if alert_ids:
        items = [item for item in items if item.alert_id in alert_ids]
    count = asyncio.run(replay(kafka, items))
    click.echo(f"replayed {count} alert(s) to {kafka.alerts_topic}")
