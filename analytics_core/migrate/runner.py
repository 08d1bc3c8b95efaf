"""Apply the migrations of a phase, safely, from a deploy pipeline.

yoyo keeps the ledger (``_yoyo_migration``) and applies each migration in its own transaction
(or without one, where the file says ``-- transactional: false``). Around it we add what a
deploy needs:

* a PostgreSQL advisory lock, so concurrent deploys apply each migration exactly once; unlike
  yoyo's lock row it dies with the session, so a killed deploy never leaves the schema locked
  (:mod:`analytics_core.migrate.pooling`: refused through a transaction pooler);
* ``lock_timeout`` on the DDL connection, so a migration that would queue behind a long
  transaction fails fast instead of stalling every writer queued behind it (set in SQL on
  yoyo's connections: PgBouncer refuses it as a startup parameter);
* a checksum per applied file, so ``status`` can report a file edited after it was applied;
* preflight checks, edition-aware rendering and progress reporting.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from yoyo import read_migrations
from yoyo.backends.core.postgresql import PostgresqlPsycopgBackend
from yoyo.connections import parse_uri

from analytics_core import connection
from analytics_core.errors import ConnectionFailed
from analytics_core.migrate.adopt import (
    AdoptionPlan,
    AdoptionRefused,
    ForeignAggregates,
    Strategy,
    foreign_aggregates,
    inspect_events_table,
    interrupted_copy,
    plan_adoption,
    resume_copy,
    set_aside_aggregates,
)
from analytics_core.migrate.adopt import adopt as adopt_table
from analytics_core.migrate.drift import DriftKind, check_schema
from analytics_core.migrate.dsn import yoyo_url
from analytics_core.migrate.edition import (
    Edition,
    EditionChoice,
    ServerInfo,
    check_preflight,
    choose_edition,
    inspect_server,
    preflight_problems,
)
from analytics_core.migrate.errors import (
    DriftDetected,
    MigrateError,
    MigrationFailed,
    PendingPreDeploy,
    PreflightError,
)
from analytics_core.migrate.ledger import CHECKSUM_TABLE, Ledger, read_ledger
from analytics_core.migrate.pooling import (
    ADVISORY_LOCK_KEY,
    SessionPoolingRequired,
    deploy_lock,
    explain_startup_parameter,
)
from analytics_core.migrate.settings import (
    Setting,
    SettingChange,
    SettingValue,
    plan_settings,
    reconcile_settings,
    refuse_retention_drop,
)
from analytics_core.migrate.sources import MigrationFile, Phase, load_migrations, write_rendered
from analytics_core.schema import AGGREGATES

__all__ = [
    "DEFAULT_DDL_LOCK_TIMEOUT",
    "DEFAULT_LOCK_WAIT",
    "ApplyResult",
    "DryRun",
    "PlannedMigration",
    "Progress",
    "SessionPoolingRequired",
    "apply",
    "connect",
    "deploy_lock",
    "dry_run",
    "inspect_url",
    "plan",
]

#: How long a deploy waits for another deploy's migration lock before giving up.
DEFAULT_LOCK_WAIT = timedelta(minutes=5)
#: How long one DDL statement may wait for a table lock (held by ingestion or a long query).
DEFAULT_DDL_LOCK_TIMEOUT = timedelta(seconds=10)

#: The migration that creates the aggregates: before it, relations of their names are not ours.
AGGREGATES_MIGRATION = "post_0002_aggregates"

# The lock's key, under its old name (tests take the lock as another deploy would).
_ADVISORY_LOCK_KEY = ADVISORY_LOCK_KEY


@dataclass(frozen=True, slots=True)
class PlannedMigration:
    """A pending migration as it would run on a given edition."""

    #: The file's stem, e.g. ``post_0002_aggregates``; yoyo's ledger key.
    id: str
    phase: Phase
    #: False when the file says ``-- transactional: false``: each statement commits alone.
    transactional: bool
    #: The SQL as yoyo runs it, one statement each, rendered for the edition.
    statements: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "phase": self.phase,
            "transactional": self.transactional,
            "statements": list(self.statements),
        }


@dataclass(frozen=True, slots=True)
class DryRun:
    """What a deploy would apply, without applying it (``analytics-migrate dry-run``)."""

    #: The edition the SQL is rendered for, and whether it was read, chosen or assumed.
    edition: EditionChoice
    #: The pending migrations in the order they would apply.
    pending: tuple[PlannedMigration, ...]
    #: Why a deploy would refuse this server (empty without a database, or when it would not).
    preflight: tuple[str, ...] = ()
    #: An analytics_events the migrations did not create, and what ``--adopt`` would do.
    adoption: AdoptionPlan | None = None
    #: The settings a deploy with the same options would change.
    settings: tuple[SettingChange, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "edition": self.edition.edition,
            "edition_assumed": self.edition.assumed,
            "edition_reason": self.edition.reason,
            "pending": [migration.to_json() for migration in self.pending],
            "preflight": list(self.preflight),
            "adoption": None if self.adoption is None else self.adoption.to_json(),
            "settings": [change.to_json() for change in self.settings],
        }


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What :func:`apply` did."""

    #: Ids of the migrations applied by this call, in order; empty when up to date.
    applied: tuple[str, ...]
    #: The server as it is after the last phase (its edition known once ``pre`` ran).
    server: ServerInfo
    #: The settings this deploy changed (``post`` and ``all``).
    settings: tuple[SettingChange, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "applied": list(self.applied),
            "edition": self.server.edition,
            "settings": [change.to_json() for change in self.settings],
        }


#: Called with (migration id, steps done, step count) as each step starts and once at the end.
Progress = Callable[[str, int, int], None]


def connect(url: str, *, timeout: float = 10.0) -> psycopg.Connection[Any]:
    """Open an autocommit connection as ``analytics-migrate``; ConnectionFailed on failure.

    Reads (``status``, ``dry-run``) go through :func:`analytics_core.connection.
    read_transaction`: read-only, each statement and lock wait bounded, so a deploy gate
    never hangs behind a long transaction on the events table. A PgBouncer that refuses a
    startup parameter of the URL gets a ConnectionFailed that says what to change.
    """
    try:
        return connection.connect(url, application_name="analytics-migrate", timeout=timeout)
    except ConnectionFailed as error:
        advice = explain_startup_parameter(str(error))
        if advice is None:
            raise
        raise ConnectionFailed(f"cannot connect to the database: {advice}") from None


def plan(
    edition: Edition,
    phases: tuple[Phase, ...] = (Phase.PRE, Phase.POST),
    applied: frozenset[str] = frozenset(),
    migrations: dict[Phase, list[MigrationFile]] | None = None,
) -> list[PlannedMigration]:
    """The migrations of ``phases`` not in ``applied``, in order, rendered for ``edition``.

    Pure: no database. ``dry-run`` prints this; the tests on the Community engine run it.
    """
    files = migrations or load_migrations()
    planned = []
    for phase in phases:
        for migration in files[phase]:
            if migration.id in applied:
                continue
            transactional, statements = migration.statements(edition)
            planned.append(PlannedMigration(migration.id, phase, transactional, statements))
    return planned


def dry_run(
    url: str | None,
    edition: Edition | None = None,
    migrations: dict[Phase, list[MigrationFile]] | None = None,
    settings: Mapping[Setting, SettingValue] | None = None,
) -> DryRun:
    """The pending migrations of the database at ``url`` (or of an empty database when
    ``url`` is None), rendered for ``edition`` or else the database's own.

    ``settings``: what a deploy would request; the dry run says what they change.
    Read-only: works on a replica or with ``default_transaction_read_only=on``. Raises
    ConnectionFailed.
    """
    applied: frozenset[str] = frozenset()
    server = None
    adoption = None
    changes: list[SettingChange] = []
    files = migrations or load_migrations()
    if url is not None:
        with connect(url) as conn, connection.read_transaction(conn):
            server = inspect_server(conn)
            applied = frozenset(read_ledger(conn).applied)
            adoption = _adoption_pending(conn, applied, files[Phase.PRE])
            changes = plan_settings(conn, settings or {})
    choice = choose_edition(server, edition)
    return DryRun(
        choice,
        tuple(plan(choice.edition, applied=applied, migrations=files)),
        preflight_problems(server) if server is not None else (),
        adoption,
        tuple(changes),
    )


def _adoption_pending(
    conn: psycopg.Connection[Any], applied: frozenset[str], pre_files: list[MigrationFile]
) -> AdoptionPlan | None:
    """What a deploy would find to adopt first (read-only), or None."""
    unfinished = interrupted_copy(conn)
    if unfinished is not None or pre_files[0].id in applied:
        return unfinished
    table = inspect_events_table(conn)
    if table is None:
        return None
    adoption = plan_adoption(table)
    return None if adoption.strategy is Strategy.NONE else adoption


def apply(
    url: str,
    phases: tuple[Phase, ...],
    *,
    lock_wait: timedelta = DEFAULT_LOCK_WAIT,
    ddl_lock_timeout: timedelta = DEFAULT_DDL_LOCK_TIMEOUT,
    progress: Progress | None = None,
    migrations: dict[Phase, list[MigrationFile]] | None = None,
    allow_drift: bool = False,
    adopt: bool = False,
    settings: Mapping[Setting, SettingValue] | None = None,
    allow_retention_drop: bool = False,
    replace_aggregates: bool = False,
) -> ApplyResult:
    """Apply the pending migrations of ``phases`` (in the order given) and return their ids.

    An ``analytics_events`` that the migrations did not create is brought to our shape first
    when ``adopt`` is set, and refused (AdoptionRefused) otherwise: see
    :mod:`analytics_core.migrate.adopt`. Relations named like our aggregates that the
    migrations did not create are refused (ForeignAggregates) before anything is applied,
    or renamed aside, rows kept, with ``replace_aggregates``.

    With POST, the database is then made to follow the effective settings, ``settings``
    stored first (:mod:`analytics_core.migrate.settings`); RetentionDropRefused, before
    anything is applied, when they lower retention over data without
    ``allow_retention_drop``.

    Blocks while another deploy holds the migration lock, for at most ``lock_wait``.
    Raises PreflightError before changing anything when the server cannot run the schema,
    PendingPreDeploy when POST is asked for alone while PRE migrations are pending,
    DriftDetected (unless ``allow_drift``) when an applied file was edited or is missing or
    the schema differs from what the applied migrations build, LockTimeout,
    SessionPoolingRequired (through a transaction pooler, before applying anything),
    MigrationFailed (earlier migrations stay applied) or ConnectionFailed.
    """
    files = migrations or load_migrations()
    with connect(url) as conn:
        server = inspect_server(conn)
        check_preflight(server)
        with deploy_lock(conn, lock_wait):
            ledger = read_ledger(conn)
            if not allow_drift:
                _refuse_drift(conn, server, ledger, files)
            if any(m.id not in ledger.applied for phase in phases for m in files[phase]):
                _require_create_privilege(conn)
            if Phase.PRE not in phases and Phase.POST in phases:
                pending_pre = [m.id for m in files[Phase.PRE] if m.id not in ledger.applied]
                if pending_pre:
                    raise PendingPreDeploy(pending_pre)
            requested = dict(settings or {})
            if requested and Phase.POST not in phases:
                raise MigrateError("settings are reconciled by `post` (or `all`), not `pre`")
            refuse_retention_drop(plan_settings(conn, requested), allowed=allow_retention_drop)
            foreign = []
            if Phase.POST in phases and AGGREGATES_MIGRATION not in ledger.applied:
                foreign = foreign_aggregates(conn, [a.name for a in AGGREGATES])
                if foreign and not replace_aggregates:
                    raise ForeignAggregates(foreign)
            if Phase.PRE in phases:
                _adopt_existing_table(
                    conn,
                    server,
                    ledger,
                    files[Phase.PRE],
                    adopt=adopt,
                    ddl_lock_timeout=ddl_lock_timeout,
                    progress=progress,
                )
            applied: list[str] = []
            for phase in phases:
                # The licence can only be read once the extension exists in this database,
                # and `pre` is what creates it: read the edition again for every phase, on
                # a new session (the loader of a session opened before the extension existed
                # may not have loaded the licensed library).
                server = inspect_url(url)
                if phase is Phase.POST and foreign:
                    set_aside_aggregates(conn, foreign, milliseconds(ddl_lock_timeout))
                applied += _apply_phase(
                    url=url,
                    conn=conn,
                    files=files[phase],
                    edition=_edition_for(phase, files[phase], server),
                    ddl_lock_timeout=ddl_lock_timeout,
                    progress=progress,
                )
            server = inspect_url(url)
            changes: list[SettingChange] = []
            if Phase.POST in phases and server.edition is not None:
                # A session of its own: one opened before the extension existed may lack
                # the licensed library the policy functions live in.
                with connect(url) as fresh:
                    changes = reconcile_settings(
                        fresh, server.edition, requested, allow_retention_drop=allow_retention_drop
                    )
    return ApplyResult(tuple(applied), server, tuple(changes))


def _adopt_existing_table(
    conn: psycopg.Connection[Any],
    server: ServerInfo,
    ledger: Ledger,
    pre_files: list[MigrationFile],
    *,
    adopt: bool,
    ddl_lock_timeout: timedelta,
    progress: Progress | None,
) -> None:
    """Before ``pre`` creates the events table: take over one that exists without it."""
    unfinished = interrupted_copy(conn)
    if unfinished is not None:
        if not adopt:
            raise AdoptionRefused(unfinished, asked=False)
        resume_copy(conn, milliseconds(ddl_lock_timeout), progress)
        return
    creating = pre_files[0]
    if creating.id in ledger.applied:
        return
    table = inspect_events_table(conn)
    if table is None:
        return
    adoption = plan_adoption(table)
    if adoption.strategy is Strategy.NONE:
        return
    if not adopt or not adoption.adoptable:
        raise AdoptionRefused(adoption, asked=adopt)
    _, statements = creating.statements(server.edition or Edition.APACHE)
    adopt_table(
        conn,
        adoption,
        table=table,
        create_table_sql=statements,
        lock_timeout=milliseconds(ddl_lock_timeout),
        progress=progress,
    )


def _refuse_drift(
    conn: psycopg.Connection[Any],
    server: ServerInfo,
    ledger: Ledger,
    files: dict[Phase, list[MigrationFile]],
) -> None:
    every_file = [m for phase in Phase for m in files[phase]]
    problems = [f"{mid} was edited after it was applied" for mid in ledger.edited(every_file)]
    problems += [f"{mid} is applied but has no file here" for mid in ledger.unknown(every_file)]
    if server.edition is not None:
        done = {phase: all(m.id in ledger.applied for m in files[phase]) for phase in Phase}
        # Roles and grants are reported by status, but do not stop a deploy: where the
        # migrating role may not create roles, every later deploy would be refused.
        problems += (
            str(item)
            for item in check_schema(
                conn, server.edition, pre_applied=done[Phase.PRE], post_applied=done[Phase.POST]
            )
            if item.kind not in (DriftKind.ROLE, DriftKind.PRIVILEGES)
        )
    if problems:
        raise DriftDetected(problems)


def _require_create_privilege(conn: psycopg.Connection[Any]) -> None:
    # Without it yoyo fails later with a misleading 'relation "yoyo_lock" does not exist'.
    row = conn.execute(
        "SELECT current_user, current_schema(),"
        " coalesce(has_schema_privilege(current_schema(), 'CREATE'), false)"
    ).fetchone()
    assert row is not None
    user, schema, allowed = row
    if schema is None:
        raise PreflightError(
            f"no schema to create the tables in: the search_path of role {user} names none "
            "that exists. Set it (ALTER ROLE ... SET search_path = public) or create the schema."
        )
    if not allowed:
        raise PreflightError(
            f"role {user} may not create tables in schema {schema}, which migrating needs "
            f"(yoyo's ledger included). Run analytics-migrate as the schema's owner, or "
            f"GRANT CREATE ON SCHEMA {schema} TO {user}."
        )


def inspect_url(url: str) -> ServerInfo:
    """:func:`inspect_server` on a session of its own, opened and closed here."""
    with connect(url) as conn, connection.read_transaction(conn):
        return inspect_server(conn)


def _edition_for(phase: Phase, files: list[MigrationFile], server: ServerInfo) -> Edition:
    """The edition to render ``files`` for; an unknown one only where it makes no difference."""
    if server.edition is not None:
        return server.edition
    specific = [m.id for m in files if not m.edition_neutral]
    if specific:
        raise MigrateError(
            f"cannot tell the TimescaleDB edition before the {phase} migrations "
            f"{', '.join(specific)}: the timescaledb extension does not exist in this database "
            "yet. Run `analytics-migrate pre` first, or create the extension."
        )
    return Edition.COMMUNITY  # renders the same for both: the files hold no edition tags


def milliseconds(duration: timedelta) -> sql.Literal:
    """``duration`` as a literal for ``SET lock_timeout`` and the like (at least 1 ms)."""
    return sql.Literal(f"{max(1, round(duration.total_seconds() * 1000))}ms")


def _apply_phase(
    *,
    url: str,
    conn: psycopg.Connection[Any],
    files: list[MigrationFile],
    edition: Edition,
    ddl_lock_timeout: timedelta,
    progress: Progress | None,
) -> list[str]:
    by_id = {migration.id: migration for migration in files}
    with tempfile.TemporaryDirectory(prefix="analytics-migrate-") as rendered:
        write_rendered(files, edition, Path(rendered))
        backend = _yoyo_backend(url, ddl_lock_timeout)
        try:
            try:
                backend.init_database()
                # We hold the advisory lock, so a yoyo lock row can only be left by a deploy
                # that was killed while holding it.
                backend.break_lock()
                pending = backend.to_apply(read_migrations(rendered))
            except psycopg.Error as error:
                raise MigrateError(
                    f"cannot read or create the migration ledger: [{error.sqlstate}] "
                    f"{str(error).strip()}. The migration role needs CREATE on the schema "
                    "and a writable connection."
                ) from error
            applied = []
            for migration in pending:
                _apply_one(backend, migration, progress)
                _record_checksum(conn, by_id[migration.id])
                applied.append(migration.id)
            return applied
        finally:
            backend.connection.close()


class _TimeoutBackend(PostgresqlPsycopgBackend):  # type: ignore[misc]  # yoyo is untyped
    """yoyo's psycopg 3 backend, with ``lock_timeout`` set on each connection it opens (one
    per migration) and no prepared statements: a session-pooled PgBouncer refuses the
    timeout as a startup parameter (``options``), and the session is ours alone, so setting
    it on the session is safe; it ends with the connection."""

    lock_timeout_ms = 0

    def connect(self, dburi: Any) -> Any:
        conn = super().connect(dburi)
        conn.prepare_threshold = None
        return conn

    def init_connection(self, connection: Any) -> None:
        super().init_connection(connection)
        connection.execute(
            "SELECT set_config('lock_timeout', %s, false)", (f"{self.lock_timeout_ms}ms",)
        )


def _yoyo_backend(url: str, lock_timeout: timedelta) -> Any:
    millis = max(1, round(lock_timeout.total_seconds() * 1000))
    backend_class = type("_Backend", (_TimeoutBackend,), {"lock_timeout_ms": millis})
    try:
        backend = backend_class(parse_uri(yoyo_url(url)), "_yoyo_migration")
    except psycopg.Error as error:
        message = connection.scrub(str(error).strip(), url)
        advice = explain_startup_parameter(message)
        raise ConnectionFailed(
            f"cannot connect to the database for the migrations: {advice or message}"
        ) from None
    return backend


def _apply_one(backend: Any, migration: Any, progress: Progress | None) -> None:
    migration.load()
    total = len(migration.steps)
    handler = _StepProgress(migration.id, total, progress)
    yoyo_logger = logging.getLogger("yoyo.migrations")
    yoyo_logger.addHandler(handler)
    previous_level = yoyo_logger.level
    yoyo_logger.setLevel(logging.INFO)
    try:
        # yoyo prints the rows a statement returns to stdout, which would corrupt --json.
        with contextlib.redirect_stdout(io.StringIO()):
            backend.apply_one(migration)
        if progress is not None:
            progress(migration.id, total, total)
    except psycopg.Error as error:
        raise MigrationFailed(
            migration.id, error.sqlstate, str(error).strip().splitlines()[0]
        ) from error
    finally:
        yoyo_logger.removeHandler(handler)
        yoyo_logger.setLevel(previous_level)


class _StepProgress(logging.Handler):
    """Turns yoyo's per-step log lines into progress calls: yoyo has no other hook."""

    _STEP = re.compile(r"applying step (\d+)")

    def __init__(self, migration_id: str, total: int, progress: Progress | None) -> None:
        super().__init__(logging.INFO)
        self._migration_id = migration_id
        self._total = total
        self._progress = progress
        self._done = 0

    def emit(self, record: logging.LogRecord) -> None:
        if self._progress is None or not self._STEP.search(record.getMessage()):
            return
        self._progress(self._migration_id, self._done, self._total)
        self._done += 1


def _record_checksum(conn: psycopg.Connection[Any], migration: MigrationFile) -> None:
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            " migration_id text PRIMARY KEY, sha256 text NOT NULL,"
            " recorded_at timestamptz NOT NULL DEFAULT now())"
        ).format(sql.Identifier(CHECKSUM_TABLE))
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (migration_id, sha256) VALUES (%s, %s)"
            " ON CONFLICT (migration_id) DO UPDATE SET sha256 = EXCLUDED.sha256,"
            " recorded_at = now()"
        ).format(sql.Identifier(CHECKSUM_TABLE)),
        (migration.id, migration.checksum),
    )
