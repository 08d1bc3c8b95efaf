"""One round of the upkeep that TimescaleDB's background jobs do on the Community edition.

Community edition: run each of our policy jobs (refresh, compression, retention) once, now,
with ``CALL run_job``; useful after a bulk load and where background workers are off.
TimescaleDB does not record these foreground runs in ``job_stats``, so ``status`` keeps
showing the scheduler's last run.
Apache edition: there are no jobs, so this *is* the upkeep: refresh the fallback
materialized views and drop chunks older than the retention period. Schedule it (cron, a
Kubernetes CronJob) hourly there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from analytics_core.migrate.edition import Edition, inspect_server
from analytics_core.schema import AGGREGATES, EVENTS_TABLE, RETENTION

__all__ = ["MaintenanceResult", "TaskResult", "maintain"]


@dataclass(frozen=True, slots=True)
class TaskResult:
    """One unit of upkeep: what ran, and its error if it failed (the others still ran)."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class MaintenanceResult:
    edition: Edition
    tasks: tuple[TaskResult, ...]

    @property
    def ok(self) -> bool:
        return all(task.ok for task in self.tasks)


def maintain(
    conn: psycopg.Connection[Any], progress: Callable[[str], None] | None = None
) -> MaintenanceResult:
    """Run one round of upkeep on an autocommit connection; every task runs even if one fails.

    Blocks for as long as the refreshes take. Raises only for connection failures.
    """
    if not conn.autocommit:
        raise ValueError("maintain() needs an autocommit connection: refreshes commit per step")
    edition = inspect_server(conn).edition
    steps = _community_steps(conn) if edition is Edition.COMMUNITY else _apache_steps(conn)
    results = []
    for name, statement in steps:
        if progress is not None:
            progress(name)
        results.append(_run(conn, name, statement))
    return MaintenanceResult(edition, tuple(results))


Step = tuple[str, sql.Composed]


def _community_steps(conn: psycopg.Connection[Any]) -> list[Step]:
    # Our jobs are those on the events hypertable and on the aggregates (named by the view,
    # or by its materialization hypertable before TimescaleDB 2.20); refreshes first, so
    # that retention never drops raw data before the rollups have taken it in.
    rows = conn.execute(
        """
        SELECT j.job_id, j.proc_name, coalesce(c.view_name, j.hypertable_name) AS relation
        FROM timescaledb_information.jobs j
        LEFT JOIN timescaledb_information.continuous_aggregates c
               ON c.materialization_hypertable_name = j.hypertable_name
        WHERE j.hypertable_name = %s OR coalesce(c.view_name, j.hypertable_name) = ANY(%s)
        ORDER BY j.proc_name <> 'policy_refresh_continuous_aggregate', j.job_id
        """,
        (EVENTS_TABLE, [aggregate.name for aggregate in AGGREGATES]),
    ).fetchall()
    return [
        (
            f"{proc.removeprefix('policy_')} {relation} (job {job_id})",
            sql.SQL("CALL run_job({})").format(sql.Literal(job_id)),
        )
        for job_id, proc, relation in rows
    ]


def _apache_steps(conn: psycopg.Connection[Any]) -> list[Step]:
    populated = dict(
        conn.execute(
            "SELECT matviewname, ispopulated FROM pg_matviews WHERE matviewname = ANY(%s)",
            ([aggregate.name for aggregate in AGGREGATES],),
        ).fetchall()
    )
    steps: list[Step] = []
    for aggregate in AGGREGATES:
        if aggregate.name not in populated:
            continue
        # CONCURRENTLY keeps the view readable during the refresh; it needs a populated view.
        concurrently = sql.SQL("CONCURRENTLY ") if populated[aggregate.name] else sql.SQL("")
        steps.append(
            (
                f"refresh {aggregate.name}",
                sql.SQL("REFRESH MATERIALIZED VIEW {}{}").format(
                    concurrently, sql.Identifier(aggregate.name)
                ),
            )
        )
    steps.append(
        (
            f"drop chunks of {EVENTS_TABLE} older than {RETENTION.days} days",
            sql.SQL("SELECT count(*) FROM drop_chunks({}, older_than => {})").format(
                sql.Literal(EVENTS_TABLE), sql.Literal(RETENTION)
            ),
        )
    )
    return steps


def _run(conn: psycopg.Connection[Any], name: str, statement: sql.Composed) -> TaskResult:
    try:
        cursor = conn.execute(statement)
    except psycopg.Error as error:
        if conn.broken:
            raise
        return TaskResult(name, ok=False, detail=f"[{error.sqlstate}] {error}".strip())
    detail = "done"
    if cursor.description is not None:
        row = cursor.fetchone()
        if row is not None:
            detail = f"{row[0]} chunk(s) dropped"
    return TaskResult(name, ok=True, detail=detail)
