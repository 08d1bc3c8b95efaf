"""Our TimescaleDB policy jobs and their health: does the work they do actually get done?

On the Community edition the background scheduler runs one job per policy (seven refreshes,
compression, retention). On a real server it can fail for reasons no migration sees: too few
worker processes, or (PostgreSQL 15.20 with TimescaleDB up to at least 2.23) every background
job failing with ``cannot drop portal "" while it is being set up``. ``analytics-migrate
maintain`` runs the same jobs in the foreground and records each run in
``analytics_maintenance_runs``, so a job is healthy while *either* keeps doing its work.

Reading is read-only (``status`` calls it on replicas and read-only roles); only
:func:`pause_jobs` writes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from analytics_core.migrate._catalog import in_python_range
from analytics_core.schema import AGGREGATES, EVENTS_TABLE, MAINTENANCE_RUNS_TABLE

__all__ = [
    "JobStatus",
    "MaintenanceRun",
    "pause_jobs",
    "read_jobs",
    "read_maintenance_runs",
    "worker_warnings",
]

#: A job is overdue when its work was last done longer ago than this many schedule intervals.
OVERDUE_AFTER_INTERVALS = 2


@dataclass(frozen=True, slots=True)
class MaintenanceRun:
    """The last ``maintain`` run of one task (a row of ``analytics_maintenance_runs``)."""

    task: str
    job_id: int | None
    finished_at: datetime
    ok: bool
    detail: str
    #: When the task last succeeded; None if it never did.
    last_success_at: datetime | None


@dataclass(frozen=True, slots=True)
class JobStatus:
    """One policy job: its schedule, what the scheduler and ``maintain`` last did with it.

    Times are UTC-aware; None means never (or a catalog value Python cannot represent).
    """

    job_id: int
    #: "refresh_continuous_aggregate", "compression" or "retention".
    kind: str
    #: The aggregate or table the job works on.
    relation: str
    #: As PostgreSQL prints the interval, e.g. "01:00:00" or "1 day".
    schedule_interval: str
    #: False when the job is paused (``alter_job(..., scheduled => false)``).
    scheduled: bool
    #: The policy's configuration (offsets, ``compress_after``, ``drop_after``) as stored.
    config: dict[str, Any]
    #: The scheduler's view of it: "Scheduled", "Running" or "Paused"; None if unknown.
    state: str | None
    last_run_at: datetime | None
    #: "Success" or "Failed" for the scheduler's last run; None if it never ran one.
    last_run_status: str | None
    #: The scheduler's last successful finish.
    last_success_at: datetime | None
    next_start: datetime | None
    total_runs: int
    total_failures: int
    #: Failures in a row since the last success; None where the catalog does not say.
    consecutive_failures: int | None
    #: The newest error the scheduler recorded for the job, if any.
    last_error: str | None
    #: The last ``maintain`` run of this job, if ``maintain`` ever ran it.
    maintenance: MaintenanceRun | None
    #: "ok", or why the job's work is not getting done: "failing" (the scheduler's runs
    #: fail and ``maintain`` has not done the work since), "maintain failed" or "overdue".
    health: str
    #: The health in a sentence, with the error; None when healthy.
    problem: str | None

    @property
    def healthy(self) -> bool:
        return self.health == "ok"


def read_jobs(
    conn: psycopg.Connection[Any], *, created_at: datetime | None = None
) -> tuple[JobStatus, ...]:
    """Our policy jobs, refreshes first, each with its health.

    ``created_at`` is when the jobs were created (the post-deploy migrations' time): a job
    that never succeeded counts as overdue only once it has existed for two intervals.
    """
    cur = conn.cursor(row_factory=dict_row)
    rows = cur.execute(
        f"""
        SELECT j.job_id, j.proc_name, coalesce(c.view_name, j.hypertable_name) AS relation,
               j.schedule_interval::text AS schedule,
               extract(epoch FROM j.schedule_interval)::float8 AS schedule_s,
               j.scheduled, j.config::text AS config,
               s.job_status::text AS state,
               {in_python_range("s.last_run_started_at")} AS last_run_at,
               s.last_run_status::text AS last_run_status,
               {in_python_range("s.last_successful_finish")} AS last_success_at,
               {in_python_range("s.next_start")} AS next_start,
               coalesce(s.total_runs, 0)::bigint AS total_runs,
               coalesce(s.total_failures, 0)::bigint AS total_failures,
               (SELECT e.err_message FROM timescaledb_information.job_errors e
                 WHERE e.job_id = j.job_id ORDER BY e.finish_time DESC LIMIT 1) AS last_error,
               now() AS now
        FROM timescaledb_information.jobs j
        LEFT JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id
        LEFT JOIN timescaledb_information.continuous_aggregates c
               ON c.materialization_hypertable_name = j.hypertable_name
        WHERE j.hypertable_name = %s OR coalesce(c.view_name, j.hypertable_name) = ANY(%s)
        ORDER BY j.proc_name <> 'policy_refresh_continuous_aggregate', j.job_id
        """,
        (EVENTS_TABLE, [aggregate.name for aggregate in AGGREGATES]),
    ).fetchall()
    streaks = _consecutive_failures(conn)
    runs = {run.job_id: run for run in read_maintenance_runs(conn) if run.job_id is not None}
    jobs = []
    for row in rows:
        job_id = int(row["job_id"])
        facts = {
            "job_id": job_id,
            "kind": str(row["proc_name"]).removeprefix("policy_"),
            "relation": str(row["relation"]),
            "schedule_interval": str(row["schedule"]),
            "scheduled": bool(row["scheduled"]),
            "config": json.loads(row["config"]) if row["config"] else {},
            "state": row["state"],
            "last_run_at": row["last_run_at"],
            "last_run_status": row["last_run_status"],
            "last_success_at": row["last_success_at"],
            "next_start": row["next_start"],
            "total_runs": int(row["total_runs"]),
            "total_failures": int(row["total_failures"]),
            "consecutive_failures": streaks.get(job_id),
            "last_error": row["last_error"],
            "maintenance": runs.get(job_id),
        }
        interval = timedelta(seconds=float(row["schedule_s"]))
        health, problem = _health(facts, interval, now=row["now"], created_at=created_at)
        jobs.append(JobStatus(**facts, health=health, problem=problem))
    return tuple(jobs)


def _health(
    job: dict[str, Any], interval: timedelta, *, now: datetime, created_at: datetime | None
) -> tuple[str, str | None]:
    """Whether the job's work is getting done, judged from the scheduler and ``maintain``."""
    maintenance: MaintenanceRun | None = job["maintenance"]
    maintained_at = maintenance.last_success_at if maintenance else None
    successes = [t for t in (job["last_success_at"], maintained_at) if t is not None]
    last_done = max(successes) if successes else None
    if job["last_run_status"] == "Failed" and job["last_run_at"] is not None:
        covered = maintained_at is not None and maintained_at >= job["last_run_at"]
        if not covered:
            streak = job["consecutive_failures"]
            count = f"{streak} failure(s) in a row" if streak else "failed"
            error = f": {job['last_error']}" if job["last_error"] else ""
            return "failing", f"the scheduler's runs fail ({count}){error}"
    if (
        maintenance is not None
        and not maintenance.ok
        and (last_done is None or last_done < maintenance.finished_at)
    ):
        return "maintain failed", f"its last `maintain` run failed: {maintenance.detail}"
    deadline = OVERDUE_AFTER_INTERVALS * interval
    since = last_done or created_at
    if since is not None and now - since > deadline:
        what = f"last done {last_done:%Y-%m-%d %H:%M} UTC" if last_done else "never done"
        paused = "; it is paused" if not job["scheduled"] else ""
        return "overdue", f"{what}, scheduled every {job['schedule_interval']}{paused}"
    return "ok", None


def _consecutive_failures(conn: psycopg.Connection[Any]) -> dict[int, int]:
    # Only the internal catalog counts failures in a row; read it where it exists and the
    # role may, and do without elsewhere.
    row = conn.execute(
        "SELECT to_regclass('_timescaledb_internal.bgw_job_stat') IS NOT NULL"
        " AND has_table_privilege('_timescaledb_internal.bgw_job_stat', 'SELECT')"
    ).fetchone()
    if not (row and row[0]):
        return {}
    rows = conn.execute(
        "SELECT job_id, consecutive_failures FROM _timescaledb_internal.bgw_job_stat"
    ).fetchall()
    return {int(job_id): int(streak) for job_id, streak in rows}


def read_maintenance_runs(conn: psycopg.Connection[Any]) -> tuple[MaintenanceRun, ...]:
    """What ``maintain`` last did per task; empty before the table exists."""
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (MAINTENANCE_RUNS_TABLE,)).fetchone()
    if not (row and row[0]):
        return ()
    rows = conn.execute(
        f"SELECT task, job_id, {in_python_range('finished_at')}, ok, detail,"
        f" {in_python_range('last_success_at')} FROM {MAINTENANCE_RUNS_TABLE} ORDER BY task"
    ).fetchall()
    return tuple(
        MaintenanceRun(str(task), job_id, finished_at, bool(ok), str(detail), last_success)
        for task, job_id, finished_at, ok, detail, last_success in rows
        if finished_at is not None
    )


def worker_warnings(conn: psycopg.Connection[Any], job_count: int) -> tuple[str, ...]:
    """Why the server may not be able to run ``job_count`` jobs in the background, if it may not.

    Follows Timescale's sizing advice: ``timescaledb.max_background_workers`` covers one
    scheduler per database plus the jobs that run at once, and ``max_worker_processes`` covers
    those workers, the parallel query workers and the launcher.
    """
    row = conn.execute(
        "SELECT current_setting('max_worker_processes')::int,"
        " current_setting('max_parallel_workers', true)::int,"
        " current_setting('timescaledb.max_background_workers', true)::int"
    ).fetchone()
    if row is None or row[2] is None:
        return ()  # no scheduler at all (an engine without background workers)
    processes, parallel, background = int(row[0]), int(row[1] or 0), int(row[2])
    warnings = []
    if background < 2:
        warnings.append(
            f"timescaledb.max_background_workers = {background}: the scheduler cannot run "
            "jobs; raise it, or run `analytics-migrate maintain` on a schedule"
        )
    elif background - 1 < job_count:
        warnings.append(
            f"timescaledb.max_background_workers = {background} leaves fewer workers than the "
            f"{job_count} jobs of this database once its scheduler takes one: jobs due together "
            "wait for each other"
        )
    needed = background + parallel + 1
    if processes < needed:
        warnings.append(
            f"max_worker_processes = {processes} is below timescaledb.max_background_workers "
            f"({background}) + max_parallel_workers ({parallel}) + 1 = {needed}: the scheduler "
            "can fail to start jobs ('failed to start a background worker'); raise it and "
            "restart PostgreSQL"
        )
    return tuple(warnings)


def pause_jobs(
    conn: psycopg.Connection[Any], *, wait: timedelta = timedelta(seconds=60)
) -> tuple[int, ...]:
    """Stop the scheduler from starting our jobs, and wait (at most ``wait``) for runs in
    progress to end; return the ids of the paused jobs. Autocommit ``conn``.

    For servers where background jobs cannot work (run ``maintain`` on a schedule instead),
    and for benchmarks and tests that need the data to change only when they say so.
    ``CALL run_job`` (and so ``maintain``) still runs a paused job. Raises TimeoutError when
    a run has not ended within ``wait``.
    """
    ids = tuple(job.job_id for job in read_jobs(conn))
    for job_id in ids:
        conn.execute("SELECT alter_job(%s, scheduled => false)", (job_id,))
    deadline = time.monotonic() + wait.total_seconds()
    while ids:
        row = conn.execute(
            "SELECT count(*) FROM timescaledb_information.job_stats"
            " WHERE job_id = ANY(%s) AND job_status = 'Running'",
            (list(ids),),
        ).fetchone()
        if not (row and row[0]):
            break
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{row[0]} job(s) still running after {wait.total_seconds():g} s")
        time.sleep(0.2)
    return ids
