"""Schedule the Apache edition's upkeep with pg_cron, and read those jobs back.

The Apache edition has no job scheduler of its own: ``analytics-migrate maintain`` does the
upkeep. Where the server has pg_cron (Azure Database for PostgreSQL offers it; Debian packages
it as ``postgresql-15-cron``), ``analytics-migrate post --pg-cron`` schedules the same SQL
there: the incremental refresh every hour, retention once a day. It is opt-in because pg_cron
is cluster-wide (its jobs live in one database, ``cron.database_name``, and creating the
extension there takes a superuser or the platform's admin role), and because many deploys
already run ``maintain`` from their own scheduler.

Jobs are named ``analytics-refresh <database>`` and ``analytics-retention <database>`` and
scheduled with ``cron.schedule_in_database``, which updates a job of the same name, so
scheduling again changes the schedule instead of adding a job. pg_cron runs each job as the
role that scheduled it, in the analytics database, with that role's ``search_path``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from analytics_core import connection
from analytics_core.errors import ConnectionFailed
from analytics_core.migrate._catalog import in_python_range
from analytics_core.migrate.errors import MigrateError
from analytics_core.migrate.runner import connect
from analytics_core.schema import EVENTS_TABLE, RETENTION

__all__ = [
    "DEFAULT_REFRESH_SCHEDULE",
    "DEFAULT_RETENTION_SCHEDULE",
    "CronJob",
    "PgCronUnavailable",
    "cron_database",
    "read_cron_jobs",
    "schedule_upkeep",
    "unschedule_upkeep",
]

#: Every hour, like the Community edition's refresh policies (at five past, off the hour
#: that other jobs crowd).
DEFAULT_REFRESH_SCHEDULE = "5 * * * *"
#: Once a day: retention drops whole one-day chunks.
DEFAULT_RETENTION_SCHEDULE = "35 3 * * *"

_REFRESH = "analytics-refresh"
_RETENTION = "analytics-retention"
_REFRESH_COMMAND = "CALL analytics_refresh_aggregates()"
# The setting is read at each run, so a deploy that changes retention needs no reschedule.
_RETENTION_COMMAND = (
    f"SELECT count(*) FROM drop_chunks('{EVENTS_TABLE}',"
    f" older_than => analytics_setting('retention', INTERVAL '{RETENTION.days} days'))"
)


class PgCronUnavailable(MigrateError):
    """The server cannot run pg_cron jobs (not installed or not preloaded)."""


@dataclass(frozen=True, slots=True)
class CronJob:
    """One of our pg_cron jobs and its last run (times UTC; None: it has not run yet)."""

    job_id: int
    #: "analytics-refresh <database>" or "analytics-retention <database>".
    name: str
    #: Cron syntax, e.g. "5 * * * *".
    schedule: str
    command: str
    active: bool
    last_run_at: datetime | None
    #: pg_cron's status of the last run: "succeeded", "failed", "running", "starting", ...
    last_status: str | None
    #: What the last run returned, or its error.
    last_message: str | None


def cron_database(conn: psycopg.Connection[Any]) -> str | None:
    """The database pg_cron keeps its jobs in, or None when pg_cron is not loaded."""
    # pg_settings lists a setting once its library defines it; a placeholder left in
    # postgresql.conf without the library (current_setting() would read it) is not listed.
    row = conn.execute(
        "SELECT setting FROM pg_settings WHERE name = 'cron.database_name'"
    ).fetchone()
    return str(row[0]) if row and row[0] else None


def schedule_upkeep(
    url: str,
    *,
    refresh_schedule: str = DEFAULT_REFRESH_SCHEDULE,
    retention_schedule: str = DEFAULT_RETENTION_SCHEDULE,
) -> tuple[CronJob, ...]:
    """Schedule the incremental refresh and retention of the database at ``url`` with pg_cron
    (creating the extension in its database if needed); return our jobs as scheduled.

    Idempotent: scheduling again updates the two jobs. Raises PgCronUnavailable when pg_cron
    is not loaded, MigrateError when the extension cannot be created or a schedule is
    refused, ConnectionFailed.
    """
    with connect(url) as conn:
        database = _current_database(conn)
        cron_db = cron_database(conn)
    if cron_db is None:
        raise PgCronUnavailable(
            "pg_cron is not loaded on this server: add pg_cron to shared_preload_libraries "
            "(install postgresql-15-cron; on Azure, allow-list the extension) and restart, or "
            "run `analytics-migrate maintain` from cron instead (README, 'Scheduling')"
        )
    with connect(connection.with_database(url, cron_db)) as cron:
        try:
            cron.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
            for job, schedule, command in (
                (_REFRESH, refresh_schedule, _REFRESH_COMMAND),
                (_RETENTION, retention_schedule, _RETENTION_COMMAND),
            ):
                cron.execute(
                    "SELECT cron.schedule_in_database(%s, %s, %s, %s)",
                    (f"{job} {database}", schedule, command, database),
                )
        except psycopg.Error as error:
            if cron.broken:
                raise
            first_line = str(error).strip().splitlines()[0]
            raise MigrateError(
                f"cannot schedule with pg_cron in database {cron_db}: [{error.sqlstate}] "
                f"{first_line}. Creating the extension takes a superuser (on Azure, a member "
                "of azure_pg_admin); a schedule must be in cron syntax."
            ) from error
    return read_cron_jobs(url)


def unschedule_upkeep(url: str) -> int:
    """Remove our pg_cron jobs for the database at ``url``; return how many there were.

    Do it before dropping the database: pg_cron would otherwise keep starting them there,
    and log a failure each time. Raises MigrateError, ConnectionFailed.
    """
    with connect(url) as conn:
        database = _current_database(conn)
        cron_db = cron_database(conn)
    if cron_db is None:
        return 0
    names = [f"{_REFRESH} {database}", f"{_RETENTION} {database}"]
    with connect(connection.with_database(url, cron_db)) as cron:
        try:
            rows = cron.execute(
                "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = ANY(%s)", (names,)
            ).fetchall()
        except psycopg.Error as error:
            if cron.broken:
                raise
            raise MigrateError(
                f"cannot unschedule the pg_cron jobs in database {cron_db}: "
                f"[{error.sqlstate}] {str(error).strip().splitlines()[0]}"
            ) from error
    return len(rows)


def read_cron_jobs(url: str) -> tuple[CronJob, ...]:
    """Our pg_cron jobs for the database at ``url`` with their last runs; empty where pg_cron
    is not loaded or not created. Read-only. pg_cron shows a role only its own jobs (a
    superuser sees all). Raises MigrateError when the cron database cannot be read."""
    cron_db: str | None = None
    try:
        with connect(url) as conn, connection.read_transaction(conn):
            database = _current_database(conn)
            cron_db = cron_database(conn)
        if cron_db is None:
            return ()
        with (
            connect(connection.with_database(url, cron_db)) as cron,
            connection.read_transaction(cron),
        ):
            row = cron.execute("SELECT to_regclass('cron.job') IS NOT NULL").fetchone()
            if not (row and row[0]):
                return ()
            rows = cron.execute(
                f"""
                SELECT j.jobid, j.jobname, j.schedule, j.command, j.active,
                       {in_python_range("d.start_time")}, d.status, d.return_message
                FROM cron.job j
                LEFT JOIN LATERAL (
                    SELECT start_time, status, return_message FROM cron.job_run_details r
                     WHERE r.jobid = j.jobid ORDER BY r.runid DESC LIMIT 1
                ) d ON true
                WHERE j.database = %s AND (j.jobname = %s OR j.jobname = %s)
                ORDER BY j.jobname
                """,
                (database, f"{_REFRESH} {database}", f"{_RETENTION} {database}"),
            ).fetchall()
    except (psycopg.Error, ConnectionFailed) as error:
        where = f" in database {cron_db}" if cron_db else ""
        raise MigrateError(f"cannot read the pg_cron jobs{where}: {error}") from None
    return tuple(
        CronJob(int(job_id), str(name), str(schedule), str(command), bool(active), *last)
        for job_id, name, schedule, command, active, *last in rows
    )


def _current_database(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT current_database()").fetchone()
    assert row is not None
    return str(row[0])
