"""`alert-engine deadletter ...`: input events the engine refused (the `deadletter` topic), with
the reason and where each came from; replayed to their topic once the cause is fixed."""

from __future__ import annotations

import asyncio
from collections import Counter

import click

from alert_engine.deadletters import ReadDeadLetter
from alert_engine.settings import KafkaSettings


@click.group()
def deadletter() -> None:
    """Input events refused at the edge (the `deadletter` topic): not JSON, invalid, too large..."""


def _read(kafka: KafkaSettings, reason: str | None) -> list[ReadDeadLetter]:
    from alert_engine.cli.kafka import read_topic

    records = asyncio.run(read_topic(kafka.bootstrap, kafka.deadletter_topic))
    letters = [ReadDeadLetter.of(r.key, r.value, list(r.headers)) for r in records]
    return [letter for letter in letters if reason is None or letter.reason == reason]


@deadletter.command("list")
@click.option("--reason", help="Only this reason (not_json, invalid, too_large, ...).")
@click.option("--limit", default=50, show_default=True, help="Show at most this many, newest last.")
def deadletter_list(reason: str | None, limit: int) -> None:
    """List refused events: time, where from, reason and detail; then a count per reason."""
    from alert_engine.deadletters import ReadDeadLetter

    letters = [
        letter for letter in _read(KafkaSettings(), reason) if isinstance(letter, ReadDeadLetter)
    ]
    for letter in letters[-limit:] if limit > 0 else []:
        where = f"{letter.source_topic}[{letter.source_partition}]@{letter.source_offset}"
        cut = " (truncated)" if letter.truncated else ""
        click.echo(f"{letter.time}  {where}  {letter.reason}{cut}  {letter.detail}")
    counts = Counter(letter.reason for letter in letters)
    by_reason = ", ".join(f"{count} {name}" for name, count in sorted(counts.items()))
    click.echo(f"{len(letters)} dead letter(s)" + (f": {by_reason}" if by_reason else ""))


@deadletter.command("replay")
@click.option("--reason", help="Only this reason.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def deadletter_replay(reason: str | None, yes: bool) -> None:
    """Send refused events back to the topic they came from, byte for byte (after a fix of the
    rules, limits or producer). Truncated ones cannot be replayed and are listed."""
    from alert_engine.cli.kafka import produce_lines

    kafka = KafkaSettings()
    letters = _read(kafka, reason)
    whole = [letter for letter in letters if not letter.truncated and letter.source_topic]
    for letter in letters:
        if letter not in whole:
            click.echo(f"not replayed (truncated): {letter.source_topic}@{letter.source_offset}")
    if not whole:
        click.echo("nothing to replay")
        return
    if not yes:
        click.confirm(f"replay {len(whole)} event(s) to their topics?", abort=True)
    sent = 0
    for topic in sorted({letter.source_topic for letter in whole}):
        mine = [letter for letter in whole if letter.source_topic == topic]
        sent += asyncio.run(
            produce_lines(
                kafka.bootstrap,
                topic,
                [letter.value for letter in mine],
                keys=[letter.key for letter in mine],
            )
        )
    click.echo(f"replayed {sent} event(s)")
