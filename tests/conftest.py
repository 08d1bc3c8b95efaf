"""Fixtures that route tests to real database engines.

Engines are found in this order, once per test session:
1. `ANALYTICS_TEST_DATABASE_URL`: one full TimescaleDB (Community edition) for everything.
2. Docker, if `docker info` answers within 5 s: a `timescale/timescaledb:latest-pg17`
   container (testcontainers) for everything. If it fails to start: a warning, then step 3.
3. Local engines: PostgreSQL 15 + TimescaleDB Apache edition from `scripts/server-engine`
   (needs root) for server tests, and PGlite (needs Node.js) for Community features.
A fixture whose engine cannot exist here (no root, no Node.js) skips its tests and says why; an
engine that should work but fails (a broken install, a crashed process) errors them instead.

Fixtures:
- `server_url` (session): DSN of a multi-connection server, any edition.
- `server_admin_url` (session): DSN of that server's `postgres` database.
- `database_url` (function): DSN of a fresh, empty database, dropped after the test.
- `events_url` (function): the same with the pre-deploy schema applied (the client's table).
- `password_url` (function): `database_url` as a throwaway role that has a password.
- `community_session` (function): a `SqlSession` on a fresh database where the timescaledb
  extension (Community edition) is already created: psycopg on a full TimescaleDB, else PGlite.
- `pglite_session` (function): always PGlite (needs Node.js), on a fresh database.
- `no_preload_server_url` (session): DSN of a local cluster without timescaledb preloaded;
  skipped when the engines come from the environment or Docker.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from analytics_core.migrate import Phase, apply
from devtools import pglite
from devtools import server_engine as server
from devtools.pglite import PGliteSession
from devtools.psycopg_session import PsycopgSession
from devtools.sql_session import SqlSession

DATABASE_URL_ENV = "ANALYTICS_TEST_DATABASE_URL"
DOCKER_IMAGE = "timescale/timescaledb:latest-pg17"
DOCKER_PROBE_TIMEOUT_S = 5.0
NO_PRELOAD_CLUSTER = "no-preload"
_HOW_TO_GET_AN_ENGINE = (
    f"set {DATABASE_URL_ENV} to a TimescaleDB DSN, make Docker available, "
    "or run the tests as root (local server) with Node.js on PATH (PGlite)"
)


@dataclass(frozen=True)
class FullTimescaleDB:
    """A server with every TimescaleDB feature, from the environment or Docker."""

    url: str
    source: str


def with_database(dsn: str, dbname: str) -> str:
    """`dsn` pointing at database `dbname`; URL-form DSNs stay URLs (and keep their password)."""
    parts = urlsplit(dsn)
    if parts.scheme in ("postgresql", "postgres"):
        return urlunsplit(parts._replace(path="/" + quote(dbname, safe="")))
    return make_conninfo(dsn, dbname=dbname)


def _docker_reachable() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        probe = subprocess.run(
            ["docker", "info"],
            capture_output=True,
            timeout=DOCKER_PROBE_TIMEOUT_S,
            check=False,
        )
    except (subprocess.TimeoutExpired, OSError):
        return False
    return probe.returncode == 0


def _start_container() -> Any:
    # Imported only when Docker answers: testcontainers pulls in the Docker SDK.
    try:
        from testcontainers.community.postgres import PostgresContainer  # noqa: PLC0415
    except ImportError:  # testcontainers before the "community" namespace
        from testcontainers.postgres import PostgresContainer  # noqa: PLC0415

    container = PostgresContainer(DOCKER_IMAGE, driver=None)
    # No outgoing connections from test databases.
    container.with_env("TIMESCALEDB_TELEMETRY", "off")
    container.start()
    return container


@pytest.fixture(scope="session")
def full_timescaledb() -> Iterator[FullTimescaleDB | None]:
    """The full TimescaleDB from steps 1-2 of the discovery, or None to use local engines."""
    env_url = os.environ.get(DATABASE_URL_ENV)
    if env_url:
        yield FullTimescaleDB(url=env_url, source=DATABASE_URL_ENV)
        return
    if not _docker_reachable():
        yield None
        return
    try:
        container = _start_container()
    except Exception as exc:
        warnings.warn(
            f"Docker answers but {DOCKER_IMAGE} did not start ({exc}); using local engines",
            stacklevel=1,
        )
        yield None
        return
    try:
        yield FullTimescaleDB(url=container.get_connection_url(), source="Docker")
    finally:
        container.stop()


def _local_server(name: str, *, preload: bool) -> str:
    reason = server.unavailable_reason()
    if reason is not None:
        pytest.skip(f"no database server: {reason}; {_HOW_TO_GET_AN_ENGINE}")
    try:
        return server.ensure_server(name, preload=preload)
    except server.ServerEngineError as exc:
        pytest.fail(f"the local server engine failed: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def server_url(full_timescaledb: FullTimescaleDB | None) -> str:
    """DSN of a multi-connection server with TimescaleDB available (any edition)."""
    if full_timescaledb is not None:
        return full_timescaledb.url
    return _local_server("main", preload=True)


@pytest.fixture(scope="session")
def server_admin_url(server_url: str) -> str:
    """DSN of the server's `postgres` database, for CREATE/DROP DATABASE and the like."""
    return with_database(server_url, "postgres")


class _AdminConnection:
    """One autocommit connection for the session's CREATE/DROP DATABASE, reopened if broken."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._connection: psycopg.Connection[Any] | None = None

    def execute(self, statement: sql.Composed) -> None:
        if self._connection is None or self._connection.closed or self._connection.broken:
            self._connection = psycopg.connect(self._url, autocommit=True, connect_timeout=10)
        self._connection.execute(statement)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()


@pytest.fixture(scope="session")
def _admin_connection(server_admin_url: str) -> Iterator[_AdminConnection]:
    admin = _AdminConnection(server_admin_url)
    yield admin
    admin.close()


@pytest.fixture
def database_url(server_url: str, _admin_connection: _AdminConnection) -> Iterator[str]:
    """DSN of a fresh, empty database on the server; dropped (sessions and all) afterwards."""
    name = f"analytics_test_{secrets.token_hex(6)}"
    _admin_connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(server_url, name)
    finally:
        _admin_connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def password_url(database_url: str, _admin_connection: _AdminConnection) -> Iterator[str]:
    """`database_url` as a role of its own with a password, for tests of password masking.

    Made here, because the server under test may be reached without a password (a trusted
    local connection); dropped afterwards.
    """
    role = f"analytics_pw_{secrets.token_hex(4)}"
    password = f"pw-{secrets.token_hex(8)}"
    _admin_connection.execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(password)
        )
    )
    parts = urlsplit(database_url)
    host = parts.netloc.rpartition("@")[2]
    try:
        yield urlunsplit(parts._replace(netloc=f"{role}:{password}@{host}"))
    finally:
        _admin_connection.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def events_url(database_url: str) -> str:
    """A fresh database with the pre-deploy schema: the table the client writes to."""
    apply(database_url, (Phase.PRE,))
    return database_url


@pytest.fixture(scope="session")
def _pglite_engine() -> Iterator[PGliteSession]:
    reason = pglite.unavailable_reason()
    if reason is not None:
        pytest.skip(f"no PGlite engine: {reason}; {_HOW_TO_GET_AN_ENGINE}")
    engine = PGliteSession()
    try:
        engine.start()
    except pglite.PGliteEngineError as exc:
        pytest.fail(f"the PGlite engine failed to start: {exc}", pytrace=False)
    yield engine
    engine.close()


@pytest.fixture
def pglite_session(_pglite_engine: PGliteSession) -> PGliteSession:
    """PGlite on a fresh database with timescaledb created, whatever engines were found.

    One engine serves the whole test session; a test that follows one which used it gets a
    reset (a fresh database in about 0.5 s, where starting an engine takes about 2 s).
    """
    if _pglite_engine.used or not _pglite_engine.running:
        _pglite_engine.reset()
    return _pglite_engine


@pytest.fixture
def community_session(
    request: pytest.FixtureRequest, full_timescaledb: FullTimescaleDB | None
) -> Iterator[SqlSession]:
    """A `SqlSession` on a fresh database with timescaledb (Community edition) created.

    On a full TimescaleDB: a new database per test, through psycopg. Otherwise the
    `pglite_session` of this test.
    """
    if full_timescaledb is None:
        session: PGliteSession = request.getfixturevalue("pglite_session")
        yield session
        return

    database = request.getfixturevalue("database_url")
    with PsycopgSession.connect(database) as connected:
        connected.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        (row,) = connected.fetch("SELECT current_setting('timescaledb.license') AS license")
        if row["license"] != "timescale":
            pytest.fail(
                f"{full_timescaledb.source} gives TimescaleDB with license {row['license']!r}; "
                "Community features need 'timescale'. Point it at a Community-edition server, "
                "or deselect these tests with -m 'not community'.",
                pytrace=False,
            )
        yield connected


@pytest.fixture(scope="session")
def no_preload_server_url(full_timescaledb: FullTimescaleDB | None) -> str:
    """DSN of a local cluster started without timescaledb in shared_preload_libraries."""
    if full_timescaledb is not None:
        pytest.skip(
            f"needs the local server engine; the engines come from {full_timescaledb.source}"
        )
    return _local_server(NO_PRELOAD_CLUSTER, preload=False)
