"""The pytest plugin that routes tests to real database engines, and seeds databases for them.

Loaded by tests/conftest.py (``pytest_plugins``); tests/conftest.py's docstring lists the
fixtures and the order in which engines are found. Besides the fixtures, two factories make
module-level fixtures of a seeded database and a connection to it::

    from devtools.pytest_plugin import autocommit_connection_fixture, seeded_database_fixture

    ROWS = [EventRow(at, "api_request", {...}, user_id), ...]
    url = seeded_database_fixture(ROWS, refresh=True)  # module scope: migrated, loaded once
    conn = autocommit_connection_fixture("url")        # a new connection for each test
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from analytics_core.connection import with_database
from analytics_core.migrate import Phase, apply
from devtools import pglite, seeding, server_engine, topologies
from devtools.databases import ThrowawayDatabases
from devtools.pglite import PGliteSession
from devtools.psycopg_session import PsycopgSession
from devtools.seeding import EventRow
from devtools.sql_session import SqlSession

__all__ = [
    "DATABASE_URL_ENV",
    "FullTimescaleDB",
    "autocommit_connection_fixture",
    "seeded_database_fixture",
]

DATABASE_URL_ENV = "ANALYTICS_TEST_DATABASE_URL"
DOCKER_IMAGE = "timescale/timescaledb:latest-pg17"
DOCKER_PROBE_TIMEOUT_S = 5.0
NO_PRELOAD_CLUSTER = "no-preload"
#: The local cluster behind the topology fixtures (PgBouncer, standby): one of their own, so
#: that the standby copies little and the poolers see only the topology tests' sessions.
TOPOLOGY_CLUSTER = "topology"
#: Name prefix of every database the fixtures create.
TEST_DATABASE_PREFIX = "analytics_test"
_HOW_TO_GET_AN_ENGINE = (
    f"set {DATABASE_URL_ENV} to a TimescaleDB DSN, make Docker available, "
    "or run the tests as root (local server) with Node.js on PATH (PGlite)"
)


@dataclass(frozen=True)
class FullTimescaleDB:
    """A server with every TimescaleDB feature, from the environment or Docker."""

    url: str
    source: str


# --- engine discovery --------------------------------------------------------------------------


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
    reason = server_engine.unavailable_reason()
    if reason is not None:
        pytest.skip(f"no database server: {reason}; {_HOW_TO_GET_AN_ENGINE}")
    try:
        return server_engine.ensure_server(name, preload=preload)
    except server_engine.ServerEngineError as exc:
        pytest.fail(f"the local server engine failed: {exc}", pytrace=False)


# --- server fixtures ---------------------------------------------------------------------------


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


@pytest.fixture(scope="session")
def throwaway_databases(server_admin_url: str) -> Iterator[ThrowawayDatabases]:
    """Creates and drops the session's databases (`analytics_test_*`) on the server."""
    with ThrowawayDatabases(server_admin_url, TEST_DATABASE_PREFIX) as databases:
        yield databases


@pytest.fixture
def database_url(throwaway_databases: ThrowawayDatabases) -> Iterator[str]:
    """DSN of a fresh, empty database on the server; dropped (sessions and all) afterwards."""
    with throwaway_databases.database() as url:
        yield url


@pytest.fixture
def password_url(database_url: str, throwaway_databases: ThrowawayDatabases) -> Iterator[str]:
    """`database_url` as a role of its own with a password, for tests of password masking.

    Made here, because the server under test may be reached without a password (a trusted
    local connection); dropped afterwards.
    """
    role = f"analytics_pw_{secrets.token_hex(4)}"
    password = f"pw-{secrets.token_hex(8)}"
    throwaway_databases.admin().execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(password)
        )
    )
    parts = urlsplit(database_url)
    host = parts.netloc.rpartition("@")[2]
    try:
        yield urlunsplit(parts._replace(netloc=f"{role}:{password}@{host}"))
    finally:
        throwaway_databases.admin().execute(
            sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role))
        )


@pytest.fixture
def events_url(database_url: str) -> str:
    """A fresh database with the pre-deploy schema: the table the client writes to."""
    apply(database_url, (Phase.PRE,))
    return database_url


@pytest.fixture(scope="session")
def no_preload_server_url(full_timescaledb: FullTimescaleDB | None) -> str:
    """DSN of a local cluster started without timescaledb in shared_preload_libraries."""
    if full_timescaledb is not None:
        pytest.skip(
            f"needs the local server engine; the engines come from {full_timescaledb.source}"
        )
    return _local_server(NO_PRELOAD_CLUSTER, preload=False)


# --- topology fixtures: PgBouncer and a hot standby in front of a local cluster -----------------
# Session-scoped engines, left running at the end like the clusters (the next session starts
# them in well under a second); each test gets a fresh database on the primary, reachable
# through each of them under the same name.


def _topology_engine(start: Callable[[], str]) -> str:
    try:
        return start()
    except server_engine.ServerEngineError as exc:
        pytest.fail(f"the local topology engine failed: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def topology_primary_url(full_timescaledb: FullTimescaleDB | None) -> str:
    """DSN (``postgres`` database) of the local cluster the poolers and the standby serve."""
    if full_timescaledb is not None:
        pytest.skip(
            "PgBouncer and standby tests need the local server engine (scripts/server-engine); "
            f"the engines come from {full_timescaledb.source}"
        )
    return _local_server(TOPOLOGY_CLUSTER, preload=True)


@pytest.fixture(scope="session")
def _topology_databases(topology_primary_url: str) -> Iterator[ThrowawayDatabases]:
    with ThrowawayDatabases(topology_primary_url, TEST_DATABASE_PREFIX) as databases:
        yield databases


@pytest.fixture
def topology_database_url(_topology_databases: ThrowawayDatabases) -> Iterator[str]:
    """DSN of a fresh database on the topology primary, direct; dropped after the test."""
    with _topology_databases.database() as url:
        yield url


@pytest.fixture(scope="session")
def _pgbouncer_transaction(topology_primary_url: str) -> str:
    return _topology_engine(
        lambda: topologies.ensure_pgbouncer(
            f"{TOPOLOGY_CLUSTER}-transaction", TOPOLOGY_CLUSTER, "transaction"
        )
    )


@pytest.fixture(scope="session")
def _pgbouncer_session(topology_primary_url: str) -> str:
    return _topology_engine(
        lambda: topologies.ensure_pgbouncer(
            f"{TOPOLOGY_CLUSTER}-session", TOPOLOGY_CLUSTER, "session"
        )
    )


@pytest.fixture(scope="session")
def _standby(topology_primary_url: str) -> str:
    return _topology_engine(
        lambda: topologies.ensure_standby(f"{TOPOLOGY_CLUSTER}-standby", TOPOLOGY_CLUSTER)
    )


def _same_database(dsn: str, database_url: str) -> str:
    return with_database(dsn, urlsplit(database_url).path.lstrip("/"))


@pytest.fixture
def pgbouncer_transaction_url(topology_database_url: str, _pgbouncer_transaction: str) -> str:
    """``topology_database_url``'s database through PgBouncer in transaction pool mode."""
    return _same_database(_pgbouncer_transaction, topology_database_url)


@pytest.fixture
def pgbouncer_session_url(topology_database_url: str, _pgbouncer_session: str) -> str:
    """``topology_database_url``'s database through PgBouncer in session pool mode."""
    return _same_database(_pgbouncer_session, topology_database_url)


@pytest.fixture
def standby_url(topology_database_url: str, _standby: str) -> str:
    """``topology_database_url``'s database on a streaming hot standby of its server, once
    the standby has replayed its creation. After writing on the primary, call
    ``devtools.topologies.wait_for_replay(topology_database_url, standby_url)``."""
    url = _same_database(_standby, topology_database_url)
    _topology_engine(lambda: _replayed(topology_database_url, url))
    return url


def _replayed(primary_url: str, standby_url: str) -> str:
    # The new database exists on the standby only once its creation is replayed.
    topologies.wait_for_replay(
        with_database(primary_url, "postgres"), with_database(standby_url, "postgres")
    )
    return standby_url


# --- Community-edition fixtures ----------------------------------------------------------------


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


# --- fixture factories for test modules --------------------------------------------------------


def seeded_database_fixture(
    rows: Iterable[EventRow], *, refresh: bool = False
) -> Callable[..., Iterator[str]]:
    """A module-scoped fixture: the DSN of a migrated database holding ``rows``.

    Bind it to a name in a test module (``url = seeded_database_fixture(ROWS)``); the
    fixture takes that name. The database is created and loaded once per module, with its
    scheduler held (``devtools.seeding.hold_the_scheduler``), and dropped after the module's
    last test. ``refresh=True`` brings the aggregates up to date after loading
    (``devtools.seeding.refresh``: the events must then be recent, under 90 days old).
    Needs a server: the module's tests skip or fail as ``server_url`` does.
    """
    loaded = tuple(rows)

    @pytest.fixture(scope="module")
    def seeded_database(throwaway_databases: ThrowawayDatabases) -> Iterator[str]:
        with seeding.migrated_database(throwaway_databases) as url:
            seeding.insert(url, loaded)
            if refresh:
                seeding.refresh(url)
            yield url

    return seeded_database


def autocommit_connection_fixture(
    url_fixture: str,
) -> Callable[..., Iterator[psycopg.Connection[Any]]]:
    """A fixture: a new autocommit connection to the database of fixture ``url_fixture``,
    for each test; closed afterwards. Bind it to a name, as ``seeded_database_fixture``."""

    @pytest.fixture
    def autocommit_connection(
        request: pytest.FixtureRequest,
    ) -> Iterator[psycopg.Connection[Any]]:
        url: str = request.getfixturevalue(url_fixture)
        with psycopg.connect(url, autocommit=True) as connection:
            yield connection

    return autocommit_connection
