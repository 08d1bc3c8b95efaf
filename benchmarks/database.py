"""The server the benchmarks run on, and the throwaway databases they create on it.

The server is ``--database-url``, else ``ANALYTICS_BENCH_DATABASE_URL``, else
``DATABASE_URL``, else the local server engine (``scripts/server-engine``, cluster ``bench``),
installed and started on demand. Its DSN names the database the benchmarks connect to for
``CREATE DATABASE``; the role needs that privilege. Each benchmark works in a database of
its own, created empty and dropped when it is done.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from analytics_core.migrate import (
    Edition,
    Phase,
    apply,
    connect,
    maintain,
    mask_password,
    pause_jobs,
)
from analytics_core.migrate.edition import inspect_server
from analytics_core.schema import AGGREGATES, EVENTS_TABLE

__all__ = [
    "ENGINE_CLUSTER",
    "ENV_VARS",
    "BenchServer",
    "ServerUnavailable",
    "edition_of",
    "find_server",
    "migrate",
    "refresh_aggregates",
    "reset_events",
]

#: Consulted in this order when no ``--database-url`` is given.
ENV_VARS: Final = ("ANALYTICS_BENCH_DATABASE_URL", "DATABASE_URL")
#: The local engine's cluster for benchmarks: apart from the tests' cluster, so that their
#: databases and background workers do not share its buffers.
ENGINE_CLUSTER: Final = "bench"
_SERVER_ENGINE: Final = Path(__file__).resolve().parents[1] / "scripts" / "server-engine"
# A cold install downloads packages and compiles TimescaleDB on two cores.
_INSTALL_TIMEOUT_S: Final = 1800.0
_START_TIMEOUT_S: Final = 120.0


class ServerUnavailable(RuntimeError):
    """No DSN was given and the local server engine could not be started; says why."""


def find_server(explicit: str | None, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The DSN to benchmark against (see the module docstring), and where it came from.

    Blocks while the local engine installs (up to 30 min on a fresh machine) and starts (up
    to 2 min); raises ServerUnavailable when it cannot.
    """
    env = os.environ if environ is None else environ
    if explicit:
        return explicit, "--database-url"
    for name in ENV_VARS:
        if env.get(name):
            return env[name], f"${name}"
    if os.geteuid() == 0:
        _server_engine(["install"], _INSTALL_TIMEOUT_S)
    dsn = _server_engine(["start", "--name", ENGINE_CLUSTER], _START_TIMEOUT_S).strip()
    if not dsn.startswith("postgresql://"):
        raise ServerUnavailable(f"scripts/server-engine start printed {dsn!r}, not a DSN")
    return dsn, f"local server engine (scripts/server-engine, cluster {ENGINE_CLUSTER!r})"


def _server_engine(arguments: list[str], timeout_s: float) -> str:
    command = [str(_SERVER_ENGINE), *arguments]
    try:
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ServerUnavailable(
            f"`{' '.join(command)}` took over {timeout_s:.0f} s; run it by hand to see where "
            f"it stops, or set {ENV_VARS[0]} to a TimescaleDB DSN"
        ) from None
    except OSError as error:
        raise ServerUnavailable(
            f"cannot run {_SERVER_ENGINE}: {error}; set {ENV_VARS[0]} to a TimescaleDB DSN"
        ) from None
    if done.returncode != 0:
        raise ServerUnavailable(
            f"`{' '.join(command)}` failed (exit {done.returncode}): {done.stderr.strip()}\n"
            f"Run it as root, or set {ENV_VARS[0]} to a TimescaleDB DSN."
        )
    return done.stdout


def _with_database(dsn: str, name: str) -> str:
    """``dsn`` pointing at database ``name``; URLs stay URLs (the migrate CLI needs one)."""
    parts = urlsplit(dsn)
    if parts.scheme in ("postgresql", "postgres"):
        return urlunsplit(parts._replace(path="/" + quote(name, safe="")))
    return make_conninfo(dsn, dbname=name)


class BenchServer:
    """Creates and drops the benchmarks' databases, through one autocommit connection."""

    def __init__(self, dsn: str, prefix: str) -> None:
        self.dsn = dsn
        self.prefix = prefix
        self._admin: psycopg.Connection[Any] | None = None

    def __enter__(self) -> BenchServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def masked_dsn(self) -> str:
        return mask_password(self.dsn)

    def admin(self) -> psycopg.Connection[Any]:
        """The connection to the DSN's own database, opened on first use."""
        if self._admin is None or self._admin.closed or self._admin.broken:
            self._admin = psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)
        return self._admin

    def create(self, purpose: str) -> str:
        """A new, empty database ``<prefix>_<purpose>`` (dropped first if it exists); its DSN."""
        name = f"{self.prefix}_{purpose}"
        identifier = sql.Identifier(name)
        admin = self.admin()
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(identifier))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(identifier))
        return _with_database(self.dsn, name)

    def drop(self, purpose: str) -> None:
        """Drop ``<prefix>_<purpose>``, ending its sessions."""
        name = sql.Identifier(f"{self.prefix}_{purpose}")
        self.admin().execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))

    @contextmanager
    def database(self, purpose: str, *, keep: bool = False) -> Iterator[str]:
        """A fresh database for the block, dropped afterwards unless ``keep``."""
        url = self.create(purpose)
        try:
            yield url
        finally:
            if not keep:
                self.drop(purpose)

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None


def migrate(url: str) -> None:
    """Apply every migration (pre, then post) to the database at ``url``, and pause its
    policy jobs on a server with a scheduler: the benchmarks load old events, which a
    retention job running concurrently would drop, and they measure our code, not it."""
    apply(url, (Phase.PRE, Phase.POST))
    with connect(url) as conn:
        if edition_of(conn) is Edition.COMMUNITY:
            pause_jobs(conn)


def edition_of(conn: psycopg.Connection[Any]) -> Edition | None:
    return inspect_server(conn).edition


def refresh_aggregates(url: str) -> None:
    """Bring every aggregate up to date with the events table, whatever the edition.

    Apache edition: one round of ``maintain`` (it refreshes the materialized views).
    Community edition: a full refresh of each continuous aggregate, one at a time; the
    policies behind ``maintain`` only refresh the last few days. Raises RuntimeError when a
    refresh failed.
    """
    with connect(url) as conn:
        if edition_of(conn) is Edition.COMMUNITY:
            for aggregate in AGGREGATES:
                conn.execute("CALL refresh_continuous_aggregate(%s, NULL, NULL)", (aggregate.name,))
            return
        result = maintain(conn)
        failed = [f"{task.name}: {task.detail}" for task in result.tasks if not task.ok]
        if failed:
            raise RuntimeError("maintain failed: " + "; ".join(failed))


def reset_events(conn: psycopg.Connection[Any]) -> bool:
    """Empty the events table and write every dirty page out (autocommit ``conn``), so the
    next measurement starts from the same state and pays for none of the last one's I/O.

    Returns False when the role may not run CHECKPOINT (it needs superuser or, from
    PostgreSQL 15, ``pg_checkpoint``): the table is emptied all the same.
    """
    conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(EVENTS_TABLE)))
    try:
        conn.execute("CHECKPOINT")
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True
