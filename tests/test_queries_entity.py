"""Per-entity behaviour (users, projects, cocoons) from the raw table: exact answers, UTC day
and hour boundaries, ties, malformed ids, validation, and use of the partial indexes."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest

from analytics_core import queries as q
from analytics_core.queries import Entity, EntityKind
from devtools.pytest_plugin import autocommit_connection_fixture, seeded_database_fixture
from devtools.seeding import EventRow as Row
from tests.expected import field_of
from tests.recording import recording_connection
from tests.synthetic import day_of as day_start

pytestmark = pytest.mark.server

T0 = day_start(datetime.now(UTC) - timedelta(days=10))


def at(day: int, hours: float = 0, **more: float) -> datetime:
    return T0 + timedelta(days=day, hours=hours, **more)


def ids(n: int, kind: str) -> list[uuid.UUID]:
    return [uuid.uuid5(uuid.NAMESPACE_URL, f"test:{kind}:{i}") for i in range(n)]


U1, U2, U3, U4, U5, U6 = ids(6, "user")
P1, P2 = ids(2, "project")
C1, C2 = ids(2, "cocoon")
# The upper-case spelling of P1 below must differ from the canonical one.
assert str(P1) != str(P1).upper()
LAST_MS = timedelta(milliseconds=1)


def task(**fields: Any) -> dict[str, Any]:
    return {"task_id": str(uuid.uuid4()), "command": "make", **fields}


def api() -> dict[str, Any]:
    return {"method": "GET", "route": "/x", "status_code": 200, "latency_ms": 3.5}


# U1's life, in insertion order (ids increase in this order).
U1_ROWS = [
    Row(
        at(0, 9, minutes=15),
        "task_created",
        task(user_id=str(U1), project_id=str(P1), cocoon_id=str(C1)),
        U1,
    ),
    Row(at(0, 9, minutes=45), "task_started", task(cocoon_id=str(C1)), U1),
    Row(at(0, 10), "task_completed", task(duration_ms=1000), U1),
    Row(at(1) - LAST_MS, "api_request", api(), U1),
    Row(at(1), "api_request", api(), U1),
    Row(
        at(1, 9, minutes=5),
        "project_updated",
        {"project_id": str(P1), "changed_fields": ["name"]},
        U1,
    ),
    Row(at(3, 14), "task_created", task(project_id=str(P1), cocoon_id=str(C2)), U1),
    Row(at(3, 14), "task_failed", task(error="boom"), U1),  # same instant as the one above
    Row(at(3, 14, minutes=30), "api_request", api(), U1),
    Row(at(5, 9), "api_request", api(), U1),
]
OTHER_ROWS = [
    Row(at(2, 12), "auth_login_attempt", {"method": "password", "success": True}, U2),
    Row(at(2, 8), "project_created", {"project_id": str(P1)}, U4),
    Row(at(4, 16), "task_created", task(project_id=str(P1)), U4),
    Row(at(4, 17), "task_created", task(project_id=str(P2)), U5),
    Row(at(4, 18), "task_created", task(project_id=str(P2)), U5),
    Row(at(3, 13), "cocoon_connected", {"cocoon_id": str(C2), "session_id": str(uuid.uuid4())}),
    Row(at(6, 1), "api_request", api(), U6),
    Row(at(6, 2), "api_request", api(), U6),
    # Ids written the way our client never writes them: they belong to no entity.
    Row(at(2, 9), "project_updated", {"project_id": str(P1).upper(), "changed_fields": ["x"]}, U5),
    Row(at(2, 9), "project_updated", {"project_id": 12345, "changed_fields": ["x"]}),
    Row(at(2, 9), "project_updated", {"project_id": 12345, "changed_fields": ["y"]}),
    Row(at(2, 9), "project_updated", {"project_id": 12345, "changed_fields": ["z"]}),
    Row(at(2, 10), "cocoon_connected", {"cocoon_id": "not-a-uuid"}),
    Row(at(2, 10), "cocoon_connected", {"cocoon_id": "not-a-uuid"}),
    Row(at(2, 10), "cocoon_connected", {"cocoon_id": "not-a-uuid"}),
    Row(at(2, 11), "task_created", task(project_id=None)),
    Row(at(2, 11), "project_created", ["a", "list", "not", "an", "object"]),
]
ROWS = U1_ROWS + OTHER_ROWS


url = seeded_database_fixture(ROWS)
conn = autocommit_connection_fixture("url")


def user(value: uuid.UUID) -> Entity:
    return Entity(EntityKind.USER, value)


def project(value: uuid.UUID) -> Entity:
    return Entity(EntityKind.PROJECT, value)


def cocoon(value: uuid.UUID) -> Entity:
    return Entity(EntityKind.COCOON, value)


def rows_of(entity: Entity) -> list[Row]:
    """The entity's rows, found the way the docs say: column, or exact canonical payload text."""
    if entity.kind is EntityKind.USER:
        return [r for r in ROWS if r.user_id == entity.id]
    return [r for r in ROWS if field_of(r, f"{entity.kind.value}_id") == str(entity.id)]


def record(row: Row) -> q.EventRecord:
    return q.EventRecord(row.at, row.event_type, row.service, row.user_id, row.event_id, row.data)


ENTITIES = [user(U1), user(U2), user(U3), project(P1), project(P2), cocoon(C1), cocoon(C2)]
ENTITY_IDS = ["U1", "U2", "U3-none", "P1", "P2", "C1", "C2"]


# --- Counts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("entity", ENTITIES, ids=ENTITY_IDS)
def test_event_type_counts_match_the_rows(conn: psycopg.Connection[Any], entity: Entity) -> None:
    counts = Counter(r.event_type for r in rows_of(entity))
    expected = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    assert q.event_type_counts(conn, entity) == tuple(q.EventTypeCount(t, c) for t, c in expected)


def test_user_summary(conn: psycopg.Connection[Any]) -> None:
    now = at(5, 9) + timedelta(days=2)
    summary = q.entity_summary(conn, user(U1), inactive_days=30, now=now)
    assert summary.total_events == 10
    assert summary.event_types == (
        q.EventTypeCount("api_request", 4),
        q.EventTypeCount("task_created", 2),
        q.EventTypeCount("project_updated", 1),
        q.EventTypeCount("task_completed", 1),
        q.EventTypeCount("task_failed", 1),
        q.EventTypeCount("task_started", 1),
    )
    assert (summary.most_frequent, summary.least_frequent) == ("api_request", "project_updated")
    assert summary.first_event == record(U1_ROWS[0])
    assert summary.last_event == record(U1_ROWS[-1])
    assert (summary.days_since_last_activity, summary.inactive, summary.as_of) == (2, False, now)


def test_single_event_user(conn: psycopg.Connection[Any]) -> None:
    (only,) = rows_of(user(U2))
    summary = q.entity_summary(conn, user(U2), now=at(2, 12))
    assert summary.total_events == 1
    assert summary.most_frequent == summary.least_frequent == "auth_login_attempt"
    assert summary.first_event == summary.last_event == record(only)
    assert summary.days_since_last_activity == 0
    assert q.peak_hour(conn, user(U2)) == q.HourOfDayProfile(
        tuple(1 if h == 12 else 0 for h in range(24)), 12, 1
    )
    assert q.event_share(conn, user(U2), "auth_login_attempt") == q.EventShare(
        "auth_login_attempt", 1, 1, 1.0
    )


def test_entity_without_events(conn: psycopg.Connection[Any]) -> None:
    nobody = user(U3)
    summary = q.entity_summary(conn, nobody, now=at(9))
    assert (
        summary.total_events,
        summary.event_types,
        summary.most_frequent,
        summary.least_frequent,
        summary.first_event,
        summary.last_event,
        summary.days_since_last_activity,
        summary.inactive,
    ) == (0, (), None, None, None, None, None, True)
    assert q.top_event_types(conn, nobody) == ()
    assert q.first_event(conn, nobody) is None and q.last_event(conn, nobody) is None
    assert q.days_since_last_activity(conn, nobody, now=at(9)) is None
    assert q.is_inactive(conn, nobody, 1, now=at(9)) is True
    assert q.has_done(conn, nobody, "api_request") is False
    assert q.event_share(conn, nobody, "api_request") == q.EventShare("api_request", 0, 0, None)
    assert q.activity_log(conn, nobody) == ()
    assert q.daily_event_counts(conn, nobody, 3, now=at(9)) == tuple(
        q.DayCount((T0 + timedelta(days=d)).date(), 0) for d in (7, 8, 9)
    )
    assert q.peak_hour(conn, nobody) == q.HourOfDayProfile((0,) * 24, None, 0)


def test_top_event_types_and_share(conn: psycopg.Connection[Any]) -> None:
    assert q.top_event_types(conn, user(U1), 2) == (
        q.EventTypeCount("api_request", 4),
        q.EventTypeCount("task_created", 2),
    )
    assert q.event_share(conn, user(U1), "api_request") == q.EventShare("api_request", 4, 10, 0.4)
    assert q.event_share(conn, user(U1), "cocoon_claimed") == q.EventShare(
        "cocoon_claimed", 0, 10, 0.0
    )
    window = q.TimeWindow(at(3), at(4))
    assert q.event_share(conn, user(U1), "task_failed", window) == q.EventShare(
        "task_failed", 1, 3, 1 / 3
    )
    assert q.top_event_types(conn, user(U1), 1, window) == (q.EventTypeCount("api_request", 1),)


def test_has_done(conn: psycopg.Connection[Any]) -> None:
    assert q.has_done(conn, user(U1), "task_failed") is True
    assert q.has_done(conn, user(U1), "cocoon_claimed") is False
    assert q.has_done(conn, project(P1), "project_created") is True
    assert q.has_done(conn, project(P2), "project_created") is False


def test_counts_between_instants_are_half_open(conn: psycopg.Connection[Any]) -> None:
    u1 = user(U1)
    # The last millisecond of day 0 and the first instant of day 1.
    assert q.count_between(conn, u1, q.TimeWindow(at(1) - LAST_MS, at(1))) == 1
    assert q.count_between(conn, u1, q.TimeWindow(at(1), at(1, 9, minutes=5))) == 1
    assert q.count_between(conn, u1, q.TimeWindow(at(1), at(1, 9, minutes=5, microseconds=1))) == 2
    assert q.count_between(conn, u1, q.TimeWindow(at(0), at(6))) == 10
    assert q.count_between(conn, u1, q.TimeWindow(at(0), at(6)), "api_request") == 4
    assert q.count_between(conn, u1, q.TimeWindow(at(6), at(7))) == 0
    assert q.count_between(conn, project(P1), q.TimeWindow(at(2), at(5))) == 3


# --- Time --------------------------------------------------------------------------------------


def test_first_last_and_days_since(conn: psycopg.Connection[Any]) -> None:
    u1 = user(U1)
    assert q.first_event(conn, u1) == record(U1_ROWS[0])
    assert q.last_event(conn, u1) == record(U1_ROWS[-1])
    last = U1_ROWS[-1].at
    assert q.days_since_last_activity(conn, u1, now=last) == 0
    assert q.days_since_last_activity(conn, u1, now=last + timedelta(days=2) - LAST_MS) == 1
    assert q.days_since_last_activity(conn, u1, now=last + timedelta(days=2)) == 2
    assert q.days_since_last_activity(conn, u1, now=last - timedelta(days=1)) == 0
    # The project's first event is U1's task; its last is U4's.
    assert q.first_event(conn, project(P1)) == record(U1_ROWS[0])
    assert q.last_event(conn, project(P1)) == record(OTHER_ROWS[2])


def test_inactive_for_n_days(conn: psycopg.Connection[Any]) -> None:
    u1, last = user(U1), U1_ROWS[-1].at
    # An event exactly N days before now still counts as activity.
    assert q.is_inactive(conn, u1, 2, now=last + timedelta(days=2)) is False
    assert q.is_inactive(conn, u1, 2, now=last + timedelta(days=2, microseconds=1)) is True
    summary = q.entity_summary(
        conn, u1, inactive_days=2, now=last + timedelta(days=2, microseconds=1)
    )
    assert summary.inactive is True and summary.inactive_days == 2


def test_activity_log_is_newest_first_with_payloads(conn: psycopg.Connection[Any]) -> None:
    u1 = user(U1)
    assert q.activity_log(conn, u1, 3) == tuple(record(r) for r in U1_ROWS[:-4:-1])
    # Same instant: the later insert is the newer event.
    older = q.activity_log(conn, u1, 3, before=U1_ROWS[8].at)
    assert older == (record(U1_ROWS[7]), record(U1_ROWS[6]), record(U1_ROWS[5]))
    assert older[0].data == U1_ROWS[7].data
    assert q.activity_log(conn, u1, 50) == tuple(record(r) for r in reversed(U1_ROWS))


def test_events_per_day_are_utc_days_zero_filled(conn: psycopg.Connection[Any]) -> None:
    daily = q.daily_event_counts(conn, user(U1), 7, now=at(5, 12))
    assert daily == tuple(
        q.DayCount((T0 + timedelta(days=d)).date(), n)
        for d, n in [(-1, 0), (0, 4), (1, 2), (2, 0), (3, 3), (4, 0), (5, 1)]
    )
    # Events after now's day are not counted; now's day is.
    assert q.daily_event_counts(conn, user(U1), 1, now=at(0)) == (q.DayCount(T0.date(), 4),)
    assert q.daily_event_counts(conn, user(U1), 2, now=at(4)) == (
        q.DayCount(at(3).date(), 3),
        q.DayCount(at(4).date(), 0),
    )


def test_peak_hour_is_utc(conn: psycopg.Connection[Any]) -> None:
    hours = Counter(r.at.hour for r in U1_ROWS)
    profile = q.peak_hour(conn, user(U1))
    assert profile.counts == tuple(hours.get(h, 0) for h in range(24))
    assert (profile.peak_hour, profile.peak_count) == (9, 4)
    assert profile.counts[23] == 1 and profile.counts[0] == 1
    windowed = q.peak_hour(conn, user(U1), q.TimeWindow(at(3), at(4)))
    assert (windowed.peak_hour, windowed.peak_count) == (14, 3)
    # Ties go to the earliest hour.
    assert q.peak_hour(conn, user(U6)).peak_hour == 1


def test_answers_do_not_depend_on_the_session_time_zone(url: str) -> None:
    with (
        psycopg.connect(url, autocommit=True) as plain,
        psycopg.connect(url, autocommit=True) as kolkata,
    ):
        kolkata.execute("SET TimeZone = 'Asia/Kolkata'")
        for c in (plain, kolkata):
            assert q.peak_hour(c, user(U1)).peak_hour == 9
            assert q.daily_event_counts(c, user(U1), 7, now=at(5, 12))[1] == q.DayCount(
                T0.date(), 4
            )
            assert q.first_event(c, user(U1)) == record(U1_ROWS[0])
            assert q.first_event(c, user(U1)).timestamp.tzinfo is UTC  # type: ignore[union-attr]


# --- Across entities ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(EntityKind))
def test_leaderboard(conn: psycopg.Connection[Any], kind: EntityKind) -> None:
    window = q.TimeWindow(at(0), at(7))
    counts: Counter[uuid.UUID] = Counter()
    last: dict[uuid.UUID, datetime] = {}
    for r in ROWS:
        if kind is EntityKind.USER:
            key = r.user_id
        else:
            text = field_of(r, f"{kind.value}_id")
            # Only the canonical spelling names an entity.
            key = uuid.UUID(text) if _is_uuid(text) and str(uuid.UUID(text)) == text else None
        if key is not None:
            counts[key] += 1
            last[key] = max(last.get(key, r.at), r.at)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
    assert q.leaderboard(conn, kind, window, limit=10) == tuple(
        q.LeaderboardEntry(rank, Entity(kind, key), count, last[key])
        for rank, (key, count) in enumerate(ranked, start=1)
    )
    assert q.leaderboard(conn, kind, window, limit=1) == q.leaderboard(conn, kind, window)[:1]


def _is_uuid(text: Any) -> bool:
    try:
        uuid.UUID(text)
    except (ValueError, TypeError, AttributeError):
        return False
    return True


def test_leaderboard_literal_ranks(conn: psycopg.Connection[Any]) -> None:
    board = q.leaderboard(conn, EntityKind.PROJECT, q.TimeWindow(at(0), at(7)))
    # P1: U1's three, U4's two; its upper-case spelling and the number 12345 belong to none.
    assert [(e.rank, e.entity.id, e.events) for e in board] == [(1, P1, 5), (2, P2, 2)]
    cocoons = q.leaderboard(conn, EntityKind.COCOON, q.TimeWindow(at(0), at(7)))
    assert [(e.entity.id, e.events) for e in cocoons] == sorted(
        [(C1, 2), (C2, 2)], key=lambda item: str(item[0])
    )
    assert q.leaderboard(conn, EntityKind.USER, q.TimeWindow(at(8), at(9))) == ()


# --- Indexes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entity", "index"),
    [
        (user(U1), "analytics_events_user_time_idx"),
        (project(P1), "analytics_events_project_time_idx"),
        (cocoon(C1), "analytics_events_cocoon_time_idx"),
    ],
    ids=["user", "project", "cocoon"],
)
def test_entity_queries_can_use_the_partial_index(url: str, entity: Entity, index: str) -> None:
    with recording_connection(url) as (conn, executed):
        q.event_type_counts(conn, entity)
        q.activity_log(conn, entity, 5)
        q.count_between(conn, entity, q.TimeWindow(at(0), at(3)))
        q.has_done(conn, entity, "task_created")
        statements = list(executed)
        # With sequential scans priced out, a plan that still avoids the index would mean
        # the WHERE clause does not imply the index's predicate.
        conn.execute("SET enable_seqscan = off")
        for statement in statements:
            plan = statement.plan(conn)
            assert index in plan, plan
            assert "Seq Scan" not in plan, plan


# --- Validation --------------------------------------------------------------------------------


def test_entities_are_validated() -> None:
    assert Entity.parse("project", str(P1).upper()) == project(P1)
    assert Entity.parse("cocoon", str(C1).replace("-", "")).id == C1
    with pytest.raises(ValueError, match=r"user id 'nope' is not a UUID \(expected e\.g\. "):
        Entity.parse("user", "nope")
    with pytest.raises(
        ValueError, match="unknown entity kind 'team': expected one of user, project, cocoon"
    ):
        Entity.parse("team", str(U1))
    assert Entity.parse("user", str(U1)).to_json() == {"kind": "user", "id": str(U1)}


def test_upper_case_ids_from_callers_are_found(conn: psycopg.Connection[Any]) -> None:
    assert (
        q.count_between(conn, Entity.parse("project", str(P1).upper()), q.TimeWindow(at(0), at(7)))
        == 5
    )


def test_bad_arguments_raise_clear_errors(conn: psycopg.Connection[Any]) -> None:
    u1 = user(U1)
    naive = datetime(2024, 1, 1)
    with pytest.raises(ValueError, match="limit must be a whole number of at least 1, got 0"):
        q.top_event_types(conn, u1, 0)
    with pytest.raises(ValueError, match="limit must be"):
        q.activity_log(conn, u1, -1)
    with pytest.raises(ValueError, match="limit must be"):
        q.leaderboard(conn, EntityKind.USER, q.TimeWindow(at(0), at(1)), 0)
    with pytest.raises(ValueError, match="days must be a whole number of at least 1, got 0"):
        q.daily_event_counts(conn, u1, 0)
    with pytest.raises(ValueError, match="days must be"):
        q.is_inactive(conn, u1, 0)
    with pytest.raises(ValueError, match="inactive_days must be"):
        q.entity_summary(conn, u1, inactive_days=0)
    with pytest.raises(ValueError, match="now is a naive datetime"):
        q.days_since_last_activity(conn, u1, now=naive)
    with pytest.raises(ValueError, match="before is a naive datetime"):
        q.activity_log(conn, u1, before=naive)
    with pytest.raises(ValueError, match="empty or inverted window"):
        q.count_between(conn, u1, q.TimeWindow(at(2), at(1)))


def test_defaults_use_the_database_clock(conn: psycopg.Connection[Any]) -> None:
    (today,) = conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()  # type: ignore[misc]
    daily = q.daily_event_counts(conn, user(U1), 11)
    assert daily[-1].day == today
    assert daily[0].day == today - timedelta(days=10) == date.fromordinal(today.toordinal() - 10)
    assert sum(d.count for d in daily) == 10
    assert q.days_since_last_activity(conn, user(U1)) == (
        datetime.now(UTC) - U1_ROWS[-1].at
    ) // timedelta(days=1)
