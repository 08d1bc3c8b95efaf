"""Scheduling the Apache edition's upkeep with pg_cron, on the local server engine, which
preloads it (Debian's postgresql-15-cron): `post --pg-cron` schedules it, `status` shows the
jobs and their last results, and a scheduled refresh runs by itself."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from typer.testing import CliRunner

from analytics_core.cli.migrate import app
from analytics_core.migrate import read_cron_jobs, schedule_upkeep, unschedule_upkeep
from analytics_core.migrate.runner import inspect_url
from analytics_core.schema import AGGREGATES, EVENTS_TABLE
from devtools import seeding
from devtools.pytest_plugin import FullTimescaleDB
from tests.synthetic import day_of, product_history

pytestmark = pytest.mark.server

# pg_cron 1.4 (Debian bookworm) schedules by the minute: a job due every minute starts
# within 60 s; its run then takes a second or two.
SCHEDULED_RUN_WAIT_S = 90


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def cron_url(database_url: str, full_timescaledb: FullTimescaleDB | None) -> Iterator[str]:
    """A fresh database on the local engine, its pg_cron jobs removed afterwards."""
    if full_timescaledb is not None:
        pytest.skip(
            f"needs the local server engine's pg_cron; the engines come from "
            f"{full_timescaledb.source}"
        )
    try:
        yield database_url
    finally:
        unschedule_upkeep(database_url)


def test_post_pg_cron_schedules_the_upkeep_and_status_shows_it(cron_url: str) -> None:
    code, out, err = invoke("all", "--pg-cron", "--json", "--database-url", cron_url)
    assert code == 0, err
    document = json.loads(out)
    database = cron_url.rsplit("/", 1)[1]
    assert [(job["name"], job["schedule"], job["command"]) for job in document["cron_jobs"]] == [
        (f"analytics-refresh {database}", "5 * * * *", "CALL analytics_refresh_aggregates()"),
        (
            f"analytics-retention {database}",
            "35 3 * * *",
            f"SELECT count(*) FROM drop_chunks('{EVENTS_TABLE}',"
            " older_than => analytics_setting('retention', INTERVAL '90 days'))",
        ),
    ]
    # Scheduling again updates the two jobs rather than adding more.
    assert invoke("post", "--pg-cron", "--database-url", cron_url)[0] == 0
    assert len(read_cron_jobs(cron_url)) == 2

    code, out, err = invoke("status", "--json", "--database-url", cron_url)
    assert code == 0, err
    jobs = json.loads(out)["cron_jobs"]
    assert [(job["name"], job["active"], job["last_status"]) for job in jobs] == [
        (f"analytics-refresh {database}", True, None),
        (f"analytics-retention {database}", True, None),
    ]
    code, out, _ = invoke("status", "--database-url", cron_url)
    assert "pg_cron jobs" in out and "analytics-refresh" in out

    assert unschedule_upkeep(cron_url) == 2
    assert read_cron_jobs(cron_url) == ()


def test_a_scheduled_refresh_runs_by_itself(cron_url: str) -> None:
    assert invoke("all", "--database-url", cron_url)[0] == 0
    seeding.insert(cron_url, product_history(day_of(datetime.now(UTC)) - timedelta(days=2), 3).rows)
    schedule_upkeep(cron_url, refresh_schedule="* * * * *")

    deadline = time.monotonic() + SCHEDULED_RUN_WAIT_S
    refreshed = 0
    while time.monotonic() < deadline:
        with psycopg.connect(cron_url, autocommit=True) as conn:
            (refreshed,) = conn.execute(
                "SELECT count(*) FROM analytics_aggregate_refreshes WHERE refreshed_at IS NOT NULL"
            ).fetchone() or (0,)
        (refresh, _) = read_cron_jobs(cron_url)
        if refreshed == len(AGGREGATES) and refresh.last_status == "succeeded":
            break
        time.sleep(1)
    assert refreshed == len(AGGREGATES), f"no scheduled refresh within {SCHEDULED_RUN_WAIT_S}s"
    assert refresh.last_status == "succeeded", refresh
    assert refresh.last_run_at is not None

    code, out, err = invoke("status", "--json", "--database-url", cron_url)
    assert code == 0, err
    document = json.loads(out)
    assert all(a["watermark"] and a["last_refreshed_at"] for a in document["aggregates"])
    assert document["cron_jobs"][0]["last_status"] == "succeeded"


def test_pg_cron_where_it_is_not_loaded_is_refused_before_anything_is_applied(
    no_preload_server_url: str,
) -> None:
    code, _, err = invoke("all", "--pg-cron", "--database-url", no_preload_server_url)
    assert code == 2
    assert "pg_cron is not loaded" in err and "nothing was applied" in err
    with psycopg.connect(no_preload_server_url, autocommit=True) as conn:
        (ledger,) = conn.execute("SELECT to_regclass('_yoyo_migration')").fetchone() or (None,)
    assert ledger is None
    assert inspect_url(no_preload_server_url).timescaledb_installed is None
