"""A throwaway PostgreSQL cluster on a free loopback port, from Debian's `postgresql` binaries.

`initdb` makes the cluster in ``<workdir>/postgres`` (trust authentication for the `postgres`
role on 127.0.0.1 only, no Unix socket), and the postmaster runs in the foreground under the same
supervision as Redis (its own process group, killed with the process that started it, stopped at
exit). `pg_ctl start` would daemonize it out of that supervision: a test run that crashed would
leave clusters behind. Stopping is a *fast* shutdown (SIGINT to the postmaster): the default
SIGTERM is a *smart* one that waits for every client to disconnect.

PostgreSQL refuses to run as root: as root, the cluster belongs to and runs as the `postgres`
system user that Debian's package creates. When that user cannot reach the workdir (a private
directory of root's on the way, as pytest's temporary directories are), the data goes to a
temporary directory of its own instead, removed when the server object goes.

Measured on the 2-core development machine: a first start (initdb included) about 0.9 s until a
query answers, a restart after kill() about 0.15 s.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from typing import TypedDict
from urllib.parse import urlsplit, urlunsplit

import psycopg
import psycopg.conninfo
import psycopg.sql

from devstack.errors import StackError
from devstack.ports import HOST, free_ports
from devstack.supervisor import Server

# The non-root user the cluster runs as when we are root (created by Debian's package).
SYSTEM_USER = "postgres"
SUPERUSER = "postgres"
_INITDB_TIMEOUT_S = 120.0


def postgres_bin_dir() -> Path:
    """Where Debian keeps `initdb` and `postgres` (not on PATH: /usr/lib/postgresql/NN/bin), the
    newest version first; or the directory of an `initdb` on PATH."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: (
            int(Path(path).parent.parent.name) if Path(path).parent.parent.name.isdigit() else 0
        ),
        reverse=True,
    )
    if found:
        return Path(found[0]).parent
    on_path = shutil.which("initdb")
    if on_path is not None:
        return Path(on_path).resolve().parent
    raise StackError(
        "PostgreSQL's `initdb` was not found (in /usr/lib/postgresql/*/bin or on PATH); "
        "run `make setup` (it apt-get installs postgresql)"
    )


def _traversable_by(path: Path, user: pwd.struct_passwd) -> bool:
    """Whether `user` may pass through every directory above `path`."""
    for directory in path.resolve().parents:
        mode = directory.stat()
        if mode.st_uid == user.pw_uid:
            allowed = mode.st_mode & stat.S_IXUSR
        elif mode.st_gid == user.pw_gid:
            allowed = mode.st_mode & stat.S_IXGRP
        else:
            allowed = mode.st_mode & stat.S_IXOTH
        if not allowed:
            return False
    return True


def _run_as() -> pwd.struct_passwd | None:
    """The user to run the cluster as: None when we are not root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise StackError(
            f"running as root, and PostgreSQL refuses root: the `{SYSTEM_USER}` user that "
            "Debian's postgresql package creates is missing (run `make setup`)"
        ) from None


class PostgresServer(Server):
    """A PostgreSQL cluster in ``<workdir>/postgres``, logging to ``postgres.log``.

    The data survives stop() and kill(), and a later start() serves it on the same port (fault
    tests kill the server and start it again under the same address).
    """

    name = "PostgreSQL server"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, "postgres.log")
        self.data_dir = self.workdir / "postgres"
        self.bin_dir: Path | None = None

    @property
    def url(self) -> str:
        """The `postgres` database: tests and tools create their own databases in it."""
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/postgres"

    def _answers(self, timeout: float) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=max(1, int(timeout))) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            # Includes "the database system is starting up".
            return False

    def _initdb(self, user: pwd.struct_passwd | None, deadline: float, offset: int) -> None:
        assert self.bin_dir is not None
        self.workdir.mkdir(parents=True, exist_ok=True)
        if user is not None and not _traversable_by(self.workdir, user):
            self.data_dir = Path(tempfile.mkdtemp(prefix="alert-engine-pg-")) / "postgres"
            weakref.finalize(self, shutil.rmtree, self.data_dir.parent, True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if user is not None:
            # The directory above may be a private temp dir of root's: the cluster's user must
            # reach its own directory in it (traverse only, nothing listed or read).
            parent = self.data_dir.parent
            parent.chmod(parent.stat().st_mode | 0o111)
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
        self.data_dir.chmod(0o700)
        cmd = [
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            # A throwaway cluster: no fsync of the new files (a kill of the server still loses
            # nothing committed; only an OS crash could).
            "--no-sync",
        ]
        self._run_step("initdb", cmd, deadline, offset, cwd=self.data_dir, **_user_args(user))

    def start(self, timeout: float = 60.0) -> None:
        """initdb on first start, then the postmaster; waits until it answers a query."""
        if self.is_running():
            return
        started = time.monotonic()
        deadline = started + min(timeout, _INITDB_TIMEOUT_S)
        self.bin_dir = self.bin_dir or postgres_bin_dir()
        user = _run_as()
        offset = self._log_size()
        if not (self.data_dir / "PG_VERSION").is_file():
            self._initdb(user, deadline, offset)
        if self._port is None:
            (self._port,) = free_ports(1)
        self._spawn(
            [
                str(self.bin_dir / "postgres"),
                "-D",
                str(self.data_dir),
                "-p",
                str(self._port),
                "-c",
                f"listen_addresses={HOST}",
                "-c",
                "unix_socket_directories=",
                # Written to the OS at once, not forced to disk: a killed server loses nothing
                # committed, and tests do not wait on the disk.
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=64MB",
                "-c",
                "log_min_messages=warning",
            ],
            **_user_args(user),
        )
        self._wait_ready(self._answers, started + timeout, offset, started, poll_s=0.05)

    def stop(self, timeout: float = 15.0) -> None:
        """A fast shutdown (clients disconnected, transactions rolled back), then the rest."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        super().stop(timeout)


class _RunAs(TypedDict):
    """Popen's arguments for running a child as `user` (all None: as we are)."""

    user: int | None
    group: int | None
    extra_groups: list[int] | None


def _user_args(user: pwd.struct_passwd | None) -> _RunAs:
    if user is None:
        return {"user": None, "group": None, "extra_groups": None}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def create_database(server_url: str, name: str) -> str:
    """A new empty database on the server of `server_url` (a role allowed to create databases);
    its URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    return database_url(server_url, name)


def database_url(server_url: str, name: str) -> str:
    """`server_url` (a URL or a `key=value` connection string) naming database `name` instead."""
    parts = urlsplit(server_url)
    if parts.scheme in ("postgres", "postgresql"):
        return urlunsplit(parts._replace(path=f"/{name}"))
    return psycopg.conninfo.make_conninfo(server_url, dbname=name)
