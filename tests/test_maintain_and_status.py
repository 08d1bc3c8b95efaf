"""`maintain` and `status` on each edition: the Apache fallback (refresh the views, drop
expired chunks) on the server engine, the policy jobs and their status on the Community one."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import psycopg
import pytest
from typer.testing import CliRunner

from analytics_core.cli.migrate import app
from analytics_core.migrate import Edition, maintain, read_status
from analytics_core.schema import AGGREGATES
from tests.engines import SqlSession
from tests.engines.psycopg_shim import PsycopgShim
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
    users = {str(r.user_id) for r in recent.rows if r.user_id and day_of(r.timestamp) == last_day}
    return data, len(expired.rows), len(users)


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout + result.stderr


@pytest.mark.server
def test_maintain_on_the_server_engine(database_url: str) -> None:
    assert invoke("all", "--database-url", database_url)[0] == 0
    data, expired, last_day_users = history()
    expired_days = {day_of(r.timestamp) for r in data.rows if r.timestamp < NOW - timedelta(90)}
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
                "drop chunks of analytics_events older than 90 days"
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
