"""Product metrics answered from the seven aggregates, never from the raw events table.

Every function reads exactly one aggregate (named in its docstring) and takes a
:class:`TimeWindow`. Aggregates hold whole UTC buckets (a day from 00:00 UTC, an hour from
hh:00 UTC), so a function answers for every bucket the window overlaps; the window it
actually covers is returned as ``window`` in the result.

How fresh the answers are depends on the edition: on the Community edition the aggregates are
continuous aggregates with real-time aggregation (current to the last committed event); on the
Apache edition they are materialized views, as fresh as the last ``analytics-migrate maintain``.
The SQL is the same on both.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final, LiteralString

import psycopg
from psycopg import sql

from analytics_core.queries._fetch import fetch_all, utc
from analytics_core.queries._results import DayCount, HourCount, Result
from analytics_core.queries._window import TimeWindow
from analytics_core.schema import AGGREGATES_BY_NAME, Aggregate

__all__ = [
    "MAU_DAYS",
    "WAU_DAYS",
    "ActiveUsersDay",
    "ActiveUsersSeries",
    "ApiLatencyReport",
    "AuthBreakdown",
    "AuthReport",
    "CocoonActivity",
    "CocoonReport",
    "EndpointHour",
    "EndpointSummary",
    "ErrorHour",
    "ErrorReport",
    "ErrorTotal",
    "IntegrationHealthReport",
    "PercentileEstimate",
    "ProviderHealth",
    "TaskDay",
    "TaskReport",
    "active_users",
    "api_latency",
    "auth_activity",
    "cocoon_activity",
    "error_counts",
    "integration_health",
    "task_stats",
]

# Looked up by name so that a renamed aggregate fails at import, not at the first query.
_DAILY_ACTIVE_USERS: Final = AGGREGATES_BY_NAME["analytics_daily_active_users"]
_TASK_STATS: Final = AGGREGATES_BY_NAME["analytics_task_stats_daily"]
_API_LATENCY: Final = AGGREGATES_BY_NAME["analytics_api_latency_hourly"]
_INTEGRATION_HEALTH: Final = AGGREGATES_BY_NAME["analytics_integration_health_daily"]
_AUTH_EVENTS: Final = AGGREGATES_BY_NAME["analytics_auth_events_daily"]
_COCOON_ACTIVITY: Final = AGGREGATES_BY_NAME["analytics_cocoon_activity_daily"]
_ERRORS: Final = AGGREGATES_BY_NAME["analytics_errors_hourly"]

#: Days in the trailing windows of weekly and monthly active users, the day itself included.
WAU_DAYS: Final = 7
MAU_DAYS: Final = 30


def _ratio(part: float, whole: float) -> float | None:
    return None if whole == 0 else part / whole


def _names(aggregate: Aggregate) -> dict[str, sql.Composable]:
    return {"view": sql.Identifier(aggregate.name), "t": sql.Identifier(aggregate.time_column)}


def _read(
    conn: psycopg.Connection[Any],
    aggregate: Aggregate,
    window: TimeWindow,
    query: LiteralString,
    params: Mapping[str, Any] | None = None,
) -> tuple[TimeWindow, list[tuple[Any, ...]]]:
    """Run ``query`` over the buckets of ``aggregate`` that ``window`` overlaps.

    ``query`` names the aggregate ``{view}`` and its bucket column ``{t}``; ``%(start)s`` and
    ``%(end)s`` are the covering window's bounds. Returns that window and the rows.
    """
    covered = window.covering(aggregate.bucket)
    statement = sql.SQL(query).format(**_names(aggregate))
    rows = fetch_all(
        conn, statement, {"start": covered.start, "end": covered.end, **(params or {})}
    )
    return covered, rows


def _day(value: datetime) -> date:
    return utc(value).date()


def _days(window: TimeWindow) -> list[date]:
    first, last = window.start.date(), (window.end - timedelta(days=1)).date()
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def _hours(window: TimeWindow) -> list[datetime]:
    count = int(window.duration / timedelta(hours=1))
    return [window.start + timedelta(hours=offset) for offset in range(count)]


# --- Active users ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActiveUsersDay(Result):
    """Distinct users active on ``day`` (dau) and in the 7 and 30 days ending with it."""

    day: date
    dau: int
    wau: int
    mau: int


@dataclass(frozen=True, slots=True)
class ActiveUsersSeries(Result):
    window: TimeWindow
    days: tuple[ActiveUsersDay, ...]


def active_users(conn: psycopg.Connection[Any], window: TimeWindow) -> ActiveUsersSeries:
    """DAU, WAU and MAU for every UTC day the window overlaps, oldest first.

    Reads ``analytics_daily_active_users`` (one row per day and user). WAU and MAU are exact
    counts of distinct users over the trailing 7 and 30 days ending with each day, never sums
    of daily counts; they look back before the window's first day as far as needed. Days
    without activity are present with zeros. Only events that carry a ``user_id`` count.
    """
    covered = window.covering(_DAILY_ACTIVE_USERS.bucket)
    days = _days(covered)
    statement = sql.SQL(
        """
        WITH active AS (
            SELECT ({t} AT TIME ZONE 'UTC')::date AS day, user_id
            FROM {view}
            WHERE {t} >= %(lookback)s AND {t} < %(end)s
        ),
        calendar AS (
            SELECT generate_series(%(first)s::date, %(last)s::date, interval '1 day')::date
                   AS day
        )
        SELECT calendar.day,
               count(DISTINCT active.user_id) FILTER (WHERE active.day = calendar.day),
               count(DISTINCT active.user_id)
                   FILTER (WHERE active.day > calendar.day - %(wau_days)s),
               count(DISTINCT active.user_id)
        FROM calendar
        LEFT JOIN active
               ON active.day > calendar.day - %(mau_days)s AND active.day <= calendar.day
        GROUP BY calendar.day
        ORDER BY calendar.day
        """
    ).format(**_names(_DAILY_ACTIVE_USERS))
    rows = fetch_all(
        conn,
        statement,
        {
            "lookback": covered.start - timedelta(days=MAU_DAYS - 1),
            "end": covered.end,
            "first": days[0],
            "last": days[-1],
            "wau_days": WAU_DAYS,
            "mau_days": MAU_DAYS,
        },
    )
    return ActiveUsersSeries(
        covered, tuple(ActiveUsersDay(day, dau, wau, mau) for day, dau, wau, mau in rows)
    )


# --- API latency -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EndpointHour(Result):
    """One endpoint's requests in one UTC hour. Percentiles here are exact.

    ``error_rate`` is server errors (5xx) over requests. Latency figures cover the
    ``timed_requests`` whose ``latency_ms`` was a valid number (``total_latency_ms`` is their
    sum); they are None when none was.
    """

    hour: datetime
    service: str
    method: str
    route: str
    requests: int
    server_errors: int
    client_errors: int
    error_rate: float | None
    timed_requests: int
    total_latency_ms: float | None
    mean_latency_ms: float | None
    max_latency_ms: float | None
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    p99_latency_ms: float | None


@dataclass(frozen=True, slots=True)
class PercentileEstimate(Result):
    """A percentile over a window wider than an hour, estimated from hourly percentiles.

    Percentiles of different hours cannot be combined exactly without the raw values.
    ``weighted_mean`` is the mean of the hourly percentiles weighted by each hour's timed
    requests: an approximation that is exact when one hour holds every request and can be off
    in either direction otherwise. ``max_hourly`` is the largest hourly value: an upper bound
    on the window's true percentile that is attained in the worst hour.
    """

    weighted_mean: float | None
    max_hourly: float | None


@dataclass(frozen=True, slots=True)
class EndpointSummary(Result):
    """One endpoint over the whole window. Counts, rates, mean and max are exact;
    the percentiles are :class:`PercentileEstimate` approximations."""

    service: str
    method: str
    route: str
    requests: int
    server_errors: int
    client_errors: int
    error_rate: float | None
    client_error_rate: float | None
    timed_requests: int
    mean_latency_ms: float | None
    max_latency_ms: float | None
    p50_latency_ms: PercentileEstimate
    p95_latency_ms: PercentileEstimate
    p99_latency_ms: PercentileEstimate


@dataclass(frozen=True, slots=True)
class ApiLatencyReport(Result):
    window: TimeWindow
    #: Every (hour, endpoint) with requests, ordered by hour then service, route, method.
    hourly: tuple[EndpointHour, ...]
    #: One per endpoint, busiest first.
    endpoints: tuple[EndpointSummary, ...]


def api_latency(
    conn: psycopg.Connection[Any],
    window: TimeWindow,
    *,
    service: str | None = None,
    route: str | None = None,
) -> ApiLatencyReport:
    """Requests, error rates and latency per endpoint (service, method, route) and UTC hour.

    Reads ``analytics_api_latency_hourly``. Returns the hourly series, whose p50/p95/p99 are
    exact, and a summary per endpoint over the window whose counts, error rates, mean and max
    are exact but whose percentiles are approximations: the request-weighted mean of the
    hourly percentiles, and the maximum hourly percentile (see :class:`PercentileEstimate`).
    ``service`` and ``route`` narrow the answer to an exact match. Requests whose payload
    lacked a method or route appear under ``(unknown)``.
    """
    covered, rows = _read(
        conn,
        _API_LATENCY,
        window,
        """
        SELECT {t}, service, method, route, request_count, server_error_count,
               client_error_count, timed_count, latency_sum_ms, latency_max_ms,
               latency_p50_ms, latency_p95_ms, latency_p99_ms
        FROM {view}
        WHERE {t} >= %(start)s AND {t} < %(end)s
          AND (%(service)s::text IS NULL OR service = %(service)s::text)
          AND (%(route)s::text IS NULL OR route = %(route)s::text)
        ORDER BY {t}, service, route, method
        """,
        {"service": service, "route": route},
    )
    hourly = tuple(
        EndpointHour(
            hour=utc(hour),
            service=svc,
            method=method,
            route=path,
            requests=requests,
            server_errors=server_errors,
            client_errors=client_errors,
            error_rate=_ratio(server_errors, requests),
            timed_requests=timed,
            total_latency_ms=latency_sum,
            mean_latency_ms=None if timed == 0 else latency_sum / timed,
            max_latency_ms=latency_max,
            p50_latency_ms=p50,
            p95_latency_ms=p95,
            p99_latency_ms=p99,
        )
        for (
            hour,
            svc,
            method,
            path,
            requests,
            server_errors,
            client_errors,
            timed,
            latency_sum,
            latency_max,
            p50,
            p95,
            p99,
        ) in rows
    )
    by_endpoint: dict[tuple[str, str, str], list[EndpointHour]] = {}
    for row in hourly:
        by_endpoint.setdefault((row.service, row.method, row.route), []).append(row)
    endpoints = sorted(
        (_summarise_endpoint(key, hours) for key, hours in by_endpoint.items()),
        key=lambda s: (-s.requests, s.service, s.route, s.method),
    )
    return ApiLatencyReport(covered, hourly, tuple(endpoints))


def _estimate(hours: list[EndpointHour], attribute: str) -> PercentileEstimate:
    timed = [(getattr(hour, attribute), hour.timed_requests) for hour in hours]
    known = [(value, weight) for value, weight in timed if value is not None and weight > 0]
    weight = sum(w for _, w in known)
    if weight == 0:
        return PercentileEstimate(None, None)
    return PercentileEstimate(
        weighted_mean=sum(value * w for value, w in known) / weight,
        max_hourly=max(value for value, _ in known),
    )


def _summarise_endpoint(key: tuple[str, str, str], hours: list[EndpointHour]) -> EndpointSummary:
    requests = sum(h.requests for h in hours)
    server_errors = sum(h.server_errors for h in hours)
    client_errors = sum(h.client_errors for h in hours)
    timed = sum(h.timed_requests for h in hours)
    latency_sum = sum(h.total_latency_ms for h in hours if h.total_latency_ms is not None)
    maxima = [h.max_latency_ms for h in hours if h.max_latency_ms is not None]
    return EndpointSummary(
        service=key[0],
        method=key[1],
        route=key[2],
        requests=requests,
        server_errors=server_errors,
        client_errors=client_errors,
        error_rate=_ratio(server_errors, requests),
        client_error_rate=_ratio(client_errors, requests),
        timed_requests=timed,
        mean_latency_ms=None if timed == 0 else latency_sum / timed,
        max_latency_ms=max(maxima) if maxima else None,
        p50_latency_ms=_estimate(hours, "p50_latency_ms"),
        p95_latency_ms=_estimate(hours, "p95_latency_ms"),
        p99_latency_ms=_estimate(hours, "p99_latency_ms"),
    )


# --- Tasks -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskDay(Result):
    """Task outcomes on one UTC day; durations are of completed tasks and exact for the day.

    ``success_rate`` is completed / (completed + failed), None when neither happened.
    """

    day: date
    created: int
    started: int
    completed: int
    failed: int
    cancelled: int
    success_rate: float | None
    timed_completions: int
    mean_duration_ms: float | None
    max_duration_ms: float | None
    p50_duration_ms: float | None
    p95_duration_ms: float | None


@dataclass(frozen=True, slots=True)
class TaskReport(Result):
    """Task outcomes over the window (exact), and per day (every day, zeros included)."""

    window: TimeWindow
    created: int
    started: int
    completed: int
    failed: int
    cancelled: int
    success_rate: float | None
    timed_completions: int
    mean_duration_ms: float | None
    max_duration_ms: float | None
    days: tuple[TaskDay, ...]


def task_stats(conn: psycopg.Connection[Any], window: TimeWindow) -> TaskReport:
    """Created, started, completed, failed and cancelled tasks, success rate and durations.

    Reads ``analytics_task_stats_daily``. Totals, the success rate and the mean duration
    (sum of durations over their count) are exact over the window; p50 and p95 are exact per
    UTC day and are not combined across days. Durations are those of completed tasks whose
    ``duration_ms`` was a valid number.
    """
    covered, rows = _read(
        conn,
        _TASK_STATS,
        window,
        """
        SELECT {t}, created_count, started_count, completed_count, failed_count,
               cancelled_count, timed_count, duration_sum_ms, duration_max_ms,
               duration_p50_ms, duration_p95_ms
        FROM {view}
        WHERE {t} >= %(start)s AND {t} < %(end)s
        """,
    )
    found = {_day(row[0]): row[1:] for row in rows}
    days: list[TaskDay] = []
    duration_sum = 0.0
    for day in _days(covered):
        (created, started, completed, failed, cancelled, timed, total, longest, p50, p95) = (
            found.get(day, (0, 0, 0, 0, 0, 0, None, None, None, None))
        )
        duration_sum += total or 0.0
        days.append(
            TaskDay(
                day=day,
                created=created,
                started=started,
                completed=completed,
                failed=failed,
                cancelled=cancelled,
                success_rate=_ratio(completed, completed + failed),
                timed_completions=timed,
                mean_duration_ms=None if timed == 0 else total / timed,
                max_duration_ms=longest,
                p50_duration_ms=p50,
                p95_duration_ms=p95,
            )
        )
    completed = sum(d.completed for d in days)
    failed = sum(d.failed for d in days)
    timed = sum(d.timed_completions for d in days)
    maxima = [d.max_duration_ms for d in days if d.max_duration_ms is not None]
    return TaskReport(
        window=covered,
        created=sum(d.created for d in days),
        started=sum(d.started for d in days),
        completed=completed,
        failed=failed,
        cancelled=sum(d.cancelled for d in days),
        success_rate=_ratio(completed, completed + failed),
        timed_completions=timed,
        mean_duration_ms=None if timed == 0 else duration_sum / timed,
        max_duration_ms=max(maxima) if maxima else None,
        days=tuple(days),
    )


# --- Integrations ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProviderHealth(Result):
    """One integration provider over the window.

    ``error_rate`` is errors / (uses + errors): the share of the provider's calls that failed,
    None when there were neither. ``last_success_at`` is the latest connection, use or
    successful OAuth flow in the window; ``last_failure_at`` the latest error or failed flow.
    """

    provider: str
    connected: int
    disconnected: int
    used: int
    errors: int
    error_rate: float | None
    oauth_started: int
    oauth_succeeded: int
    oauth_failed: int
    last_success_at: datetime | None
    last_failure_at: datetime | None


@dataclass(frozen=True, slots=True)
class IntegrationHealthReport(Result):
    window: TimeWindow
    #: Ordered by provider name.
    providers: tuple[ProviderHealth, ...]


def integration_health(
    conn: psycopg.Connection[Any], window: TimeWindow
) -> IntegrationHealthReport:
    """Usage, errors, error rate and last success and failure per integration provider.

    Reads ``analytics_integration_health_daily``; every figure is exact over the UTC days the
    window overlaps. Events without a provider appear under ``(unknown)``.
    """
    covered, rows = _read(
        conn,
        _INTEGRATION_HEALTH,
        window,
        """
        SELECT provider,
               sum(connected_count)::bigint, sum(disconnected_count)::bigint,
               sum(used_count)::bigint, sum(error_count)::bigint,
               sum(oauth_started_count)::bigint, sum(oauth_succeeded_count)::bigint,
               sum(oauth_failed_count)::bigint,
               max(last_success_at), max(last_failure_at)
        FROM {view}
        WHERE {t} >= %(start)s AND {t} < %(end)s
        GROUP BY provider
        ORDER BY provider
        """,
    )
    return IntegrationHealthReport(
        covered,
        tuple(
            ProviderHealth(
                provider=provider,
                connected=connected,
                disconnected=disconnected,
                used=used,
                errors=errors,
                error_rate=_ratio(errors, used + errors),
                oauth_started=oauth_started,
                oauth_succeeded=oauth_succeeded,
                oauth_failed=oauth_failed,
                last_success_at=utc(last_success),
                last_failure_at=utc(last_failure),
            )
            for (
                provider,
                connected,
                disconnected,
                used,
                errors,
                oauth_started,
                oauth_succeeded,
                oauth_failed,
                last_success,
                last_failure,
            ) in rows
        ),
    )


# --- Auth --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthBreakdown(Result):
    """Attempts of one auth event type with one method (``(none)`` when it has no method).

    A failure is any attempt whose payload's ``success`` is not ``true``.
    """

    event_type: str
    method: str
    attempts: int
    successes: int
    failures: int
    failure_rate: float | None


@dataclass(frozen=True, slots=True)
class AuthReport(Result):
    window: TimeWindow
    attempts: int
    failures: int
    failure_rate: float | None
    #: Ordered by event type, then method.
    breakdown: tuple[AuthBreakdown, ...]
    #: Failures per UTC day, every day of the window, zeros included.
    failures_per_day: tuple[DayCount, ...]


def auth_activity(conn: psycopg.Connection[Any], window: TimeWindow) -> AuthReport:
    """Auth attempts and failure rates, per event type and method and in total.

    Reads ``analytics_auth_events_daily``; every figure is exact over the UTC days the window
    overlaps.
    """
    covered, rows = _read(
        conn,
        _AUTH_EVENTS,
        window,
        """
        SELECT {t}, event_type, method, attempt_count, success_count, failure_count
        FROM {view}
        WHERE {t} >= %(start)s AND {t} < %(end)s
        """,
    )
    totals: dict[tuple[str, str], tuple[int, int, int]] = {}
    failures_by_day: dict[date, int] = {}
    for day, event_type, method, attempts, successes, failures in rows:
        a, s, f = totals.get((event_type, method), (0, 0, 0))
        totals[(event_type, method)] = (a + attempts, s + successes, f + failures)
        failures_by_day[_day(day)] = failures_by_day.get(_day(day), 0) + failures
    breakdown = tuple(
        AuthBreakdown(event_type, method, attempts, successes, failures, _ratio(failures, attempts))
        for (event_type, method), (attempts, successes, failures) in sorted(totals.items())
    )
    attempts = sum(b.attempts for b in breakdown)
    failures = sum(b.failures for b in breakdown)
    return AuthReport(
        window=covered,
        attempts=attempts,
        failures=failures,
        failure_rate=_ratio(failures, attempts),
        breakdown=breakdown,
        failures_per_day=tuple(
            DayCount(day, failures_by_day.get(day, 0)) for day in _days(covered)
        ),
    )


# --- Cocoons -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CocoonActivity(Result):
    """One cocoon over the window.

    ``sessions`` counts connections, ``disconnects`` their ends; ``connected_ms`` sums the
    session durations reported on disconnection in the window (0 when none was reported).
    """

    cocoon_id: uuid.UUID
    events: int
    sessions: int
    disconnects: int
    connected_ms: float
    task_events: int
    first_seen_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class CocoonReport(Result):
    """Cocoon activity over the window.

    ``connected_cocoons`` counts distinct cocoons with a session in the window: one that
    connected or disconnected in it. ``active_cocoons`` counts those with any event.
    """

    window: TimeWindow
    connected_cocoons: int
    active_cocoons: int
    sessions: int
    connected_ms: float
    #: Most recently seen first.
    cocoons: tuple[CocoonActivity, ...]


def cocoon_activity(conn: psycopg.Connection[Any], window: TimeWindow) -> CocoonReport:
    """Connected cocoons, sessions, connected time and last seen per cocoon.

    Reads ``analytics_cocoon_activity_daily``; exact over the UTC days the window overlaps.
    Events whose ``cocoon_id`` is not a UUID are not in the aggregate, so not counted.
    """
    covered, rows = _read(
        conn,
        _COCOON_ACTIVITY,
        window,
        """
        SELECT cocoon_id, sum(event_count)::bigint, sum(session_count)::bigint,
               sum(disconnect_count)::bigint, coalesce(sum(connected_ms), 0),
               sum(task_event_count)::bigint, min(first_seen_at), max(last_seen_at)
        FROM {view}
        WHERE {t} >= %(start)s AND {t} < %(end)s
        GROUP BY cocoon_id
        ORDER BY max(last_seen_at) DESC, cocoon_id
        """,
    )
    cocoons = tuple(
        CocoonActivity(
            cocoon, events, sessions, disconnects, float(connected), tasks, utc(first), utc(last)
        )
        for cocoon, events, sessions, disconnects, connected, tasks, first, last in rows
    )
    return CocoonReport(
        window=covered,
        connected_cocoons=sum(1 for c in cocoons if c.sessions or c.disconnects),
        active_cocoons=len(cocoons),
        sessions=sum(c.sessions for c in cocoons),
        connected_ms=sum(c.connected_ms for c in cocoons),
        cocoons=cocoons,
    )


# --- Errors ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrorHour(Result):
    """Errors of one service, event type and kind in the UTC hour starting at ``hour``."""

    hour: datetime
    service: str
    event_type: str
    error_kind: str
    count: int
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class ErrorTotal(Result):
    """Errors of one service, event type and kind over the window."""

    service: str
    event_type: str
    error_kind: str
    count: int
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class ErrorReport(Result):
    window: TimeWindow
    total: int
    #: Every (hour, service, event type, kind) with errors, by hour then service and kind.
    hourly: tuple[ErrorHour, ...]
    #: One per (service, event type, kind), most errors first.
    totals: tuple[ErrorTotal, ...]
    #: All errors per UTC hour, every hour of the window, zeros included.
    per_hour: tuple[HourCount, ...]


def error_counts(
    conn: psycopg.Connection[Any], window: TimeWindow, *, service: str | None = None
) -> ErrorReport:
    """Error counts by service and kind, per UTC hour and over the window.

    Reads ``analytics_errors_hourly``, whose definition says what counts as an error and
    what its kind is (an application error's ``error_kind``, an integration's provider,
    ``http_5xx`` for server errors, the event type otherwise). Exact. ``service`` narrows
    the answer to one service.
    """
    covered, rows = _read(
        conn,
        _ERRORS,
        window,
        """
        SELECT {t}, service, event_type, error_kind, error_count, last_seen_at
        FROM {view}
        WHERE {t} >= %(start)s AND {t} < %(end)s
          AND (%(service)s::text IS NULL OR service = %(service)s::text)
        ORDER BY {t}, service, event_type, error_kind
        """,
        {"service": service},
    )
    hourly = tuple(
        ErrorHour(utc(hour), svc, event_type, kind, count, utc(last))
        for hour, svc, event_type, kind, count, last in rows
    )
    grouped: dict[tuple[str, str, str], tuple[int, datetime]] = {}
    per_hour: dict[datetime, int] = {}
    for row in hourly:
        key = (row.service, row.event_type, row.error_kind)
        count, last = grouped.get(key, (0, row.last_seen_at))
        grouped[key] = (count + row.count, max(last, row.last_seen_at))
        per_hour[row.hour] = per_hour.get(row.hour, 0) + row.count
    totals = sorted(
        (ErrorTotal(*key, count, last) for key, (count, last) in grouped.items()),
        key=lambda t: (-t.count, t.service, t.event_type, t.error_kind),
    )
    return ErrorReport(
        window=covered,
        total=sum(t.count for t in totals),
        hourly=hourly,
        totals=tuple(totals),
        per_hour=tuple(HourCount(hour, per_hour.get(hour, 0)) for hour in _hours(covered)),
    )
