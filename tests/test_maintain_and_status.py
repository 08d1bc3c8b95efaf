"""`maintain` and `status` on each edition: the Apache fallback (refresh the views, drop
expired chunks) on the server engine, the policy jobs and their status on the Community one."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import psycopg
import pytest
from rich.console import Console
from typer.testing import CliRunner

from analytics_core.cli import migrate as migrate_cli
from analytics_core.cli.migrate import app
from analytics_core.migrate import Edition, Phase, apply, maintain, pause_jobs, read_status
from analytics_core.migrate.jobs import read_jobs, worker_warnings
from analytics_core.schema import AGGREGATES
from devtools.psycopg_shim import PsycopgShim
from devtools.pytest_plugin import FullTimescaleDB
from devtools.sql_session import SqlSession
from tests.synthetic import Dataset, day_of, product_history
from tests.test_schema_community import apply_migrations

NOW = datetime.now(UTC)


def history() -> tuple[Dataset, int, int]:
    """Events 120 days old (past retention), 10 days old and from two days ago.

    Returns the data, how many rows are past retention, and how many users were active on
    the most recent day.
    """
    expired = product_history(NOW - timedelta(days=120), 1, seed=3)
    kept = product_history(NOW - timedelta(days=10), 1, seed=4)
    recent = product_history(day_of(NOW) - timedelta(days=2), 1, seed=5)
    data = Dataset(expired.rows + kept.rows + recent.rows)
    last_day = day_of(NOW) - timedelta(days=2)
    users = {str(r.user_id) for r in recent.rows if r.user_id and day_of(r.at) == last_day}
    return data, len(expired.rows), len(users)


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout + result.stderr


@pytest.mark.server
def test_maintain_on_the_server_engine(database_url: str) -> None:
    assert invoke("all", "--database-url", database_url)[0] == 0
    data, expired, last_day_users = history()
    expired_days = {day_of(r.at) for r in data.rows if r.at < NOW - timedelta(90)}
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(data.insert_sql())
        edition = read_status(conn).server.edition

    code, out = invoke("maintain", "--json", "--database-url", database_url)
    assert code == 0, out
    report = json.loads(out)
    assert report["ok"] is True and report["edition"] == edition

    with psycopg.connect(database_url, autocommit=True) as conn:
        if edition is Edition.APACHE:
            names = [task["name"] for task in report["tasks"]]
            assert names == [f"refresh {a.name}" for a in AGGREGATES] + [
                "drop chunks of analytics_events past retention"
            ]
            assert report["tasks"][-1]["detail"] == f"{len(expired_days)} chunk(s) dropped"
        row = conn.execute("SELECT count(*) FROM analytics_events").fetchone()
        assert row == (len(data.rows) - expired,)
        row = conn.execute(
            "SELECT count(*) FROM analytics_daily_active_users WHERE day = %s",
            (day_of(NOW) - timedelta(days=2),),
        ).fetchone()
        assert row == (last_day_users,)
        status = read_status(conn)
    assert status.up_to_date
    assert all(a.latest_bucket is not None for a in status.aggregates if a.name.endswith("daily"))

    # A second round refreshes concurrently (the views are populated now) and drops nothing.
    code, out = invoke("maintain", "--json", "--database-url", database_url)
    assert code == 0, out
    if edition is Edition.APACHE:
        assert json.loads(out)["tasks"][-1]["detail"] == "0 chunk(s) dropped"


@pytest.mark.community
def test_maintain_runs_every_policy_job_once_on_the_community_edition(
    community_session: SqlSession,
) -> None:
    apply_migrations(community_session)
    data, expired, _ = history()
    community_session.execute(data.insert_sql())
    conn = cast(Any, PsycopgShim(community_session))

    result = maintain(conn)
    assert result.edition is Edition.COMMUNITY
    assert result.ok, result.tasks
    kinds = [task.name.split(" ")[0] for task in result.tasks]
    assert kinds == ["refresh_continuous_aggregate"] * len(AGGREGATES) + [
        "compression", "retention"
    ]

    (left,) = community_session.fetch("SELECT count(*)::int AS n FROM analytics_events")
    assert left["n"] == len(data.rows) - expired

    status = read_status(conn)
    assert status.server.edition is Edition.COMMUNITY
    assert {f.name: f.mode for f in status.features} == {
        "compression": "native", "retention": "native", "aggregates": "native",
    }
    assert status.hypertable is not None
    assert status.hypertable.compressed_chunks >= 1
    assert status.hypertable.compression_ratio is not None
    assert status.hypertable.compression_ratio > 1
    assert len(status.jobs) == len(AGGREGATES) + 2
    # run_job runs a job in the foreground and TimescaleDB records no job_stats for it, so
    # maintain records each run itself: that is what tells status the work got done.
    assert all(job.maintenance is not None and job.maintenance.ok for job in status.jobs)
    assert {job.relation for job in status.jobs if job.kind == "refresh_continuous_aggregate"} \
        == {a.name for a in AGGREGATES}
    for aggregate in status.aggregates:
        assert aggregate.kind == "continuous aggregate"
        assert aggregate.watermark is not None, aggregate.name
    # Applied outside yoyo here, so the ledger is empty: status says so rather than guessing.
    assert status.pending and not status.up_to_date


# --- status on an aggregate with nothing materialized ----------------------------------------


@pytest.mark.community
def test_status_reads_aggregates_with_nothing_materialized(
    community_session: SqlSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Right after a deploy: the watermark of an empty continuous aggregate is the minimum
    # timestamp PostgreSQL has (4714-11-24 BC), out of Python's range.
    apply_migrations(community_session)
    status = read_status(cast(Any, PsycopgShim(community_session)))
    assert [(a.kind, a.watermark, a.latest_bucket) for a in status.aggregates] == [
        ("continuous aggregate", None, None)
    ] * len(AGGREGATES)
    assert status.schema_drift == ()
    console = Console(record=True, width=200)
    monkeypatch.setattr(migrate_cli, "out", console)
    migrate_cli.render_status(status)
    rows = [line for line in console.export_text().splitlines() if "nothing yet" in line]
    assert len(rows) == len(AGGREGATES)


@pytest.mark.server
def test_status_right_after_all_on_an_empty_database(database_url: str) -> None:
    assert invoke("all", "--database-url", database_url)[0] == 0
    code, out = invoke("status", "--database-url", database_url)
    assert code == 0, out
    code, out = invoke("status", "--json", "--database-url", database_url)
    document = json.loads(out)
    # Read as None whether or not the scheduler has refreshed it yet (over an empty table).
    assert len(document["aggregates"]) == len(AGGREGATES)


# --- maintain beside the scheduler -----------------------------------------------------------


class SchedulerAlongside(PsycopgShim):
    """A connection on which the scheduler is busy: it does the compression job's work the
    moment we start the job, which then fails as TimescaleDB's does when a chunk it was about
    to compress got compressed by another session; and it reports `Running` for one job."""

    def __init__(self, session: SqlSession, compression_job: int, running_job: int) -> None:
        super().__init__(session)
        self.compression_job = compression_job
        self.running_job = running_job

    def execute(self, query: Any, params: Any = None) -> Any:
        text = query if isinstance(query, str) else query.as_string(None)
        if "timescaledb_information.job_stats WHERE job_id =" in text:
            status = "Running" if params == (self.running_job,) else "Scheduled"
            return super().execute("SELECT %s::text AS job_status", (status,))
        if text == f"CALL run_job({self.compression_job})":
            self._session.fetch(
                "SELECT count(compress_chunk(c, if_not_compressed => true)) AS n"
                " FROM show_chunks('analytics_events', older_than => INTERVAL '7 days') c"
            )
            raise psycopg.errors.lookup("XX000")(
                "columnstore policy failure: Failed to convert '1' chunks to columnstore"
            )
        return super().execute(query, params)


@pytest.mark.community
def test_maintain_takes_work_the_scheduler_did_concurrently_as_done(
    community_session: SqlSession,
) -> None:
    apply_migrations(community_session)
    plain = cast(Any, PsycopgShim(community_session))
    # This connection plays the scheduler; a real server's own would race it.
    pause_jobs(plain)
    data, _, _ = history()
    community_session.execute(data.insert_sql())
    ids = {job.kind: job.job_id for job in read_jobs(plain)}
    refresh_ids = [job.job_id for job in read_jobs(plain) if job.kind.startswith("refresh")]
    conn = cast(Any, SchedulerAlongside(community_session, ids["compression"], refresh_ids[0]))

    result = maintain(conn, job_wait=timedelta(seconds=0.3))

    assert result.ok, result.tasks
    by_job = {task.name.rsplit("job ", 1)[1].rstrip(")"): task for task in result.tasks}
    compression = by_job[str(ids["compression"])]
    assert compression.outcome == "done concurrently"
    assert "columnstore policy failure" in compression.detail
    skipped = by_job[str(refresh_ids[0])]
    assert (skipped.outcome, skipped.ok) == ("skipped", True)
    assert "still running" in skipped.detail
    assert [t.outcome for t in result.tasks].count("done") == len(result.tasks) - 2
    # Recorded: the compression as a success, the skipped job not at all (it is the
    # scheduler's run).
    runs = {job.job_id: job.maintenance for job in read_jobs(plain)}
    assert runs[ids["compression"]] is not None and runs[ids["compression"]].ok
    assert runs[refresh_ids[0]] is None


@pytest.mark.community
def test_maintain_reports_a_failure_whose_work_is_not_done(
    community_session: SqlSession,
) -> None:
    apply_migrations(community_session)
    # Nothing compresses a chunk here (the scheduler of a real server is paused): the job
    # fails and its work is not done.
    conn = cast(Any, PsycopgShim(community_session))
    pause_jobs(conn)
    data, _, _ = history()
    community_session.execute(data.insert_sql())
    job = next(job for job in read_jobs(conn) if job.kind == "compression")
    failing = cast(Any, SchedulerAlongside(community_session, -1, -1))
    failing.execute = _failing_run_job(failing.execute, job.job_id)

    result = maintain(failing)

    assert not result.ok
    (failed,) = [task for task in result.tasks if not task.ok]
    assert failed.outcome == "failed" and "boom" in failed.detail
    (recorded,) = [j for j in read_jobs(conn) if j.job_id == job.job_id]
    assert recorded.maintenance is not None and not recorded.maintenance.ok
    # "failing" where the scheduler's own runs failed too (every job on PostgreSQL 15.20).
    expected = "failing" if recorded.last_run_status == "Failed" else "maintain failed"
    assert recorded.health == expected


def _failing_run_job(execute: Any, job_id: int) -> Any:
    def run(query: Any, params: Any = None) -> Any:
        text = query if isinstance(query, str) else query.as_string(None)
        if text == f"CALL run_job({job_id})":
            raise psycopg.errors.lookup("XX000")("boom")
        return execute(query, params)

    return run


@pytest.mark.server
def test_maintain_beside_a_session_compressing_the_same_chunk(
    database_url: str, full_timescaledb: FullTimescaleDB | None
) -> None:
    if full_timescaledb is None:
        pytest.skip("needs a Community-edition server with several connections")
    assert invoke("all", "--database-url", database_url)[0] == 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        if read_status(conn).server.edition is not Edition.COMMUNITY:
            pytest.skip(f"{full_timescaledb.source} is not a Community-edition server")
        pause_jobs(conn)  # the other session below plays the scheduler
        conn.execute(history()[0].insert_sql())
        (chunk,) = conn.execute(
            "SELECT c::text FROM show_chunks('analytics_events',"
            " older_than => INTERVAL '7 days') c ORDER BY 1 LIMIT 1"
        ).fetchone() or (None,)
    assert chunk is not None

    # The other session compresses the oldest chunk and holds its transaction open while
    # maintain starts the compression job, which then waits for that chunk's lock.
    with psycopg.connect(database_url) as other:
        other.execute("SELECT compress_chunk(%s::regclass)", (chunk,))
        outcome: dict[str, Any] = {}
        worker = threading.Thread(
            target=lambda: outcome.update(
                result=maintain(psycopg.connect(database_url, autocommit=True))
            )
        )
        worker.start()
        time.sleep(2.0)
        other.commit()
    worker.join(timeout=120)
    result = outcome["result"]
    assert result.ok, result.tasks
    (compression,) = [t for t in result.tasks if t.name.startswith("compression")]
    assert compression.outcome in {"done", "done concurrently"}
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE NOT is_compressed) FROM timescaledb_information.chunks"
            " WHERE hypertable_name = 'analytics_events' AND range_end <= now() - INTERVAL '7 days'"
        ).fetchone()
    assert row == (0,)


# --- job health --------------------------------------------------------------------------------


@pytest.mark.community
def test_a_job_is_healthy_while_the_scheduler_or_maintain_does_its_work(
    community_session: SqlSession,
) -> None:
    apply_migrations(community_session)
    conn = cast(Any, PsycopgShim(community_session))
    fresh = read_jobs(conn, created_at=NOW)
    if any(job.last_run_at is not None for job in fresh):
        # A real server's scheduler runs new jobs at once, and they do or fail at its pace.
        pytest.skip("needs a database whose scheduler does not run jobs on its own (PGlite)")
    # Right after the deploy nothing has run, and that is fine.
    assert {job.health for job in fresh} == {"ok"}
    # Two schedule intervals later, a job nobody ran is overdue.
    long_ago = NOW - timedelta(days=3)
    stale = read_jobs(conn, created_at=long_ago)
    assert {job.health for job in stale} == {"overdue"}
    assert all(job.problem and job.problem.startswith("never done") for job in stale)

    assert maintain(conn).ok
    assert {job.health for job in read_jobs(conn, created_at=long_ago)} == {"ok"}

    # maintain's success goes stale like the scheduler's would.
    community_session.execute(
        "UPDATE analytics_maintenance_runs SET finished_at = finished_at - INTERVAL '3 days',"
        " last_success_at = last_success_at - INTERVAL '3 days'"
        " WHERE task LIKE 'refresh_continuous_aggregate %'"
    )
    health = {job.kind: job.health for job in read_jobs(conn, created_at=long_ago)}
    assert health == {
        "refresh_continuous_aggregate": "overdue", "compression": "ok", "retention": "ok"
    }


@pytest.mark.server
def test_status_check_jobs_exit_code(database_url: str) -> None:
    assert invoke("all", "--database-url", database_url)[0] == 0
    assert invoke("maintain", "--database-url", database_url)[0] == 0
    code, out = invoke("status", "--check-jobs", "--database-url", database_url)
    assert code == 0, out
    with psycopg.connect(database_url, autocommit=True) as conn:
        if read_status(conn).server.edition is not Edition.COMMUNITY:
            return  # no jobs on the Apache edition
        pause_jobs(conn)
        # maintain's last round failed, and its last success is three days old: whatever the
        # scheduler last did (it is paused now, and had done the work earlier if at all),
        # the work is not getting done.
        conn.execute(
            "UPDATE analytics_maintenance_runs SET ok = false, detail = 'simulated failure',"
            " finished_at = now(), last_success_at = now() - INTERVAL '3 days'"
        )
    code, out = invoke("status", "--check-jobs", "--database-url", database_url)
    assert code == 3, out
    assert out.count("job ") >= len(AGGREGATES) + 2
    assert invoke("status", "--database-url", database_url)[0] == 0


@pytest.mark.server
def test_worker_settings_that_cannot_run_the_jobs_are_reported(database_url: str) -> None:
    apply(database_url, (Phase.PRE,))
    with psycopg.connect(database_url, autocommit=True) as conn:
        processes, parallel, background = conn.execute(
            "SELECT current_setting('max_worker_processes')::int,"
            " current_setting('max_parallel_workers')::int,"
            " current_setting('timescaledb.max_background_workers')::int"
        ).fetchone() or (0, 0, 0)
        warnings = worker_warnings(conn, job_count=9)
    needed = background + parallel + 1
    expected_shortfall = processes < needed
    assert any(f"max_worker_processes = {processes}" in w for w in warnings) == expected_shortfall
    assert any("jobs due together" in w for w in warnings) == (2 <= background < 10)
