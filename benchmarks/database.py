"""The server the benchmarks run on, and what they do to its databases besides measuring.

The server is ``--database-url``, else ``ANALYTICS_BENCH_DATABASE_URL``, else
``DATABASE_URL``, else the local server engine (``scripts/server-engine``, cluster ``bench``),
installed and started on demand. Its DSN names the database the benchmarks connect to for
``CREATE DATABASE``; the role needs that privilege. Each benchmark works in a database of
its own (``devtools.databases.ThrowawayDatabases``), created empty and dropped when it is done.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final, TypeAlias

import psycopg
from psycopg import sql

from analytics_core.migrate import Edition, connect, maintain
from analytics_core.migrate.edition import inspect_server
from analytics_core.schema import EVENTS_TABLE
from devtools import server_engine
from devtools.databases import APP_DATABASE_URL_ENV, ThrowawayDatabases
from devtools.seeding import refresh_continuous_aggregates

__all__ = [
    "ENGINE_CLUSTER",
    "ENV_VARS",
    "BenchServer",
    "edition_of",
    "find_server",
    "refresh_aggregates",
    "reset_events",
]

#: Consulted in this order when no ``--database-url`` is given.
ENV_VARS: Final = ("ANALYTICS_BENCH_DATABASE_URL", APP_DATABASE_URL_ENV)
#: The local engine's cluster for benchmarks: apart from the tests' cluster, so that their
#: databases and background workers do not share its buffers.
ENGINE_CLUSTER: Final = "bench"
#: What makes the benchmarks' databases, ``<prefix>_<benchmark>`` on the server.
BenchServer: TypeAlias = ThrowawayDatabases


def find_server(explicit: str | None, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The DSN to benchmark against (see the module docstring), and where it came from.

    Blocks while the local engine installs (up to 30 min on a fresh machine) and starts (up
    to 2 min); raises ``devtools.server_engine.ServerEngineError`` when it cannot.
    """
    env = os.environ if environ is None else environ
    if explicit:
        return explicit, "--database-url"
    for name in ENV_VARS:
        if env.get(name):
            return env[name], f"${name}"
    dsn = server_engine.ensure_server(ENGINE_CLUSTER)
    return dsn, f"local server engine (scripts/server-engine, cluster {ENGINE_CLUSTER!r})"


def edition_of(conn: psycopg.Connection[Any]) -> Edition | None:
    return inspect_server(conn).edition


def refresh_aggregates(url: str) -> None:
    """Bring every aggregate up to date with the events table, whatever the edition.

    Apache edition: one round of ``maintain`` (its first refresh of an aggregate takes in
    every event; later ones, the last days and late events).
    Community edition: a full refresh of each continuous aggregate, one at a time; the
    policies behind ``maintain`` only refresh the last few days. Raises RuntimeError when a
    refresh failed.
    """
    with connect(url) as conn:
        if edition_of(conn) is Edition.COMMUNITY:
            refresh_continuous_aggregates(conn)
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
