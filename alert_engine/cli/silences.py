"""`alert-engine silence ...`: mute alerts matching some matchers for a while."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from alert_engine.cli.output import exit_with
from alert_engine.durations import read_duration


@click.group()
def silence() -> None:
    """Mute alerts matching some matchers until an end time (stored in Redis)."""


def _silences() -> Any:
    from redis.asyncio import Redis

    from alert_engine.delivery.silences import SilenceStore
    from alert_engine.settings import RedisSettings

    settings = RedisSettings()
    return SilenceStore(Redis.from_url(settings.url), settings.key_prefix)


def _duration(text: str) -> timedelta:
    try:
        return read_duration(text)
    except ValueError as exc:
        raise click.BadParameter(f"{exc}", param_hint="--for") from None


@silence.command("add")
@click.option(
    "-m",
    "--matcher",
    "matchers",
    multiple=True,
    required=True,
    help="`field OP value` as in the routing file (repeatable; all must match).",
)
@click.option("--for", "duration", default="2h", show_default=True, help="30m, 2h, 1h30m, 1d...")
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
        exit_with(f"no silence {silence_id}")
    click.echo(f"{silence_id} ended")
