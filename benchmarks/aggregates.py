"""Answers read from the aggregates, against the same answers computed from the raw events.

Two questions, each asked through the read side's own function:

- DAU, WAU and MAU for every day of the data (``queries.active_users``), from
  ``analytics_daily_active_users``;
- API latency per endpoint and hour, p95 included, for the last 7 days
  (``queries.api_latency``), from ``analytics_api_latency_hourly``.

The baseline asks the same function on a connection where a temporary view of the same name
shadows the aggregate (``pg_temp`` comes first on the search path). That view is the
aggregate's own defining query, read from the catalog, so the baseline computes the same
rows from ``analytics_events`` at query time, and nothing but where the rows come from
differs between the two sides. Their answers are asserted equal: exactly for counts, within
1e-9 relative for floating-point sums, means and percentiles.

The data is generated server-side (``INSERT ... SELECT`` over ``generate_series``, two
sessions in parallel), then the aggregates are refreshed and everything is analysed.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import psycopg
from psycopg import sql

from analytics_core.migrate import Edition
from analytics_core.queries import TimeWindow, active_users, api_latency
from analytics_core.schema import API_LATENCY_HOURLY, DAILY_ACTIVE_USERS, EVENTS_TABLE, Aggregate
from benchmarks.database import edition_of, refresh_aggregates
from benchmarks.figures import Spread
from benchmarks.settings import Settings

__all__ = ["TARGET_SPEEDUP", "AggregatesResult", "QueryResult", "generate_events", "run"]

#: Reading an answer from an aggregate must be at least this many times faster.
TARGET_SPEEDUP: Final = 100.0
_API_DAYS: Final = 7
#: Share of all users active on a given day; each day's active users are a different slice.
_ACTIVE_SHARE: Final = 0.35
_REL_TOL: Final = 1e-9
_GENERATE_SESSIONS: Final = 2

# One row per i in [lo, hi). Rows come in time order, `step` apart with jitter, so each
# session fills its one-day chunks one after the other, as a live system does. Users: each
# day a different slice of the population is active (DAU about 35 % of MAU), with a skew
# towards the slice's first users. Half the events are API requests: six endpoints, their
# own typical latency times a lognormal factor (sigma 0.6), statuses mostly 2xx.
_GENERATE: Final = """
INSERT INTO {table} ("timestamp", event_type, service, user_id, data)
SELECT ts, kind,
       CASE WHEN kind IN ('auth_login_attempt', 'auth_session_validated', 'auth_token_refresh')
                 THEN 'auth'
            WHEN kind IN ('task_started', 'cocoon_connected') THEN 'signaling'
            WHEN kind = 'webhook_received' THEN 'webhooks'
            ELSE 'platform' END,
       CASE WHEN kind IN ('database_query', 'webhook_received') THEN NULL ELSE uid END,
       CASE kind
         WHEN 'api_request' THEN jsonb_build_object(
           'method', method, 'route', route, 'status_code', status,
           'latency_ms', round((typical * exp(0.6 * z))::numeric, 2), 'user_id', uid)
         WHEN 'database_query' THEN jsonb_build_object(
           'operation', lower(method) || ' ' || route,
           'duration_ms', round((typical * 0.3 * exp(0.6 * z))::numeric, 2),
           'success', status <> 503, 'rows', floor(s * 50)::int)
         WHEN 'auth_login_attempt' THEN jsonb_build_object(
           'user_id', uid,
           'method', (ARRAY['password', 'email_code', 'oauth', 'sso', 'passkey'])[1 + r %% 5],
           'success', s >= 0.07,
           'failure_reason', CASE WHEN s < 0.07 THEN 'invalid_credentials' END)
         WHEN 'task_created' THEN jsonb_build_object(
           'task_id', md5('task-' || i)::uuid, 'user_id', uid,
           'project_id', md5('project-' || u)::uuid, 'cocoon_id', md5('cocoon-' || u)::uuid,
           'command', 'make test')
         WHEN 'task_started' THEN jsonb_build_object(
           'task_id', md5('task-' || i)::uuid, 'user_id', uid,
           'cocoon_id', md5('cocoon-' || u)::uuid)
         WHEN 'task_completed' THEN jsonb_build_object(
           'task_id', md5('task-' || i)::uuid, 'user_id', uid,
           'duration_ms', round(exp(9 + z))::bigint)
         WHEN 'task_failed' THEN jsonb_build_object(
           'task_id', md5('task-' || i)::uuid, 'user_id', uid, 'error', 'exit status 1',
           'duration_ms', round(exp(9 + z))::bigint)
         WHEN 'integration_used' THEN jsonb_build_object(
           'user_id', uid, 'provider', provider,
           'integration_id', md5('integration-' || u || provider)::uuid, 'action', 'sync',
           'duration_ms', 50 + floor(s * 2950)::int)
         WHEN 'cocoon_connected' THEN jsonb_build_object(
           'cocoon_id', md5('cocoon-' || u)::uuid, 'user_id', uid,
           'session_id', md5('session-' || i)::uuid)
         WHEN 'application_error' THEN jsonb_build_object(
           'error_kind', 'TimeoutError', 'message', 'upstream did not answer in time',
           'severity', 'error', 'user_id', uid, 'route', route)
         WHEN 'webhook_received' THEN jsonb_build_object(
           'provider', provider, 'delivery_id', provider || '-' || i, 'webhook_event', 'push')
         ELSE jsonb_build_object('user_id', uid, 'success', true)
       END
FROM (
  SELECT i, ts, u, md5('user-' || u)::uuid AS uid, r, s, z,
         (ARRAY['GET', 'POST', 'GET', 'GET', 'PATCH', 'POST'])[1 + r %% 6] AS method,
         (ARRAY['/tasks', '/tasks', '/tasks/{{id}}', '/projects', '/projects/{{id}}',
                '/integrations/{{provider}}/connect'])[1 + r %% 6] AS route,
         (ARRAY[35.0, 80.0, 20.0, 30.0, 60.0, 150.0])[1 + r %% 6] AS typical,
         (ARRAY['github', 'gitlab', 'slack', 'linear'])[1 + r %% 4] AS provider,
         CASE WHEN s < 0.80 THEN 200 WHEN s < 0.88 THEN 201 WHEN s < 0.93 THEN 404
              WHEN s < 0.96 THEN 422 WHEN s < 0.98 THEN 500 ELSE 503 END AS status,
         CASE WHEN k < 0.50 THEN 'api_request'        WHEN k < 0.65 THEN 'database_query'
              WHEN k < 0.71 THEN 'auth_login_attempt' WHEN k < 0.75 THEN 'auth_session_validated'
              WHEN k < 0.79 THEN 'task_created'       WHEN k < 0.83 THEN 'task_started'
              WHEN k < 0.86 THEN 'task_completed'     WHEN k < 0.87 THEN 'task_failed'
              WHEN k < 0.90 THEN 'integration_used'   WHEN k < 0.92 THEN 'cocoon_connected'
              WHEN k < 0.94 THEN 'application_error'  WHEN k < 0.97 THEN 'webhook_received'
              ELSE 'auth_token_refresh' END AS kind
  FROM (
    SELECT i,
           %(start)s::timestamptz + (i + random()) * %(step)s::interval AS ts,
           (floor(%(active)s * power(random(), 1.5))::int + (i * %(days)s / %(rows)s) * 131)
               %% %(users)s AS u,
           random() AS k,
           floor(random() * 1000)::int AS r,
           random() AS s,
           sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) AS z
    FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) AS i
  ) AS drawn
) AS shaped
"""


@dataclass(frozen=True, slots=True)
class QueryResult:
    name: str
    #: Seconds per answer, from the aggregate and from the raw table.
    aggregate_seconds: Spread
    raw_seconds: Spread
    #: Raw seconds over aggregate seconds, one sample per run.
    speedup: Spread
    #: Rows in the answer (days, or endpoint-hours), asserted equal on both sides.
    rows: int


@dataclass(frozen=True, slots=True)
class AggregatesResult:
    rows: int
    days: int
    users: int
    api_share: float
    #: Rows of ``analytics_daily_active_users``: one per active user and day.
    daily_user_rows: int
    generate_seconds: float
    refresh_seconds: float
    queries: tuple[QueryResult, ...]


def _generate(url: str, settings: Settings, start: datetime) -> None:
    """``settings.aggregate_rows`` events over ``aggregate_days`` days from ``start``."""
    generate_events(
        url,
        rows=settings.aggregate_rows,
        start=start,
        days=settings.aggregate_days,
        users=settings.aggregate_users,
        seed=settings.seed,
    )


def generate_events(
    url: str, *, rows: int, start: datetime, days: int, users: int, seed: int
) -> None:
    """``rows`` events over ``days`` days from ``start`` (the shape described above), written
    by ``_GENERATE_SESSIONS`` sessions in parallel, each seeded, each its own time range."""
    span = timedelta(days=days)
    statement = sql.SQL(_GENERATE).format(table=sql.Identifier(EVENTS_TABLE))
    errors: list[BaseException] = []

    def write(part: int) -> None:
        lo = rows * part // _GENERATE_SESSIONS
        hi = rows * (part + 1) // _GENERATE_SESSIONS
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("SELECT setseed(%s)", (((seed + part) % 1000) / 1000,))
                conn.execute(
                    statement,
                    {
                        "start": start,
                        "step": span / rows,
                        "rows": rows,
                        "days": days,
                        "users": users,
                        "active": max(1, int(users * _ACTIVE_SHARE)),
                        "lo": lo,
                        "hi": hi,
                    },
                )
        except BaseException as error:
            errors.append(error)

    threads = [
        threading.Thread(target=write, args=(part,), name=f"bench-generate-{part}")
        for part in range(_GENERATE_SESSIONS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _definition(conn: psycopg.Connection[Any], aggregate: Aggregate) -> str:
    """The aggregate's defining query over the raw table, names schema-qualified."""
    with conn.transaction():
        # Empty search path: the definition comes back with every name qualified, so it
        # means the same wherever it is used.
        conn.execute("SET LOCAL search_path = ''")
        if edition_of(conn) is Edition.COMMUNITY:
            row = conn.execute(
                "SELECT view_definition FROM timescaledb_information.continuous_aggregates"
                " WHERE view_name = %s",
                (aggregate.name,),
            ).fetchone()
        else:
            # The Apache edition's view adds materialized rows to a live part; its range
            # function is the defining query alone (inlined, so it plans like the query).
            row = (f"SELECT * FROM public.{aggregate.between_function}('-infinity', 'infinity')",)
    if row is None or row[0] is None:
        raise RuntimeError(f"no definition found for {aggregate.name}")
    return str(row[0]).strip().rstrip(";")


def _shadow(conn: psycopg.Connection[Any], aggregates: tuple[Aggregate, ...]) -> None:
    """Temporary views on ``conn`` named after ``aggregates``, computing them from raw rows."""
    for aggregate in aggregates:
        # The catalog's own text of a view the migrations created, not outside input.
        definition = _definition(conn, aggregate)
        conn.execute(
            sql.SQL("CREATE TEMPORARY VIEW {} AS {}").format(
                sql.Identifier(aggregate.name), sql.SQL(definition)
            )
        )


def _same(left: Any, right: Any) -> bool:
    """Equal, floats within ``_REL_TOL``: sums of doubles depend on the order rows come in."""
    if isinstance(left, float) and isinstance(right, float):
        return math.isclose(left, right, rel_tol=_REL_TOL, abs_tol=1e-9)
    if isinstance(left, tuple | list) and isinstance(right, tuple | list):
        return len(left) == len(right) and all(map(_same, left, right))
    if is_dataclass(left) and type(left) is type(right):
        return all(_same(getattr(left, f.name), getattr(right, f.name)) for f in fields(left))
    return bool(left == right)


def _measure(
    name: str,
    *,
    ask: Callable[[psycopg.Connection[Any]], Any],
    size: Callable[[Any], int],
    aggregate_conn: psycopg.Connection[Any],
    raw_conn: psycopg.Connection[Any],
    runs: int,
    log: Callable[[str], None],
) -> tuple[QueryResult, Any]:
    """Time ``ask`` on both connections, alternating; assert the answers equal. Returns the
    figures and the answer."""
    # One untimed round first, so both sides start with the same warm cache.
    expected = ask(aggregate_conn)
    computed = ask(raw_conn)
    if not _same(expected, computed):
        raise AssertionError(f"{name}: the aggregate and the raw table give different answers")
    if size(expected) == 0:
        raise AssertionError(f"{name}: empty answer; the generated data missed the window")
    timings: dict[str, list[float]] = {"aggregate": [], "raw": []}
    for index in range(runs):
        sides = ("aggregate", "raw") if index % 2 == 0 else ("raw", "aggregate")
        for side in sides:
            conn = aggregate_conn if side == "aggregate" else raw_conn
            start = time.perf_counter()
            answer = ask(conn)
            timings[side].append(time.perf_counter() - start)
            if not _same(expected, answer):
                raise AssertionError(f"{name}: the {side} answer changed between runs")
    result = QueryResult(
        name=name,
        aggregate_seconds=Spread.of(timings["aggregate"]),
        raw_seconds=Spread.of(timings["raw"]),
        speedup=Spread.of(
            [raw / agg for raw, agg in zip(timings["raw"], timings["aggregate"], strict=True)]
        ),
        rows=size(expected),
    )
    log(
        f"aggregates:   {name}: {result.aggregate_seconds.median * 1000:.1f} ms vs "
        f"{result.raw_seconds.median * 1000:.0f} ms raw ({result.speedup.median:.0f}x)"
    )
    return result, expected


def run(url: str, settings: Settings, log: Callable[[str], None]) -> AggregatesResult:
    """Generate the data in the migrated, empty database at ``url``; compare the answers."""
    # The data ends at today's UTC midnight: retention (run by maintain on the Apache
    # edition) drops chunks older than 90 days, so the data must be recent to survive it.
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=settings.aggregate_days)
    log(f"aggregates: generating {settings.aggregate_rows:,} events")
    began = time.perf_counter()
    _generate(url, settings, start)
    generate_seconds = time.perf_counter() - began
    log(f"aggregates:   {generate_seconds:.0f} s; refreshing the aggregates")
    began = time.perf_counter()
    refresh_aggregates(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
        row = conn.execute(
            sql.SQL(
                "SELECT count(*), count(*) FILTER (WHERE event_type = 'api_request'),"
                " (SELECT count(*) FROM {}) FROM {}"
            ).format(sql.Identifier(DAILY_ACTIVE_USERS.name), sql.Identifier(EVENTS_TABLE))
        ).fetchone()
    refresh_seconds = time.perf_counter() - began
    assert row is not None
    total, api_rows, daily_user_rows = row
    if total != settings.aggregate_rows:
        raise RuntimeError(f"generated {total} rows, expected {settings.aggregate_rows}")

    first: date = start.date()
    last: date = (end - timedelta(days=1)).date()
    all_days = TimeWindow.days(first, last)
    last_week = TimeWindow.days(last - timedelta(days=_API_DAYS - 1), last)
    with (
        psycopg.connect(url, autocommit=True) as aggregate_conn,
        psycopg.connect(url, autocommit=True) as raw_conn,
    ):
        _shadow(raw_conn, (DAILY_ACTIVE_USERS, API_LATENCY_HOURLY))
        sides: dict[str, Any] = {
            "aggregate_conn": aggregate_conn,
            "raw_conn": raw_conn,
            "runs": settings.aggregate_runs,
            "log": log,
        }
        dau, _ = _measure(
            f"DAU/WAU/MAU, {settings.aggregate_days} days: queries.active_users",
            ask=lambda conn: active_users(conn, all_days),
            size=lambda answer: len(answer.days),
            **sides,
        )
        api_query, _ = _measure(
            f"API latency p95 per endpoint and hour, {_API_DAYS} days: queries.api_latency",
            ask=lambda conn: api_latency(conn, last_week),
            size=lambda answer: len(answer.hourly),
            **sides,
        )
        queries = (dau, api_query)
    return AggregatesResult(
        rows=total,
        days=settings.aggregate_days,
        users=settings.aggregate_users,
        api_share=api_rows / total,
        daily_user_rows=daily_user_rows,
        generate_seconds=generate_seconds,
        refresh_seconds=refresh_seconds,
        queries=queries,
    )
