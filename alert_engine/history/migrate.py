"""Schema migrations: versioned SQL files (`migrations/NNNN_name.sql`) applied in order by this
one small runner, each in its own transaction with its row in `schema_migrations`.

Plain SQL rather than Alembic: the history is a handful of tables written with hand-made SQL
(no ORM, so Alembic would bring SQLAlchemy only to run DDL), and a reviewer reads the exact DDL
PostgreSQL runs. Workers starting together take turns on an advisory lock; a migration file
changed after it was applied, or a database migrated by a newer release, stops the runner with
an error instead of guessing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg

from alert_engine.history import rollups

# pg_advisory_lock's key: "alert_engine history" folded into a bigint.
_LOCK_KEY = int.from_bytes(hashlib.blake2b(b"alert_engine history", digest_size=7).digest(), "big")
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    """The database's schema is not one this release can migrate."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations() -> list[Migration]:
    """The migrations shipped with the package, in version order."""
    found = []
    for entry in resources.files("alert_engine.history").joinpath("migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        found.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if len(set(versions)) != len(versions) or versions != list(range(1, len(versions) + 1)):
        raise MigrationError(f"migration versions must run 1, 2, 3... without gaps: {versions}")
    return found


# Tables derived from others, filled in the migration's transaction from what is there already
# (a database of an older release upgraded keeps its history). Only the last pending migration
# with a fill runs it: the code fills the newest shape, which an earlier migration lacks.
_FILLS: dict[int, Callable[[psycopg.AsyncConnection[Any]], Awaitable[None]]] = {
    2: rollups.rebuild,
    4: rollups.rebuild,
}

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


async def migrate(conn: psycopg.AsyncConnection[Any]) -> list[Migration]:
    """Apply the migrations `conn`'s database lacks; returns those applied. `conn` must be in
    autocommit mode (each migration is a transaction of its own)."""
    if not conn.autocommit:
        raise ValueError("migrate() needs an autocommit connection")
    known = migrations()
    await conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        await conn.execute(_CREATE_TABLE)
        cursor = await conn.execute("SELECT version, name, checksum FROM schema_migrations")
        applied = {int(row[0]): (str(row[1]), str(row[2])) for row in await cursor.fetchall()}
        newest = max((m.version for m in known), default=0)
        ahead = sorted(version for version in applied if version > newest)
        if ahead:
            raise MigrationError(
                f"the database has migrations {ahead} that this release does not know: "
                "it was migrated by a newer release"
            )
        pending_fills = [
            m.version for m in known if m.version not in applied and m.version in _FILLS
        ]
        last_fill = max(pending_fills, default=None)
        done = []
        for migration in known:
            if migration.version in applied:
                name, checksum = applied[migration.version]
                if checksum != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version} ({name}) was changed after it was "
                        "applied: add a new migration instead of editing an applied one"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql.encode())
                if migration.version == last_fill:
                    await _FILLS[migration.version](conn)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
            done.append(migration)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


async def migrate_url(url: str) -> list[Migration]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        return await migrate(conn)
