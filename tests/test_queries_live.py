"""Live metrics from the raw table: half-open minute windows, ties, the database's clock."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from analytics_core import queries as q
from analytics_core.migrate import Phase, apply
from devtools.pytest_plugin import autocommit_connection_fixture, seeded_database_fixture
from devtools.seeding import EventRow as Row
from tests.synthetic import day_of as day_start

pytestmark = pytest.mark.server

NOW = day_start(datetime.now(UTC)) - timedelta(days=1) + timedelta(hours=12)
US = timedelta(microseconds=1)
UA, UB, UC, UD, UE = (uuid.uuid5(uuid.NAMESPACE_URL, f"live:{n}") for n in "abcde")

ROWS = {
    "five_minutes_ago": Row(NOW - timedelta(minutes=5), "api_request", {}, UA),
    "just_before_five": Row(NOW - timedelta(minutes=5) - US, "task_created", {}, UB),
    "thirty_seconds": Row(NOW - timedelta(seconds=30), "api_request", {"n": 1}, UA),
    "one_minute_ago": Row(NOW - timedelta(minutes=1), "webhook_received", {}),
    "just_before_one": Row(NOW - timedelta(minutes=1) - US, "task_created", {}, UC),
    "now": Row(NOW, "api_request", {}, UD),
    "future": Row(NOW + timedelta(minutes=10), "api_request", {}, UE),
    "two_minutes": Row(NOW - timedelta(minutes=2), "task_created", {}, UC),
    "one_second": Row(NOW - timedelta(seconds=1), "auth_login_attempt", {"success": True}),
    "tie_first": Row(NOW - timedelta(minutes=10), "project_created", {"i": 1}, UB),
    "tie_second": Row(NOW - timedelta(minutes=10), "project_created", {"i": 2}, UB),
}


url = seeded_database_fixture(ROWS.values())
conn = autocommit_connection_fixture("url")


def record(name: str) -> q.EventRecord:
    r = ROWS[name]
    return q.EventRecord(r.at, r.event_type, r.service, r.user_id, r.event_id, r.data)


def window(minutes: int) -> q.TimeWindow:
    return q.TimeWindow(NOW - timedelta(minutes=minutes), NOW)


def test_active_users_counts_distinct_users_in_the_half_open_window(
    conn: psycopg.Connection[Any],
) -> None:
    # UA twice (in at exactly five minutes ago), UC once; UB a microsecond too early,
    # UD at `now` itself (excluded), UE in the future, and events without a user.
    assert q.live_active_users(conn, 5, now=NOW) == q.LiveCount(window(5), 2)
    assert q.live_active_users(conn, 1, now=NOW) == q.LiveCount(window(1), 1)
    assert q.live_active_users(conn, 6, now=NOW) == q.LiveCount(window(6), 3)


def test_events_in_the_last_minute(conn: psycopg.Connection[Any]) -> None:
    assert q.events_last_minute(conn, now=NOW) == q.LiveCount(window(1), 3)
    assert q.events_last_minute(conn, now=NOW + US) == q.LiveCount(
        q.TimeWindow(NOW + US - timedelta(minutes=1), NOW + US), 3
    )
    assert q.events_last_minute(conn, now=NOW - timedelta(hours=1)).count == 0


def test_top_event_types_now(conn: psycopg.Connection[Any]) -> None:
    top = q.top_event_types_now(conn, 5, now=NOW)
    assert top == q.LiveTopTypes(
        window(5),
        (
            q.EventTypeCount("api_request", 2),
            q.EventTypeCount("task_created", 2),
            q.EventTypeCount("auth_login_attempt", 1),
            q.EventTypeCount("webhook_received", 1),
        ),
    )
    assert q.top_event_types_now(conn, 5, limit=1, now=NOW).event_types == (
        q.EventTypeCount("api_request", 2),
    )


def test_recent_events_are_newest_first_with_payloads(conn: psycopg.Connection[Any]) -> None:
    assert q.recent_events(conn, 3) == (record("future"), record("now"), record("one_second"))
    everything = q.recent_events(conn, 100)
    assert len(everything) == len(ROWS)
    names = [
        "future",
        "now",
        "one_second",
        "thirty_seconds",
        "one_minute_ago",
        "just_before_one",
        "two_minutes",
        "five_minutes_ago",
        "just_before_five",
        "tie_second",
        "tie_first",
    ]
    assert everything == tuple(record(name) for name in names)
    assert everything[2].data == {"success": True}


def test_snapshot_is_taken_at_one_instant(conn: psycopg.Connection[Any]) -> None:
    snapshot = q.live_snapshot(conn, 5, 2, now=NOW)
    assert snapshot == q.LiveSnapshot(
        as_of=NOW,
        minutes=5,
        active_users=q.LiveCount(window(5), 2),
        events_last_minute=q.LiveCount(window(1), 3),
        top_event_types=q.top_event_types_now(conn, 5, 2, now=NOW),
        recent_events=(record("future"), record("now")),
    )
    document = json.loads(json.dumps(snapshot.to_json()))
    assert document["active_users"] == {
        "window": {"start": (NOW - timedelta(minutes=5)).isoformat(), "end": NOW.isoformat()},
        "count": 2,
    }
    assert document["recent_events"][1]["user_id"] == str(UD)


def test_defaults_use_the_database_clock(database_url: str) -> None:
    apply(database_url, (Phase.PRE,))
    with psycopg.connect(database_url, autocommit=True) as conn:
        empty = q.live_snapshot(conn)
        assert (
            empty.active_users.count,
            empty.events_last_minute.count,
            empty.top_event_types.event_types,
            empty.recent_events,
        ) == (0, 0, (), ())
        conn.execute(
            'INSERT INTO analytics_events ("timestamp", event_type, service, user_id, data) '
            "VALUES (statement_timestamp() - interval '2 seconds', 'api_request', 'api', %s, "
            "'{}')",
            (UA,),
        )
        snapshot = q.live_snapshot(conn)
        (db_now,) = conn.execute("SELECT statement_timestamp()").fetchone()  # type: ignore[misc]
    assert (snapshot.active_users.count, snapshot.events_last_minute.count) == (1, 1)
    assert snapshot.top_event_types.event_types == (q.EventTypeCount("api_request", 1),)
    assert snapshot.as_of.tzinfo is UTC
    assert timedelta(0) <= db_now - snapshot.as_of < timedelta(seconds=30)


def test_bad_arguments_raise_clear_errors(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(ValueError, match="minutes must be a whole number of at least 1, got 0"):
        q.live_active_users(conn, 0)
    with pytest.raises(ValueError, match="limit must be a whole number of at least 1, got 0"):
        q.top_event_types_now(conn, limit=0)
    with pytest.raises(ValueError, match="limit must be"):
        q.recent_events(conn, 0)
    with pytest.raises(ValueError, match="minutes must be"):
        q.live_snapshot(conn, minutes=-5)
    with pytest.raises(ValueError, match="now is a naive datetime"):
        q.events_last_minute(conn, now=datetime(2024, 1, 1))
