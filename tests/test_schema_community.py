"""The migrations on the Community edition: the exact SQL `analytics-migrate` runs, applied
in order, then checked from the catalog and against answers computed in Python."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from analytics_core.migrate import Edition, pause_jobs, plan
from analytics_core.schema import (
    AGGREGATES,
    COMPRESS_AFTER,
    EVENTS_TABLE,
    REFRESH_END_OFFSET,
    REFRESH_SCHEDULE,
    REFRESH_START_OFFSET,
    RETENTION,
)
from devtools.psycopg_shim import PsycopgShim
from devtools.sql_session import SqlSession
from tests.synthetic import day_of, hour_of, parsed, percentile_cont, product_history

pytestmark = pytest.mark.community

TODAY = day_of(datetime.now(UTC))
HISTORY_START = TODAY - timedelta(days=40)
HISTORY_DAYS = 35


def apply_migrations(session: SqlSession, edition: Edition = Edition.COMMUNITY) -> None:
    """Run what `analytics-migrate all` runs on an empty database of ``edition``.

    A transactional migration goes as one string (one implicit transaction, as yoyo wraps
    it); a non-transactional one statement by statement, as yoyo runs it.
    """
    for migration in plan(edition):
        run_statements(session, migration.statements, transactional=migration.transactional)


def run_statements(
    session: SqlSession, statements: tuple[str, ...], *, transactional: bool
) -> None:
    if transactional:
        session.execute(";\n".join(s.rstrip(";") for s in statements))
    else:
        for statement in statements:
            session.execute(statement)


def refresh_all(session: SqlSession) -> None:
    for aggregate in AGGREGATES:
        session.execute(f"CALL refresh_continuous_aggregate('{aggregate.name}', NULL, NULL)")


def jobs(session: SqlSession) -> list[dict[str, Any]]:
    return session.fetch(
        "SELECT job_id::int AS job_id, proc_name::text AS proc,"
        " coalesce(c.view_name::text, j.hypertable_name::text) AS relation,"
        " extract(epoch FROM schedule_interval)::float8 AS every_s, config::text AS config"
        " FROM timescaledb_information.jobs j"
        " LEFT JOIN timescaledb_information.continuous_aggregates c"
        "   ON c.materialization_hypertable_name = j.hypertable_name"
        " WHERE job_id >= 1000 ORDER BY job_id"
    )


@pytest.fixture
def migrated(community_session: SqlSession) -> SqlSession:
    apply_migrations(community_session)
    return community_session


def test_catalog_matches_the_design(migrated: SqlSession) -> None:
    aggregates = migrated.fetch(
        "SELECT view_name::text AS name, materialized_only"
        " FROM timescaledb_information.continuous_aggregates ORDER BY view_name"
    )
    assert [row["name"] for row in aggregates] == sorted(a.name for a in AGGREGATES)
    assert {row["materialized_only"] for row in aggregates} == {False}

    (dimension,) = migrated.fetch(
        "SELECT extract(epoch FROM time_interval)::float8 AS seconds, column_name::text AS col"
        " FROM timescaledb_information.dimensions WHERE hypertable_name = 'analytics_events'"
    )
    assert dimension == {"seconds": 86_400.0, "col": "timestamp"}

    settings = migrated.fetch(
        "SELECT attname::text AS col, segmentby_column_index AS seg,"
        " orderby_column_index AS ord, orderby_asc AS asc"
        " FROM timescaledb_information.compression_settings"
        " WHERE hypertable_name = 'analytics_events' ORDER BY attname"
    )
    assert settings == [
        {"col": "event_type", "seg": 1, "ord": None, "asc": None},
        {"col": "id", "seg": None, "ord": 2, "asc": False},
        {"col": "timestamp", "seg": None, "ord": 1, "asc": False},
    ]

    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for job in jobs(migrated):
        by_kind[job["proc"]].append(job)
    (compression,) = by_kind["policy_compression"]
    (retention,) = by_kind["policy_retention"]
    assert compression["relation"] == EVENTS_TABLE
    assert f'"compress_after": "{COMPRESS_AFTER.days} days"' in compression["config"]
    assert retention["relation"] == EVENTS_TABLE
    assert f'"drop_after": "{RETENTION.days} days"' in retention["config"]
    refresh = by_kind["policy_refresh_continuous_aggregate"]
    assert sorted(job["relation"] for job in refresh) == sorted(a.name for a in AGGREGATES)
    for job in refresh:
        assert job["every_s"] == REFRESH_SCHEDULE.total_seconds()
        assert f'"start_offset": "{REFRESH_START_OFFSET.days} days"' in job["config"]
        assert f'"end_offset": "{REFRESH_END_OFFSET.seconds // 3600:02d}:00:00"' in job["config"]


@pytest.fixture
def loaded(migrated: SqlSession) -> tuple[SqlSession, Any]:
    data = product_history(HISTORY_START, HISTORY_DAYS)
    migrated.execute(data.insert_sql())
    refresh_all(migrated)
    return migrated, data


def test_aggregates_are_materialized_not_computed_at_query_time(
    loaded: tuple[SqlSession, Any],
) -> None:
    session, _ = loaded
    for aggregate in AGGREGATES:
        (row,) = session.fetch(
            "SELECT _timescaledb_functions.to_timestamp("
            "  _timescaledb_functions.cagg_watermark(mat_hypertable_id))::text AS watermark"
            " FROM _timescaledb_catalog.continuous_agg"
            f" WHERE user_view_name = '{aggregate.name}'"
        )
        watermark = datetime.fromisoformat(str(row["watermark"]).replace(" ", "T"))
        # Materialized into the last day of history: the refresh stops at the newest data.
        assert watermark > HISTORY_START + timedelta(days=HISTORY_DAYS - 1), aggregate.name


def test_daily_wau_and_mau_are_exact_distinct_counts(loaded: tuple[SqlSession, Any]) -> None:
    session, data = loaded
    active: dict[datetime, set[str]] = defaultdict(set)
    for row in data.rows:
        if row.user_id is not None:
            active[day_of(row.at)].add(str(row.user_id))
    for day in (HISTORY_START + timedelta(days=n) for n in (0, 6, 20, HISTORY_DAYS - 1)):
        def users_between(first: datetime, last: datetime) -> int:
            return len(set().union(*(u for d, u in active.items() if first <= d <= last)))

        (row,) = session.fetch(
            "SELECT"
            f" count(DISTINCT user_id) FILTER (WHERE day = '{day.isoformat()}')::int AS dau,"
            f" count(DISTINCT user_id) FILTER (WHERE day > '{day.isoformat()}'::timestamptz"
            "   - interval '7 days')::int AS wau,"
            " count(DISTINCT user_id)::int AS mau"
            " FROM analytics_daily_active_users"
            f" WHERE day > '{day.isoformat()}'::timestamptz - interval '30 days'"
            f"   AND day <= '{day.isoformat()}'"
        )
        assert row == {
            "dau": len(active[day]),
            "wau": users_between(day - timedelta(days=6), day),
            "mau": users_between(day - timedelta(days=29), day),
        }


def test_api_latency_percentiles_and_error_counts_per_hour(
    loaded: tuple[SqlSession, Any],
) -> None:
    session, data = loaded
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for row, payload in parsed(r for r in data.rows if r.event_type == "api_request"):
        key = (hour_of(row.at).isoformat(), str(payload.get("method", "(unknown)")),
               payload["route"] if isinstance(payload.get("route"), str) else None)
        groups[key].append(payload)
    rows = session.fetch(
        "SELECT hour::text AS hour, method, route, request_count::int AS n,"
        " server_error_count::int AS e5, client_error_count::int AS e4,"
        " latency_p50_ms AS p50, latency_p95_ms AS p95, latency_p99_ms AS p99"
        " FROM analytics_api_latency_hourly WHERE route LIKE '/%' ORDER BY 1, 2, 3"
    )
    assert len(rows) == len([k for k in groups if k[2] is not None])
    for row in rows:
        hour = datetime.fromisoformat(str(row["hour"]).replace(" ", "T")).isoformat()
        payloads = groups[(hour, row["method"], row["route"])]
        latencies = [
            float(p["latency_ms"]) for p in payloads
            if isinstance(p["latency_ms"], int | float) and 0 <= p["latency_ms"] <= 1e15
        ]
        statuses = [p["status_code"] for p in payloads if isinstance(p["status_code"], int)]
        assert row["n"] == len(payloads)
        assert row["e5"] == sum(1 for s in statuses if s >= 500)
        assert row["e4"] == sum(1 for s in statuses if 400 <= s <= 499)
        for name, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            if latencies:
                assert float(row[name]) == pytest.approx(percentile_cont(latencies, fraction))
            else:
                assert row[name] is None


def test_task_counts_and_duration_percentiles_per_day(loaded: tuple[SqlSession, Any]) -> None:
    session, data = loaded
    by_day: dict[datetime, Counter[str]] = defaultdict(Counter)
    durations: dict[datetime, list[float]] = defaultdict(list)
    for row, payload in parsed(r for r in data.rows if r.event_type.startswith("task_")):
        day = day_of(row.at)
        by_day[day][row.event_type] += 1
        if row.event_type == "task_completed" and isinstance(payload["duration_ms"], int):
            durations[day].append(float(payload["duration_ms"]))
    rows = session.fetch(
        "SELECT day::text AS day, created_count::int AS created,"
        " completed_count::int AS completed, failed_count::int AS failed,"
        " duration_sum_ms AS total, duration_p50_ms AS p50, duration_p95_ms AS p95"
        " FROM analytics_task_stats_daily ORDER BY day"
    )
    assert len(rows) == len(by_day)
    for row in rows:
        day = datetime.fromisoformat(str(row["day"]).replace(" ", "T"))
        counts = by_day[day]
        assert (row["created"], row["completed"], row["failed"]) == (
            counts["task_created"], counts["task_completed"], counts["task_failed"],
        )
        if durations[day]:
            assert float(row["total"]) == pytest.approx(math.fsum(durations[day]))
            assert float(row["p50"]) == pytest.approx(percentile_cont(durations[day], 0.5))
            assert float(row["p95"]) == pytest.approx(percentile_cont(durations[day], 0.95))


def test_errors_cocoons_and_auth_counts(loaded: tuple[SqlSession, Any]) -> None:
    session, data = loaded
    expected_errors: Counter[str] = Counter()
    for row, payload in parsed(data.rows):
        if row.event_type == "application_error":
            expected_errors[payload["error_kind"]] += 1
        elif row.event_type == "task_failed":
            expected_errors["task_failed"] += 1
        elif row.event_type == "integration_error":
            expected_errors[payload["provider"]] += 1
        elif row.event_type == "oauth_flow_completed" and payload["success"] is False:
            expected_errors["oauth_flow_completed"] += 1
        elif row.event_type == "api_request" and isinstance(payload.get("status_code"), int) \
                and payload["status_code"] >= 500:
            expected_errors[f"http_{payload['status_code']}"] += 1
    rows = session.fetch(
        "SELECT error_kind, sum(error_count)::int AS n FROM analytics_errors_hourly"
        " GROUP BY error_kind"
    )
    assert {row["error_kind"]: row["n"] for row in rows} == dict(expected_errors)

    (cocoons,) = session.fetch(
        "SELECT count(DISTINCT cocoon_id)::int AS cocoons, sum(session_count)::int AS sessions,"
        " sum(connected_ms)::float8 AS connected FROM analytics_cocoon_activity_daily"
    )
    assert cocoons["sessions"] == HISTORY_DAYS  # the malformed cocoon id is not counted
    assert cocoons["connected"] == HISTORY_DAYS * 3_600_000.0

    expected_health: dict[str, Counter[str]] = defaultdict(Counter)
    for row, payload in parsed(data.rows):
        if row.event_type.startswith(("integration_", "oauth_")):
            kind = row.event_type
            if kind == "oauth_flow_completed":
                kind += ":ok" if payload["success"] else ":failed"
            expected_health[payload["provider"]][kind] += 1
    health = session.fetch(
        "SELECT provider, sum(used_count)::int AS used, sum(error_count)::int AS errors,"
        " sum(oauth_started_count)::int AS started, sum(oauth_succeeded_count)::int AS ok,"
        " sum(oauth_failed_count)::int AS failed"
        " FROM analytics_integration_health_daily GROUP BY provider"
    )
    assert {
        row["provider"]: (row["used"], row["errors"], row["started"], row["ok"], row["failed"])
        for row in health
    } == {
        provider: (c["integration_used"], c["integration_error"], c["oauth_flow_started"],
                   c["oauth_flow_completed:ok"], c["oauth_flow_completed:failed"])
        for provider, c in expected_health.items()
    }

    logins = [p for r, p in parsed(data.rows) if r.event_type == "auth_login_attempt"]
    (auth,) = session.fetch(
        "SELECT sum(attempt_count)::int AS attempts, sum(success_count)::int AS ok"
        " FROM analytics_auth_events_daily WHERE event_type = 'auth_login_attempt'"
    )
    assert auth == {"attempts": len(logins), "ok": sum(1 for p in logins if p["success"] is True)}


def test_policies_run_with_run_job_compress_and_expire_chunks(
    migrated: SqlSession,
) -> None:
    now = datetime.now(UTC)
    data = product_history(now - timedelta(days=120), 1, seed=1)
    recent = product_history(now - timedelta(days=10), 1, seed=2)
    data.rows.extend(recent.rows)
    migrated.execute(data.insert_sql())
    # On a real server the scheduler runs these jobs too; two compressions of one chunk at
    # once make one fail. Paused, only this test runs them (run_job ignores the pause).
    pause_jobs(cast(Any, PsycopgShim(migrated)))
    ids = {job["proc"]: job["job_id"] for job in jobs(migrated)}

    migrated.execute(f"CALL run_job({ids['policy_compression']})")
    (chunks,) = migrated.fetch(
        "SELECT count(*)::int AS n, count(*) FILTER (WHERE is_compressed)::int AS compressed"
        " FROM timescaledb_information.chunks WHERE hypertable_name = 'analytics_events'"
    )
    assert chunks["compressed"] == chunks["n"] > 0

    migrated.execute(f"CALL run_job({ids['policy_retention']})")
    (left,) = migrated.fetch(
        "SELECT count(*)::int AS n, min(\"timestamp\")::text AS oldest FROM analytics_events"
    )
    assert left["n"] == len(recent.rows)
