"""Tunable settings that deploys reconcile: retention, compression delay, refresh window and
schedule, chunk interval. Options and environment variables, stored for later deploys, the
jobs (Community) and upkeep (Apache) following them, ``status`` showing them, and a lowered
retention refused until confirmed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from analytics_core.cli.migrate import app as migrate_app
from analytics_core.migrate import Edition
from analytics_core.migrate.drift import check_schema
from analytics_core.migrate.settings import (
    RetentionDropRefused,
    Setting,
    effective_settings,
    parse_interval,
    plan_settings,
    reconcile_settings,
    requested_settings,
)
from analytics_core.schema import AGGREGATES, EVENTS_TABLE
from devtools.psycopg_shim import PsycopgShim
from devtools.seeding import EventRow, insert
from devtools.sql_session import SqlSession
from tests.test_apache_aggregates import require_apache
from tests.test_schema_community import apply_migrations

NO_URL_ENV = {"DATABASE_URL": "", "PLATFORM_DATABASE_URL": "", "ANALYTICS_MIGRATE_DATABASE_URL": ""}
NOW = datetime.now(UTC)


def migrate(*args: str, url: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        migrate_app, [*args, "--database-url", url], env={**NO_URL_ENV, **(env or {})}
    )
    return result.exit_code, result.stdout, result.stderr


def one_line(text: str) -> str:
    return " ".join(text.split())


# --- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("365 days", timedelta(days=365)),
        ("2w", timedelta(weeks=2)),
        ("12h", timedelta(hours=12)),
        ("30 minutes", timedelta(minutes=30)),
    ],
)
def test_durations_are_read_in_the_units_people_write(text: str, expected: timedelta) -> None:
    assert parse_interval(text, "--retention") == expected


@pytest.mark.parametrize(
    "text", ["90", "ninety days", "-3d", "1.5d", "10s", "40000d", "3 fortnights"]
)
def test_a_duration_that_is_not_one_is_refused_by_name(text: str) -> None:
    with pytest.raises(ValueError, match="--retention"):
        parse_interval(text, "--retention")


def test_the_option_wins_over_the_environment_variable() -> None:
    env = {"ANALYTICS_RETENTION": "180d", "ANALYTICS_CHUNK_INTERVAL": "12h"}
    requested = requested_settings({Setting.RETENTION: "365d"}, env)
    assert requested[Setting.RETENTION].value == timedelta(days=365)
    assert requested[Setting.RETENTION].source == "--retention"
    assert requested[Setting.CHUNK_INTERVAL].value == timedelta(hours=12)
    assert requested[Setting.CHUNK_INTERVAL].source == "$ANALYTICS_CHUNK_INTERVAL"
    assert Setting.COMPRESS_AFTER not in requested


# --- Community edition: the policy jobs follow -------------------------------------------------


@pytest.mark.community
def test_changing_each_setting_changes_the_jobs_and_is_not_drift(
    community_session: SqlSession,
) -> None:
    apply_migrations(community_session, Edition.COMMUNITY)
    conn: Any = PsycopgShim(community_session)
    wanted = {
        Setting.RETENTION: "365d",
        Setting.COMPRESS_AFTER: "3d",
        Setting.REFRESH_START_OFFSET: "7d",
        Setting.REFRESH_END_OFFSET: "2h",
        Setting.REFRESH_SCHEDULE: "30m",
        Setting.CHUNK_INTERVAL: "12h",
    }
    changes = reconcile_settings(conn, Edition.COMMUNITY, requested_settings(wanted, {}))
    assert {change.setting for change in changes} == set(wanted)

    jobs = community_session.fetch(
        "SELECT j.proc_name, coalesce(c.view_name, j.hypertable_name) AS relation,"
        " j.schedule_interval::text AS every, j.config::text AS config"
        " FROM timescaledb_information.jobs j"
        " LEFT JOIN timescaledb_information.continuous_aggregates c"
        "   ON c.materialization_hypertable_name = j.hypertable_name"
        " WHERE j.proc_name IN ('policy_compression', 'policy_retention',"
        " 'policy_refresh_continuous_aggregate')"
    )
    by_kind = {(job["proc_name"], job["relation"]): job for job in jobs}
    assert len(jobs) == 2 + len(AGGREGATES)  # replaced, never added beside the old ones
    assert json.loads(by_kind[("policy_retention", EVENTS_TABLE)]["config"])["drop_after"] in (
        "365 days",
        "1 year 5 days",
    )
    assert (
        json.loads(by_kind[("policy_compression", EVENTS_TABLE)]["config"])["compress_after"]
        == "3 days"
    )
    for aggregate in AGGREGATES:
        job = by_kind[("policy_refresh_continuous_aggregate", aggregate.name)]
        config = json.loads(job["config"])
        assert (config["start_offset"], config["end_offset"], job["every"]) == (
            "7 days",
            "02:00:00",
            "00:30:00",
        )
    (chunk,) = community_session.fetch(
        "SELECT time_interval::text AS t FROM timescaledb_information.dimensions"
        f" WHERE hypertable_name = '{EVENTS_TABLE}'"
    )
    assert chunk["t"] == "12:00:00"
    assert check_schema(conn, Edition.COMMUNITY, pre_applied=True, post_applied=True) == ()

    # Stored: a later reconcile that asks for nothing keeps every value.
    assert reconcile_settings(conn, Edition.COMMUNITY, {}) == []
    effective = effective_settings(conn)
    assert effective[Setting.RETENTION].value == timedelta(days=365)
    assert effective[Setting.RETENTION].source.startswith("stored (--retention, ")


@pytest.mark.community
def test_lowering_retention_over_data_is_refused_until_confirmed(
    community_session: SqlSession,
) -> None:
    apply_migrations(community_session, Edition.COMMUNITY)
    community_session.execute(
        f'INSERT INTO {EVENTS_TABLE} ("timestamp", event_type, service, data)'
        " SELECT now() - g * interval '1 day', 'task_created', 'platform', '{}'::jsonb"
        " FROM generate_series(1, 60) g"
    )
    conn: Any = PsycopgShim(community_session)
    lower = requested_settings({Setting.RETENTION: "30d"}, {})
    (change,) = plan_settings(conn, lower)
    assert change.loses is not None and "row(s)" in change.loses
    with pytest.raises(RetentionDropRefused, match=r"from 90d to 30d drops .* chunk"):
        reconcile_settings(conn, Edition.COMMUNITY, lower)
    assert effective_settings(conn)[Setting.RETENTION].value == timedelta(days=90)

    reconcile_settings(conn, Edition.COMMUNITY, lower, allow_retention_drop=True)
    assert effective_settings(conn)[Setting.RETENTION].value == timedelta(days=30)
    # Raising it again loses nothing and needs no confirmation.
    reconcile_settings(conn, Edition.COMMUNITY, requested_settings({Setting.RETENTION: "400d"}, {}))
    assert effective_settings(conn)[Setting.RETENTION].value == timedelta(days=400)


# --- a server (the Apache edition locally): the command line, upkeep, status -------------------


@pytest.mark.server
def test_deploys_change_settings_status_shows_them_and_maintain_follows(database_url: str) -> None:
    code, out, err = migrate("all", "--retention", "30d", url=database_url)
    assert code == 0, err  # a fresh database: nothing to lose
    code, out, err = migrate(
        "post", "--chunk-interval", "12h", url=database_url, env={"ANALYTICS_RETENTION": "45d"}
    )
    assert code == 0, err
    assert "--chunk-interval: 1d -> 12h (--chunk-interval)" in out
    assert "--retention: 30d -> 45d ($ANALYTICS_RETENTION)" in out

    code, out, err = migrate("status", "--json", url=database_url)
    assert code == 0, out + err
    settings = json.loads(out)["settings"]
    assert settings["retention"]["value"] == "45d"
    assert settings["retention"]["source"].startswith("stored ($ANALYTICS_RETENTION, ")
    assert settings["chunk_interval"]["value"] == "12h"
    assert settings["compress_after"] == {"value": "1w", "source": "default"}
    code, out, _ = migrate("status", url=database_url)
    assert "--retention" in out and "45d" in out

    # A deploy without options keeps them; retention follows in maintain.
    assert migrate("all", url=database_url)[0] == 0
    insert(
        database_url,
        [
            EventRow(NOW - timedelta(days=days), "task_created", {"task_id": "t", "command": "c"})
            for days in (60, 50, 10)
        ],
    )
    code, out, err = migrate("maintain", "--json", url=database_url)
    assert code == 0, err
    with psycopg.connect(database_url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {EVENTS_TABLE}").fetchone()
        interval = conn.execute(
            "SELECT time_interval FROM timescaledb_information.dimensions"
            f" WHERE hypertable_name = '{EVENTS_TABLE}'"
        ).fetchone()
    assert row == (1,)  # 60 and 50 days back are past 45 days
    assert interval == (timedelta(hours=12),)

    code, out, err = migrate(
        "dry-run", "--retention", "5d", "--compress-after", "1w", url=database_url
    )
    assert code == 0, err
    assert one_line(out).startswith(
        "would change --retention: 45d -> 5d (--retention); drops 1 chunk(s) holding 1 row(s)"
    )
    assert "--compress-after" not in out  # 1w is its value already
    # Lowering it over data: refused, nothing changed, then confirmed.
    code, out, err = migrate("post", "--retention", "5d", url=database_url)
    assert code == 1
    message = one_line(err)
    assert "lowering retention from 45d to 5d drops 1 chunk(s) holding 1 row(s)" in message
    assert "--allow-retention-drop" in message
    code, out, err = migrate(
        "post", "--retention", "5d", "--allow-retention-drop", url=database_url
    )
    assert code == 0, err
    code, out, err = migrate("post", "--retention", "ninety", url=database_url)
    assert code == 2
    assert "--retention: 'ninety' is not a duration" in one_line(err)


@pytest.mark.server
def test_the_apache_refresh_window_follows_its_setting(database_url: str) -> None:
    assert migrate("all", url=database_url)[0] == 0
    require_apache(database_url)
    assert migrate("maintain", url=database_url)[0] == 0  # materialized up to an hour ago
    late = NOW - timedelta(days=5)  # past the 3-day window and, below, inside a 7-day one
    insert(database_url, [EventRow(late, "task_created", {"task_id": "t", "command": "c"})])
    with psycopg.connect(database_url, autocommit=True) as conn:
        # Make the event look old to the late-event check: only the window can pick it up.
        conn.execute("UPDATE analytics_aggregate_refreshes SET seen_id = 1e9, next_seen_id = 1e9")
    assert migrate("maintain", url=database_url)[0] == 0
    assert _created_on(database_url, late) == 0
    assert migrate("post", "--refresh-start-offset", "7d", url=database_url)[0] == 0
    assert migrate("maintain", url=database_url)[0] == 0
    assert _created_on(database_url, late) == 1


def _created_on(url: str, at: datetime) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(created_count), 0) FROM analytics_task_stats_daily_materialized"
            " WHERE day = time_bucket(INTERVAL '1 day', %s::timestamptz)",
            (at,),
        ).fetchone()
    assert row is not None
    return int(row[0])
