"""Exporting and erasing a person's events (``analytics-users``, ``migrate.personal_data``).

A person has events in raw chunks (compressed ones too, on the Community edition), in the
aggregates, and in daily-active-user rows older than the raw data that retention dropped.
After erasure nothing of theirs remains anywhere, the other users' values are unchanged,
counts of buckets whose raw data still exists no longer include them, counts of older
buckets stay, and an audit row without personal data records it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from analytics_core import AnalyticsClient
from analytics_core.cli.users import app as users_app
from analytics_core.events import TaskCreated
from analytics_core.migrate import Edition, Phase, apply
from analytics_core.migrate.personal_data import (
    erase_user,
    export_user_events,
    subject_hash,
    user_footprint,
)
from analytics_core.schema import AGGREGATES, ERASURES_TABLE, EVENTS_TABLE, RETENTION
from devtools.psycopg_shim import PsycopgShim
from devtools.seeding import EventRow, insert, insert_statement, migrate, refresh
from devtools.sql_session import SqlSession
from tests.test_schema_community import apply_migrations

NO_URL_ENV = {"DATABASE_URL": "", "PLATFORM_DATABASE_URL": "", "ANALYTICS_MIGRATE_DATABASE_URL": ""}
TODAY = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
ERASED = uuid.UUID("00000000-0000-4000-8000-00000000e4a5")
KEPT = uuid.UUID("00000000-0000-4000-8000-0000000000b0")
#: Days back the two users were active: beyond retention, compressed, and recent.
DAYS_BACK = (120, 100, 40, 20, 3, 1)
#: Of those, the days retention keeps the raw events of.
RAW_DAYS = 4


def history() -> list[EventRow]:
    rows = []
    for back in DAYS_BACK:
        at = TODAY - timedelta(days=back)
        for user, tasks in ((ERASED, 2), (KEPT, 3)):
            rows += [
                EventRow(at + timedelta(minutes=i), "task_created", _task(user, i), user_id=user)
                for i in range(tasks)
            ]
        rows.append(EventRow(at, "api_request", _request(), user_id=None))
    return rows


def _task(user: uuid.UUID, i: int) -> dict[str, Any]:
    return {"task_id": str(uuid.uuid4()), "user_id": str(user), "command": f"make {i}"}


def _request() -> dict[str, Any]:
    return {"method": "GET", "route": "/", "status_code": 200, "latency_ms": 12.5}


def users(url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(users_app, [*args, "--database-url", url], env=NO_URL_ENV)
    return result.exit_code, result.stdout, result.stderr


# --- Community edition: compressed chunks, continuous aggregates, retention -------------------


@pytest.mark.community
def test_erasing_on_the_community_edition_leaves_nothing_and_keeps_the_rest(
    community_session: SqlSession,
) -> None:
    session = community_session
    apply_migrations(session, Edition.COMMUNITY)
    session.execute(insert_statement(history()))
    for aggregate in AGGREGATES:
        session.execute(f"CALL refresh_continuous_aggregate('{aggregate.name}', NULL, NULL)")
    # Older than retention: the raw rows go, the aggregate rows stay. Then compress the rest
    # that is older than a week, as the policies would.
    session.execute(
        f"SELECT drop_chunks('{EVENTS_TABLE}', older_than => interval '{RETENTION.days} days')"
    )
    session.execute(
        f"SELECT compress_chunk(c) FROM show_chunks('{EVENTS_TABLE}',"
        " older_than => interval '7 days') c"
    )
    dau_before = _dau(session)
    tasks_before = _tasks_per_day(session)
    conn: Any = PsycopgShim(session)

    report = erase_user(conn, ERASED)

    assert report.raw_rows == 2 * RAW_DAYS
    assert report.aggregate_rows == 2  # DAU rows of days 120 and 100, beyond the raw data
    assert set(report.recomputed) == {a.name for a in AGGREGATES}
    (left,) = session.fetch(f"SELECT count(*) AS n FROM {EVENTS_TABLE} WHERE user_id = '{ERASED}'")
    assert left["n"] == 0
    assert _dau(session) == {row for row in dau_before if row[1] != str(ERASED)}
    assert all(row[1] != str(ERASED) for row in _dau(session))
    horizon = TODAY - timedelta(days=RETENTION.days)
    expected_tasks = {
        day: count - (2 if day >= horizon.strftime("%Y-%m-%d") else 0)
        for day, count in tasks_before.items()
    }
    assert _tasks_per_day(session) == expected_tasks
    (audit,) = session.fetch(f"SELECT * FROM {ERASURES_TABLE}")
    assert audit["subject_sha256"] == subject_hash(ERASED)
    assert (int(audit["raw_rows"]), int(audit["aggregate_rows"])) == (8, 2)
    assert str(ERASED) not in json.dumps(audit, default=str)

    again = erase_user(conn, ERASED)
    assert (again.raw_rows, again.aggregate_rows) == (0, 0)
    assert _tasks_per_day(session) == expected_tasks


def _dau(session: SqlSession) -> set[tuple[str, str, int]]:
    return {
        (str(row["day"])[:10], str(row["user_id"]), int(row["event_count"]))
        for row in session.fetch(
            "SELECT day, user_id, event_count FROM analytics_daily_active_users"
        )
    }


def _tasks_per_day(session: SqlSession) -> dict[str, int]:
    return {
        str(row["day"])[:10]: int(row["created_count"])
        for row in session.fetch("SELECT day, created_count FROM analytics_task_stats_daily")
    }


# --- A server: the command line, export, confirmation, audit ------------------------------------


@pytest.mark.server
def test_export_then_erase_from_the_command_line(database_url: str, tmp_path: Path) -> None:
    migrate(database_url)
    insert(database_url, history())
    refresh(database_url)  # maintain: the aggregates, then retention drops days 120 and 100
    with psycopg.connect(database_url, autocommit=True) as conn:
        footprint = user_footprint(conn, ERASED)
    assert (footprint.raw_rows, footprint.active_user_rows) == (2 * RAW_DAYS, len(DAYS_BACK))

    export = tmp_path / "erased.jsonl"
    code, _, err = users(database_url, "export", str(ERASED), "--output", str(export))
    assert code == 0, err
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert len(lines) == 2 * RAW_DAYS
    assert {line["user_id"] for line in lines} == {str(ERASED)}
    assert [line["timestamp"] for line in lines] == sorted(line["timestamp"] for line in lines)
    assert set(lines[0]) == {"event_id", "timestamp", "event_type", "service", "user_id", "data"}

    code, out, _ = users(database_url, "erase", str(ERASED))
    assert code == 1
    assert f"would erase user {ERASED}: {2 * RAW_DAYS} raw events" in " ".join(out.split())
    # Nothing changed: all six events of each day are still there.
    assert _count(database_url, f"SELECT count(*) FROM {EVENTS_TABLE}") == 6 * RAW_DAYS

    dau_before = _server_dau(database_url)
    tasks_before = _server_tasks(database_url)
    code, out, err = users(database_url, "erase", str(ERASED), "--yes", "--json")
    assert code == 0, err
    report = json.loads(out)
    # Days 120 and 100 outlived their raw data in the aggregates: the person's daily-active
    # rows go, the other user's stay, and so do those days' counts.
    assert report["aggregate_rows"] == 2
    assert _server_dau(database_url) == {row for row in dau_before if row[1] != str(ERASED)}
    horizon = (TODAY - timedelta(days=RETENTION.days)).strftime("%Y-%m-%d")
    assert _server_tasks(database_url) == {
        day: count - (2 if day >= horizon else 0) for day, count in tasks_before.items()
    }
    assert report["raw_rows"] == 2 * RAW_DAYS
    assert report["subject_sha256"] == subject_hash(ERASED)
    assert (
        _count(database_url, f"SELECT count(*) FROM {EVENTS_TABLE} WHERE user_id = '{ERASED}'") == 0
    )
    assert (
        _count(database_url, f"SELECT count(*) FROM {EVENTS_TABLE} WHERE user_id = '{KEPT}'")
        == 3 * RAW_DAYS
    )
    assert (
        _count(
            database_url,
            f"SELECT count(*) FROM analytics_daily_active_users WHERE user_id = '{ERASED}'",
        )
        == 0
    )
    assert _count(database_url, f"SELECT count(*) FROM {ERASURES_TABLE}") == 1

    code, out, err = users(database_url, "erase", str(ERASED), "--yes", "--json")
    assert (code, json.loads(out)["raw_rows"]) == (0, 0), err
    code, _, err = users(database_url, "export", str(ERASED))
    assert code == 0 and "exported 0 events" in err


@pytest.mark.server
def test_export_streams_from_one_snapshot(database_url: str) -> None:
    apply(database_url, (Phase.PRE,))
    insert(
        database_url,
        [
            EventRow(TODAY - timedelta(seconds=i), "task_created", _task(ERASED, i), user_id=ERASED)
            for i in range(2_500)
        ],
    )
    lines: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert export_user_events(conn, ERASED, lines.append) == 2_500
    assert len({json.loads(line)["event_id"] for line in lines}) == 2_500


@pytest.mark.server
@pytest.mark.parametrize("command", ["export", "erase"])
def test_a_user_id_that_is_not_a_uuid_is_refused(database_url: str, command: str) -> None:
    code, _, err = users(database_url, command, "alice@example.com")
    assert code == 2
    assert "'alice@example.com' is not a user id: expected a UUID" in " ".join(err.split())


def _server_dau(url: str) -> set[tuple[str, str, int]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT day, user_id, event_count FROM analytics_daily_active_users"
        ).fetchall()
    return {(f"{day:%Y-%m-%d}", str(user), int(count)) for day, user, count in rows}


def _server_tasks(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT day, created_count FROM analytics_task_stats_daily").fetchall()
    return {f"{day:%Y-%m-%d}": int(count) for day, count in rows}


def _count(url: str, query: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.server
def test_erasing_while_a_client_writes_loses_none_of_the_other_events(database_url: str) -> None:
    migrate(database_url)
    insert(database_url, history())
    refresh(database_url)
    client = AnalyticsClient(database_url, service="live", batch_size=50, flush_interval=0.05)
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            client.track(TaskCreated(task_id=uuid.uuid4(), user_id=KEPT, command="live"))
            time.sleep(0.0005)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            report = erase_user(conn, ERASED)
    finally:
        stop.set()
        writer.join()
    assert client.close(10) is True
    stats = client.stats
    assert (stats.dropped, stats.failed) == (0, 0)
    assert stats.written > 0
    assert report.raw_rows == 2 * RAW_DAYS
    assert (
        _count(database_url, f"SELECT count(*) FROM {EVENTS_TABLE} WHERE service = 'live'")
        == stats.written
    )
    assert (
        _count(database_url, f"SELECT count(*) FROM {EVENTS_TABLE} WHERE user_id = '{ERASED}'") == 0
    )
