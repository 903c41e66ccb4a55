"""`alert-engine members`: the members file of the built-in sign-in."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from alert_engine.cli.output import EXIT_USAGE, exit_with

MIN_PASSWORD_LENGTH = 12


@click.group()
def members() -> None:
    """The members who may sign in to the worker's pages (ALERT_ENGINE_SIGNIN_MEMBERS_FILE)."""


@members.command("hash")
@click.option(
    "--stdin",
    "from_stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of asking.",
)
def hash_command(from_stdin: bool) -> None:
    """Print the argon2id hash of a password, for a member's `password_hash`."""
    from alert_engine.signin.passwords import hash_password

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise click.UsageError(f"use a password of at least {MIN_PASSWORD_LENGTH} characters")
    click.echo(hash_password(password))


@members.command("check")
@click.argument("file", type=click.Path(path_type=Path))
def check_command(file: Path) -> None:
    """Check a members file as the worker reads it at start."""
    from alert_engine.signin.members import MembersError, load_members

    try:
        found = load_members(file)
    except MembersError as exc:
        exit_with(str(exc), EXIT_USAGE)
    without = sorted(m.name for m in found.values() if m.password_hash is None)
    click.echo(
        f"{file}: {len(found)} member(s)"
        + (f"; without a password (proxy sign-in only): {', '.join(without)}" if without else "")
    )
