"""One round of the upkeep that TimescaleDB's background jobs do on the Community edition.

Community edition: run each of our policy jobs (refreshes, then compression, then retention)
once, now, with ``CALL run_job``: after a bulk load, and wherever background jobs cannot run
(no scheduler, too few workers, or the job failures some PostgreSQL/TimescaleDB pairs have).
The scheduler may run the same job at the same moment, so a job it is running is waited for
(then skipped), and a job that fails because the scheduler did the same work concurrently (a
chunk already compressed or dropped) counts as done once the outcome is checked.

Apache edition: there are no jobs, so this *is* the upkeep: refresh each aggregate
incrementally (``analytics_refresh_aggregate``, one short transaction each: the window of the
Community refresh policy plus older buckets that received late events; rows older than the
raw retention are never touched), then drop chunks older than the retention period. Schedule
it hourly there, or let pg_cron run the same SQL (:mod:`analytics_core.migrate.scheduling`).
A database whose post-deploy migrations still build plain materialized views (the deploy
has not run ``post`` yet) gets them refreshed whole, as before.

Every task's outcome is recorded in ``analytics_maintenance_runs``, which ``status`` reads to
judge whether each job's work is getting done.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import sql

from analytics_core.errors import SchemaNotMigrated
from analytics_core.migrate.edition import Edition, edition_to_maintain, inspect_server
from analytics_core.migrate.incremental import incremental_aggregates
from analytics_core.migrate.jobs import JobStatus, read_jobs
from analytics_core.migrate.settings import Setting, effective_settings
from analytics_core.schema import AGGREGATES, EVENTS_TABLE, MAINTENANCE_RUNS_TABLE

__all__ = ["DEFAULT_JOB_WAIT", "MaintenanceResult", "TaskResult", "maintain"]

#: How long ``maintain`` waits for a run of the same job by the scheduler to finish.
DEFAULT_JOB_WAIT = timedelta(seconds=60)
_POLL_S = 0.5


@dataclass(frozen=True, slots=True)
class TaskResult:
    """One unit of upkeep: what ran and how it ended (the others run even if one fails)."""

    #: What it did, e.g. "compression analytics_events (job 1000)".
    name: str
    #: False only for outcome "failed".
    ok: bool
    #: "done", "N chunk(s) dropped", the error with its SQLSTATE, or why it was skipped.
    detail: str
    #: "done"; "done concurrently" (it failed because another session, normally the
    #: scheduler, did the same work at the same time, and that work is verified done);
    #: "skipped" (the scheduler was still running it after the wait); or "failed".
    outcome: str = "done"


@dataclass(frozen=True, slots=True)
class MaintenanceResult:
    """One round of :func:`maintain`: the tasks in the order they ran."""

    edition: Edition
    tasks: tuple[TaskResult, ...]

    @property
    def ok(self) -> bool:
        """True when no task failed (skipped and concurrently done tasks are fine)."""
        return all(task.ok for task in self.tasks)

    def to_json(self) -> dict[str, Any]:
        return {
            "edition": self.edition,
            "ok": self.ok,
            "tasks": [
                {"name": t.name, "ok": t.ok, "outcome": t.outcome, "detail": t.detail}
                for t in self.tasks
            ],
        }


def _chunks_dropped(value: object) -> str:
    return f"{value} chunk(s) dropped"


@dataclass(frozen=True, slots=True)
class _Task:
    name: str
    statement: sql.Composed
    job: JobStatus | None = None
    #: Turns the single value the statement returns into the task's detail.
    describe: Callable[[object], str] | None = None


def maintain(
    conn: psycopg.Connection[Any],
    progress: Callable[[str], None] | None = None,
    *,
    job_wait: timedelta = DEFAULT_JOB_WAIT,
) -> MaintenanceResult:
    """Run one round of upkeep on an autocommit connection; every task runs even if one fails.

    Blocks for as long as the refreshes take, plus at most ``job_wait`` per job the scheduler
    is running. Raises MigrateError when the extension is not there, SchemaNotMigrated when
    the table is not, psycopg errors only for connection failures.
    """
    if not conn.autocommit:
        raise ValueError("maintain() needs an autocommit connection: refreshes commit per step")
    edition = edition_to_maintain(inspect_server(conn))
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (EVENTS_TABLE,)).fetchone()
    if not (row and row[0]):
        raise SchemaNotMigrated(
            f"there is no {EVENTS_TABLE} table to maintain in this database: run "
            "`analytics-migrate all` first"
        )
    tasks = _community_tasks(conn) if edition is Edition.COMMUNITY else _apache_tasks(conn)
    recorder = _Recorder(conn)
    results = []
    for task in tasks:
        if progress is not None:
            progress(task.name)
        result = _run(conn, task, job_wait)
        recorder.record(task, result)
        results.append(result)
    return MaintenanceResult(edition, tuple(results))


def _community_tasks(conn: psycopg.Connection[Any]) -> list[_Task]:
    # Refreshes come first (read_jobs orders them so), so that retention never drops raw
    # data before the rollups have taken it in.
    return [
        _Task(
            f"{job.kind} {job.relation} (job {job.job_id})",
            sql.SQL("CALL run_job({})").format(sql.Literal(job.job_id)),
            job,
        )
        for job in read_jobs(conn)
    ]


def _apache_tasks(conn: psycopg.Connection[Any]) -> list[_Task]:
    populated = dict(
        conn.execute(
            "SELECT matviewname, ispopulated FROM pg_matviews WHERE matviewname = ANY(%s)",
            ([aggregate.name for aggregate in AGGREGATES],),
        ).fetchall()
    )
    incremental = incremental_aggregates(conn)
    tasks = []
    for aggregate in AGGREGATES:
        if aggregate.name in incremental:
            tasks.append(
                _Task(
                    f"refresh {aggregate.name}",
                    sql.SQL("SELECT analytics_refresh_aggregate({})").format(
                        sql.Literal(aggregate.name)
                    ),
                    describe=str,
                )
            )
            continue
        if aggregate.name not in populated:
            continue
        # CONCURRENTLY keeps the view readable during the refresh; it needs a populated view.
        concurrently = sql.SQL("CONCURRENTLY ") if populated[aggregate.name] else sql.SQL("")
        tasks.append(
            _Task(
                f"refresh {aggregate.name}",
                sql.SQL("REFRESH MATERIALIZED VIEW {}{}").format(
                    concurrently, sql.Identifier(aggregate.name)
                ),
            )
        )
    # The effective retention (a deploy may have changed it), read as status reads it.
    retention = effective_settings(conn)[Setting.RETENTION].value
    tasks.append(
        _Task(
            f"drop chunks of {EVENTS_TABLE} past retention",
            sql.SQL("SELECT count(*) FROM drop_chunks({}, older_than => {})").format(
                sql.Literal(EVENTS_TABLE), sql.Literal(retention)
            ),
            describe=_chunks_dropped,
        )
    )
    return tasks


def _run(conn: psycopg.Connection[Any], task: _Task, job_wait: timedelta) -> TaskResult:
    if task.job is not None and _running_after_wait(conn, task.job.job_id, job_wait):
        return TaskResult(
            task.name,
            ok=True,
            detail=f"the scheduler was still running job {task.job.job_id} after "
            f"{job_wait.total_seconds():g} s; left to it",
            outcome="skipped",
        )
    try:
        cursor = conn.execute(task.statement)
    except psycopg.Error as error:
        if conn.broken:
            raise
        message = f"[{error.sqlstate}] {str(error).strip().splitlines()[0]}"
        if task.job is not None and _work_is_done(conn, task.job):
            return TaskResult(
                task.name,
                ok=True,
                detail=f"another session did the same work at the same time ({message})",
                outcome="done concurrently",
            )
        return TaskResult(task.name, ok=False, detail=message, outcome="failed")
    detail = "done"
    if task.describe is not None and cursor.description is not None:
        row = cursor.fetchone()
        if row is not None:
            detail = task.describe(row[0])
    return TaskResult(task.name, ok=True, detail=detail)


def _running_after_wait(conn: psycopg.Connection[Any], job_id: int, wait: timedelta) -> bool:
    """Wait (at most ``wait``) while the scheduler runs the job; True if it still does."""
    deadline = time.monotonic() + wait.total_seconds()
    while True:
        row = conn.execute(
            "SELECT job_status::text FROM timescaledb_information.job_stats WHERE job_id = %s",
            (job_id,),
        ).fetchone()
        if row is None or row[0] != "Running":
            return False
        if time.monotonic() >= deadline:
            return True
        time.sleep(min(_POLL_S, max(0.0, deadline - time.monotonic())))


def _work_is_done(conn: psycopg.Connection[Any], job: JobStatus) -> bool:
    """Whether what a compression or retention job does is done, whoever did it."""
    if job.kind == "compression" and "compress_after" in job.config:
        row = conn.execute(
            "SELECT count(*) FROM timescaledb_information.chunks"
            " WHERE hypertable_name = %s AND NOT is_compressed"
            "   AND range_end <= now() - %s::interval",
            (EVENTS_TABLE, str(job.config["compress_after"])),
        ).fetchone()
        return row is not None and row[0] == 0
    if job.kind == "retention" and "drop_after" in job.config:
        row = conn.execute(
            "SELECT count(*) FROM show_chunks(%s::regclass, older_than => %s::interval)",
            (EVENTS_TABLE, str(job.config["drop_after"])),
        ).fetchone()
        return row is not None and row[0] == 0
    return False


class _Recorder:
    """Writes each task's outcome to ``analytics_maintenance_runs`` when that table exists."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        row = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (MAINTENANCE_RUNS_TABLE,)
        ).fetchone()
        self._enabled = bool(row and row[0])

    def record(self, task: _Task, result: TaskResult) -> None:
        if not self._enabled or result.outcome == "skipped":
            return  # a skipped job is the scheduler's run: its own stats tell how it went
        self._conn.execute(
            sql.SQL(
                "INSERT INTO {table} AS r (task, job_id, finished_at, ok, detail,"
                " last_success_at)"
                " VALUES (%(task)s, %(job)s, now(), %(ok)s, %(detail)s,"
                "  CASE WHEN %(ok)s THEN now() END)"
                " ON CONFLICT (task) DO UPDATE SET job_id = EXCLUDED.job_id,"
                "  finished_at = EXCLUDED.finished_at, ok = EXCLUDED.ok,"
                "  detail = EXCLUDED.detail,"
                "  last_success_at = coalesce(EXCLUDED.last_success_at, r.last_success_at)"
            ).format(table=sql.Identifier(MAINTENANCE_RUNS_TABLE)),
            {
                "task": _task_key(task),
                "job": task.job.job_id if task.job else None,
                "ok": result.ok,
                "detail": result.detail,
            },
        )


def _task_key(task: _Task) -> str:
    # Stable across rounds: the job id is a column of its own.
    if task.job is not None:
        return f"{task.job.kind} {task.job.relation}"
    return task.name
