"""Product metrics from the aggregates: exact answers, UTC buckets, windows, malformed payloads,
and proof that no metric reads the raw events table."""

from __future__ import annotations

import dataclasses
import json
import random
import re
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest

from analytics_core import queries as q
from analytics_core.migrate.edition import Edition, inspect_server
from analytics_core.schema import EVENTS_TABLE
from devtools.pytest_plugin import autocommit_connection_fixture, seeded_database_fixture
from devtools.seeding import EventRow as Row
from tests.expected import assert_same, field_of, json_int, json_ms, json_text, json_uuid
from tests.recording import recording_connection
from tests.synthetic import day_of as day_start
from tests.synthetic import hour_of as hour_start
from tests.synthetic import percentile_cont

pytestmark = pytest.mark.server

# Recent enough that `maintain` (which applies the 90-day retention) keeps every chunk.
D0 = day_start(datetime.now(UTC) - timedelta(days=20))
WINDOW = q.TimeWindow.days(D0.date(), (D0 + timedelta(days=9)).date())
EMPTY = q.TimeWindow.days((D0 - timedelta(days=70)).date(), (D0 - timedelta(days=60)).date())


def at(day: int, hours: float = 0, **more: float) -> datetime:
    return D0 + timedelta(days=day, hours=hours, **more)


def uid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


# --- The data ----------------------------------------------------------------------------------

RNG = random.Random(20240601)
USERS = [uid(RNG) for _ in range(12)]
COCOONS = [uid(RNG) for _ in range(3)]
BOUNDARY_USER, EARLY_USER, SINGLE_USER = uid(RNG), uid(RNG), uid(RNG)
ROUTES = [("GET", "/tasks"), ("POST", "/tasks"), ("GET", "/projects/{id}")]
LAST_MS = timedelta(milliseconds=1)


def _random_rows(rng: random.Random) -> list[Row]:
    rows: list[Row] = []
    for day in range(10):
        for user in rng.sample(USERS, rng.randint(2, 8)):
            for _ in range(rng.randint(1, 3)):
                when = at(day, seconds=rng.randrange(86_400))
                task = str(uid(rng))
                cocoon = str(rng.choice(COCOONS))
                rows.append(
                    Row(
                        when,
                        "task_created",
                        {"task_id": task, "user_id": str(user), "cocoon_id": cocoon},
                        user,
                    )
                )
                rows.append(Row(when, "task_started", {"task_id": task, "cocoon_id": cocoon}, user))
                outcome = rng.random()
                if outcome < 0.6:
                    rows.append(
                        Row(
                            when,
                            "task_completed",
                            {"task_id": task, "duration_ms": rng.randrange(10, 90_000)},
                            user,
                        )
                    )
                elif outcome < 0.85:
                    rows.append(
                        Row(
                            when,
                            "task_failed",
                            {"task_id": task, "error": "exit 1", "duration_ms": 5},
                            user,
                        )
                    )
                else:
                    rows.append(Row(when, "task_cancelled", {"task_id": task}, user))
            auth_type = rng.choice(
                [
                    "auth_login_attempt",
                    "auth_code_verified",
                    "auth_token_refresh",
                    "auth_session_validated",
                ]
            )
            payload: dict[str, Any] = {"success": rng.random() < 0.75}
            if auth_type == "auth_login_attempt":
                payload["method"] = rng.choice(["password", "email_code", "oauth"])
            rows.append(
                Row(
                    at(day, seconds=rng.randrange(86_400)), auth_type, payload, user, service="auth"
                )
            )
            provider = rng.choice(["github", "slack"])
            kind = rng.choice(
                [
                    "integration_connected",
                    "integration_disconnected",
                    "integration_used",
                    "integration_used",
                    "integration_error",
                    "oauth_flow_started",
                    "oauth_flow_completed",
                ]
            )
            payload = {"provider": provider}
            if kind == "oauth_flow_completed":
                payload["success"] = rng.random() < 0.5
            rows.append(Row(at(day, seconds=rng.randrange(86_400)), kind, payload, user))
        for hour in rng.sample(range(24), 6):
            for method, route in ROUTES:
                for _ in range(rng.randint(1, 12)):
                    rows.append(
                        Row(
                            at(day, hour, seconds=rng.randrange(3600)),
                            "api_request",
                            {
                                "method": method,
                                "route": route,
                                "status_code": rng.choice([200, 200, 201, 404, 500, 503]),
                                "latency_ms": round(rng.lognormvariate(3, 1), 3),
                            },
                            rng.choice([*USERS[:2], None]),
                            service=rng.choice(["api", "gateway"]),
                        )
                    )
        cocoon = rng.choice(COCOONS)
        session = str(uid(rng))
        rows.append(
            Row(at(day, 1), "cocoon_connected", {"cocoon_id": str(cocoon), "session_id": session})
        )
        rows.append(
            Row(
                at(day, 2),
                "cocoon_disconnected",
                {
                    "cocoon_id": str(cocoon),
                    "session_id": session,
                    "session_duration_ms": rng.randrange(1, 7_200_000),
                },
            )
        )
        rows.append(
            Row(
                at(day, rng.randrange(24)),
                "application_error",
                {
                    "error_kind": rng.choice(["TimeoutError", "KeyError"]),
                    "message": "x",
                    "severity": "error",
                },
                service="worker",
            )
        )
        rows.append(
            Row(
                at(day, rng.randrange(24)),
                "webhook_processed",
                {"provider": "github", "success": rng.random() < 0.5, "duration_ms": 4},
                service="hooks",
            )
        )
        rows.append(
            Row(
                at(day, rng.randrange(24)),
                "database_query",
                {"operation": "select", "success": False, "duration_ms": 1.5},
                service="api",
            )
        )
    return rows


def _edge_rows() -> list[Row]:
    upper_cocoon = str(COCOONS[0]).upper()
    return [
        # The last millisecond of a UTC day and the first instant of the next.
        Row(
            at(3) - LAST_MS,
            "api_request",
            {"method": "GET", "route": "/edge", "status_code": 502, "latency_ms": 7.0},
            BOUNDARY_USER,
            service="api",
        ),
        Row(
            at(3),
            "api_request",
            {"method": "GET", "route": "/edge", "status_code": 200, "latency_ms": 9.0},
            BOUNDARY_USER,
            service="api",
        ),
        Row(at(3) - LAST_MS, "task_completed", {"duration_ms": 1000}, BOUNDARY_USER),
        Row(at(3), "task_failed", {"error": "boom"}, BOUNDARY_USER),
        # Active 25 days before the window: in MAU for its first days, never in WAU.
        Row(at(-25, 6), "task_created", {"task_id": str(uuid.uuid4())}, EARLY_USER),
        # One event, ever.
        Row(
            at(5, 13),
            "auth_login_attempt",
            {"method": "sso", "success": True},
            SINGLE_USER,
            service="auth",
        ),
        # Malformed payloads, as a buggy or foreign producer writes them.
        Row(
            at(1, 3),
            "api_request",
            {"method": "GET", "route": "/tasks", "status_code": "5OO", "latency_ms": "fast"},
            service="legacy",
        ),
        Row(
            at(1, 3),
            "api_request",
            {"method": "GET", "route": "/tasks", "status_code": 200, "latency_ms": 1e300},
            service="legacy",
        ),
        Row(
            at(1, 3), "api_request", {"route": ["not", "text"], "latency_ms": -4}, service="legacy"
        ),
        Row(
            at(1, 3),
            "api_request",
            {"method": "GET", "route": "/tasks", "status_code": 503.7, "latency_ms": True},
            service="legacy",
        ),
        Row(at(1, 3), "api_request", ["not", "an", "object"], service="legacy"),
        Row(at(1, 4), "task_completed", {"task_id": "x", "duration_ms": {"ms": 5}}),
        Row(at(1, 4), "task_completed", {"task_id": "x", "duration_ms": "12"}),
        Row(at(1, 5), "cocoon_connected", {"cocoon_id": "not-a-uuid"}),
        Row(
            at(1, 5),
            "cocoon_disconnected",
            {"cocoon_id": upper_cocoon, "session_duration_ms": "long"},
        ),
        Row(at(1, 6), "auth_login_attempt", {"method": 42, "success": "yes"}, service="auth"),
        Row(at(1, 6), "integration_error", {"error": "no provider"}),
        Row(at(1, 7), "application_error", {"message": "no kind"}, service="worker"),
        Row(at(1, 7), "oauth_flow_completed", {"provider": "slack", "success": False}),
    ]


ROWS = _random_rows(RNG) + _edge_rows()


url = seeded_database_fixture(ROWS, refresh=True)
conn = autocommit_connection_fixture("url")


# --- Expected answers, computed from ROWS ------------------------------------------------------


def _in(window: q.TimeWindow, rows: list[Row] = ROWS) -> list[Row]:
    return [r for r in rows if window.start <= r.at < window.end]


def _days(window: q.TimeWindow) -> list[date]:
    count = (window.end - window.start) // timedelta(days=1)
    return [(window.start + timedelta(days=n)).date() for n in range(count)]


def _ratio(part: float, whole: float) -> float | None:
    return None if whole == 0 else part / whole


def expected_active_users(window: q.TimeWindow) -> dict[str, Any]:
    active = {(day_start(r.at).date(), r.user_id) for r in ROWS if r.user_id is not None}

    def users(day: date, span: int) -> int:
        return len({u for d, u in active if day - timedelta(days=span) < d <= day})

    return {
        "window": window.to_json(),
        "days": [
            {"day": d.isoformat(), "dau": users(d, 1), "wau": users(d, 7), "mau": users(d, 30)}
            for d in _days(window)
        ],
    }


def _endpoint(r: Row) -> tuple[str, str, str]:
    method, route = json_text(field_of(r, "method")), json_text(field_of(r, "route"))
    return (
        r.service,
        "(unknown)" if method is None else method,
        "(unknown)" if route is None else route,
    )


def expected_api(window: q.TimeWindow, service: str | None = None) -> dict[str, Any]:
    groups: dict[tuple[datetime, str, str, str], list[Row]] = defaultdict(list)
    for r in _in(window):
        if r.event_type == "api_request" and service in (None, r.service):
            groups[(hour_start(r.at), *_endpoint(r))].append(r)
    hourly = []
    for (hour, svc, method, route), rows in sorted(
        groups.items(), key=lambda item: (item[0][0], item[0][1], item[0][3], item[0][2])
    ):
        statuses = [json_int(field_of(r, "status_code")) for r in rows]
        latencies = [v for r in rows if (v := json_ms(field_of(r, "latency_ms"))) is not None]
        server = sum(1 for s in statuses if s is not None and s >= 500)
        client = sum(1 for s in statuses if s is not None and 400 <= s <= 499)
        hourly.append(
            {
                "hour": hour.isoformat(),
                "service": svc,
                "method": method,
                "route": route,
                "requests": len(rows),
                "server_errors": server,
                "client_errors": client,
                "error_rate": server / len(rows),
                "timed_requests": len(latencies),
                "total_latency_ms": sum(latencies) if latencies else None,
                "mean_latency_ms": sum(latencies) / len(latencies) if latencies else None,
                "max_latency_ms": max(latencies) if latencies else None,
                "p50_latency_ms": percentile_cont(latencies, 0.5),
                "p95_latency_ms": percentile_cont(latencies, 0.95),
                "p99_latency_ms": percentile_cont(latencies, 0.99),
            }
        )
    endpoints = []
    for key in {(h["service"], h["method"], h["route"]) for h in hourly}:
        hours = [h for h in hourly if (h["service"], h["method"], h["route"]) == key]
        requests = sum(h["requests"] for h in hours)
        server = sum(h["server_errors"] for h in hours)
        client = sum(h["client_errors"] for h in hours)
        timed = sum(h["timed_requests"] for h in hours)
        total = sum(h["total_latency_ms"] or 0.0 for h in hours)

        def estimate(name: str, hours: list[dict[str, Any]] = hours) -> dict[str, Any]:
            known = [(h[name], h["timed_requests"]) for h in hours if h[name] is not None]
            weight = sum(w for _, w in known)
            return {
                "weighted_mean": sum(v * w for v, w in known) / weight if weight else None,
                "max_hourly": max(v for v, _ in known) if known else None,
            }

        maxima = [h["max_latency_ms"] for h in hours if h["max_latency_ms"] is not None]
        endpoints.append(
            {
                "service": key[0],
                "method": key[1],
                "route": key[2],
                "requests": requests,
                "server_errors": server,
                "client_errors": client,
                "error_rate": server / requests,
                "client_error_rate": client / requests,
                "timed_requests": timed,
                "mean_latency_ms": total / timed if timed else None,
                "max_latency_ms": max(maxima) if maxima else None,
                "p50_latency_ms": estimate("p50_latency_ms"),
                "p95_latency_ms": estimate("p95_latency_ms"),
                "p99_latency_ms": estimate("p99_latency_ms"),
            }
        )
    endpoints.sort(key=lambda e: (-e["requests"], e["service"], e["route"], e["method"]))
    return {"window": window.to_json(), "hourly": hourly, "endpoints": endpoints}


TASK_TYPES = ("created", "started", "completed", "failed", "cancelled")


def expected_tasks(window: q.TimeWindow) -> dict[str, Any]:
    days = []
    all_durations: list[float] = []
    for day in _days(window):
        rows = [r for r in ROWS if day_start(r.at).date() == day]
        counts = {t: sum(1 for r in rows if r.event_type == f"task_{t}") for t in TASK_TYPES}
        durations = [
            v
            for r in rows
            if r.event_type == "task_completed"
            and (v := json_ms(field_of(r, "duration_ms"))) is not None
        ]
        all_durations += durations
        days.append(
            {
                "day": day.isoformat(),
                **counts,
                "success_rate": _ratio(counts["completed"], counts["completed"] + counts["failed"]),
                "timed_completions": len(durations),
                "mean_duration_ms": sum(durations) / len(durations) if durations else None,
                "max_duration_ms": max(durations) if durations else None,
                "p50_duration_ms": percentile_cont(durations, 0.5),
                "p95_duration_ms": percentile_cont(durations, 0.95),
            }
        )
    totals = {t: sum(d[t] for d in days) for t in TASK_TYPES}
    return {
        "window": window.to_json(),
        **totals,
        "success_rate": _ratio(totals["completed"], totals["completed"] + totals["failed"]),
        "timed_completions": len(all_durations),
        "mean_duration_ms": sum(all_durations) / len(all_durations) if all_durations else None,
        "max_duration_ms": max(all_durations) if all_durations else None,
        "days": days,
    }


INTEGRATION_TYPES = {
    "integration_connected": "connected",
    "integration_disconnected": "disconnected",
    "integration_used": "used",
    "integration_error": "errors",
    "oauth_flow_started": "oauth_started",
}


def expected_integrations(window: q.TimeWindow) -> dict[str, Any]:
    providers: dict[str, dict[str, Any]] = {}
    for r in _in(window):
        if r.event_type not in {*INTEGRATION_TYPES, "oauth_flow_completed"}:
            continue
        name = json_text(field_of(r, "provider")) or "(unknown)"
        p = providers.setdefault(
            name,
            {
                "provider": name,
                "connected": 0,
                "disconnected": 0,
                "used": 0,
                "errors": 0,
                "error_rate": None,
                "oauth_started": 0,
                "oauth_succeeded": 0,
                "oauth_failed": 0,
                "last_success_at": None,
                "last_failure_at": None,
            },
        )
        succeeded = field_of(r, "success") is True
        if r.event_type == "oauth_flow_completed":
            p["oauth_succeeded" if succeeded else "oauth_failed"] += 1
        else:
            p[INTEGRATION_TYPES[r.event_type]] += 1
        success = r.event_type in ("integration_connected", "integration_used") or (
            r.event_type == "oauth_flow_completed" and succeeded
        )
        failure = r.event_type == "integration_error" or (
            r.event_type == "oauth_flow_completed" and not succeeded
        )
        for flag, name_at in ((success, "last_success_at"), (failure, "last_failure_at")):
            if flag and (p[name_at] is None or r.at.isoformat() > p[name_at]):
                p[name_at] = r.at.isoformat()
    for p in providers.values():
        p["error_rate"] = _ratio(p["errors"], p["used"] + p["errors"])
    return {"window": window.to_json(), "providers": [providers[k] for k in sorted(providers)]}


AUTH_TYPES = {
    "auth_login_attempt",
    "auth_code_verified",
    "auth_token_refresh",
    "auth_session_validated",
}


def expected_auth(window: q.TimeWindow) -> dict[str, Any]:
    groups: dict[tuple[str, str], list[bool]] = defaultdict(list)
    failures_by_day: dict[date, int] = defaultdict(int)
    for r in _in(window):
        if r.event_type in AUTH_TYPES:
            method = json_text(field_of(r, "method"))
            ok = field_of(r, "success") is True
            groups[(r.event_type, "(none)" if method is None else method)].append(ok)
            failures_by_day[day_start(r.at).date()] += not ok
    breakdown = [
        {
            "event_type": t,
            "method": m,
            "attempts": len(oks),
            "successes": sum(oks),
            "failures": len(oks) - sum(oks),
            "failure_rate": (len(oks) - sum(oks)) / len(oks),
        }
        for (t, m), oks in sorted(groups.items())
    ]
    attempts = sum(b["attempts"] for b in breakdown)
    failures = sum(b["failures"] for b in breakdown)
    return {
        "window": window.to_json(),
        "attempts": attempts,
        "failures": failures,
        "failure_rate": _ratio(failures, attempts),
        "breakdown": breakdown,
        "failures_per_day": [
            {"day": d.isoformat(), "count": failures_by_day[d]} for d in _days(window)
        ],
    }


def expected_cocoons(window: q.TimeWindow) -> dict[str, Any]:
    cocoons: dict[uuid.UUID, dict[str, Any]] = {}
    for r in sorted(_in(window), key=lambda r: r.at):
        cocoon = json_uuid(field_of(r, "cocoon_id"))
        if cocoon is None:
            continue
        c = cocoons.setdefault(
            cocoon,
            {
                "cocoon_id": str(cocoon),
                "events": 0,
                "sessions": 0,
                "disconnects": 0,
                "connected_ms": 0.0,
                "task_events": 0,
                "first_seen_at": r.at.isoformat(),
                "last_seen_at": None,
            },
        )
        c["events"] += 1
        c["sessions"] += r.event_type == "cocoon_connected"
        if r.event_type == "cocoon_disconnected":
            c["disconnects"] += 1
            c["connected_ms"] += json_ms(field_of(r, "session_duration_ms")) or 0.0
        c["task_events"] += r.event_type.startswith("task_")
        c["last_seen_at"] = r.at.isoformat()
    ordered = sorted(cocoons.values(), key=lambda c: c["cocoon_id"])
    ordered.sort(key=lambda c: c["last_seen_at"], reverse=True)
    return {
        "window": window.to_json(),
        "connected_cocoons": sum(1 for c in ordered if c["sessions"] or c["disconnects"]),
        "active_cocoons": len(ordered),
        "sessions": sum(c["sessions"] for c in ordered),
        "connected_ms": sum(c["connected_ms"] for c in ordered),
        "cocoons": ordered,
    }


def _error_kind(r: Row) -> str | None:
    """The errors aggregate's classification: None when the row is not an error."""
    status = json_int(field_of(r, "status_code"))
    if r.event_type == "application_error":
        kind = json_text(field_of(r, "error_kind"))
    elif r.event_type == "integration_error":
        kind = json_text(field_of(r, "provider"))
    elif r.event_type == "task_failed":
        kind = r.event_type
    elif r.event_type == "api_request" and status is not None and status >= 500:
        kind = f"http_{status}"
    elif (
        r.event_type in ("webhook_processed", "database_query", "oauth_flow_completed")
        and field_of(r, "success") is False
    ):
        kind = r.event_type
    else:
        return None
    return "(unknown)" if kind is None else kind


def expected_errors(window: q.TimeWindow, service: str | None = None) -> dict[str, Any]:
    hourly: dict[tuple[datetime, str, str, str], list[datetime]] = defaultdict(list)
    for r in _in(window):
        kind = _error_kind(r)
        if kind is not None and service in (None, r.service):
            hourly[(hour_start(r.at), r.service, r.event_type, kind)].append(r.at)
    totals: dict[tuple[str, str, str], list[datetime]] = defaultdict(list)
    per_hour: dict[datetime, int] = defaultdict(int)
    for (hour, *key), times in hourly.items():
        totals[tuple(key)] += times  # type: ignore[index]
        per_hour[hour] += len(times)
    hours = (window.end - window.start) // timedelta(hours=1)
    total_rows = sorted(
        (
            {
                "service": k[0],
                "event_type": k[1],
                "error_kind": k[2],
                "count": len(v),
                "last_seen_at": max(v).isoformat(),
            }
            for k, v in totals.items()
        ),
        key=lambda t: (-t["count"], t["service"], t["event_type"], t["error_kind"]),
    )
    return {
        "window": window.to_json(),
        "total": sum(per_hour.values()),
        "hourly": [
            {
                "hour": k[0].isoformat(),
                "service": k[1],
                "event_type": k[2],
                "error_kind": k[3],
                "count": len(v),
                "last_seen_at": max(v).isoformat(),
            }
            for k, v in sorted(hourly.items())
        ],
        "totals": total_rows,
        "per_hour": [
            {
                "hour": (window.start + timedelta(hours=n)).isoformat(),
                "count": per_hour[window.start + timedelta(hours=n)],
            }
            for n in range(hours)
        ],
    }


# --- Exact answers -----------------------------------------------------------------------------


def test_active_users_are_distinct_users_over_trailing_days(conn: psycopg.Connection[Any]) -> None:
    series = q.active_users(conn, WINDOW)
    assert_same(series.to_json(), expected_active_users(WINDOW))
    first = series.days[0]
    # EARLY_USER, active 25 days before, counts in MAU on the first day but not in WAU.
    assert first.mau - first.wau >= 1
    assert [d.day for d in series.days] == [(D0 + timedelta(days=n)).date() for n in range(10)]


def test_active_users_never_sum_daily_counts(conn: psycopg.Connection[Any]) -> None:
    days = q.active_users(conn, WINDOW).days
    assert all(d.dau <= d.wau <= d.mau for d in days)
    # Users come back on several days, so WAU is below the sum of the week's DAUs.
    assert days[9].wau < sum(d.dau for d in days[3:10])
    # BOUNDARY_USER: 23:59:59.999 on day 2 and 00:00 on day 3 are two active days.
    expected = expected_active_users(WINDOW)["days"]
    assert (days[2].dau, days[3].dau) == (expected[2]["dau"], expected[3]["dau"])


def test_api_latency_hourly_exact_and_window_estimates(conn: psycopg.Connection[Any]) -> None:
    report = q.api_latency(conn, WINDOW)
    assert_same(report.to_json(), expected_api(WINDOW))


def test_api_latency_splits_the_utc_day_boundary(conn: psycopg.Connection[Any]) -> None:
    report = q.api_latency(conn, WINDOW, route="/edge")
    assert [(h.hour, h.requests, h.server_errors, h.p50_latency_ms) for h in report.hourly] == [
        (at(2, 23), 1, 1, 7.0),
        (at(3), 1, 0, 9.0),
    ]
    (edge,) = report.endpoints
    assert (edge.requests, edge.server_errors, edge.error_rate) == (2, 1, 0.5)
    assert edge.p50_latency_ms == q.PercentileEstimate(weighted_mean=8.0, max_hourly=9.0)
    assert edge.mean_latency_ms == 8.0


def test_api_latency_filters_and_malformed_payloads(conn: psycopg.Connection[Any]) -> None:
    report = q.api_latency(conn, WINDOW, service="gateway")
    assert_same(report.to_json(), expected_api(WINDOW, service="gateway"))
    assert {h.service for h in report.hourly} == {"gateway"}
    legacy = q.api_latency(conn, WINDOW, service="legacy")
    rows = {(h.hour, h.method, h.route): h for h in legacy.hourly}
    # A route that is not a JSON string is no route: it joins the payload with none at all.
    assert rows.keys() == {(at(1, 3), "GET", "/tasks"), (at(1, 3), "(unknown)", "(unknown)")}
    tasks = rows[(at(1, 3), "GET", "/tasks")]
    # "5OO", 1e300 and true are not usable numbers; 503.7 is a 503.
    assert (tasks.requests, tasks.server_errors, tasks.client_errors, tasks.timed_requests) == (
        3,
        1,
        0,
        0,
    )
    assert (tasks.mean_latency_ms, tasks.p50_latency_ms, tasks.p99_latency_ms) == (None, None, None)
    # One with the route ["not", "text"] and -4 ms, one whose payload is a list.
    assert rows[(at(1, 3), "(unknown)", "(unknown)")].requests == 2
    assert rows[(at(1, 3), "(unknown)", "(unknown)")].timed_requests == 0
    summary = {(e.method, e.route): e for e in legacy.endpoints}[("GET", "/tasks")]
    assert summary.p95_latency_ms == q.PercentileEstimate(None, None)
    assert summary.error_rate == pytest.approx(1 / 3)


def test_task_stats(conn: psycopg.Connection[Any]) -> None:
    report = q.task_stats(conn, WINDOW)
    assert_same(report.to_json(), expected_tasks(WINDOW))
    # 23:59:59.999 belongs to day 2, 00:00:00 to day 3.
    random_rows = ROWS[: len(ROWS) - len(_edge_rows())]

    def count(day: int, event_type: str) -> int:
        return sum(
            1 for r in random_rows if r.event_type == event_type and day_start(r.at) == at(day)
        )

    assert report.days[2].completed == count(2, "task_completed") + 1
    assert report.days[2].failed == count(2, "task_failed")
    assert report.days[3].completed == count(3, "task_completed")
    assert report.days[3].failed == count(3, "task_failed") + 1
    # Malformed durations on day 1 are counted as completions but not timed.
    day1 = report.days[1]
    assert day1.completed - day1.timed_completions == 2


def test_integration_health(conn: psycopg.Connection[Any]) -> None:
    report = q.integration_health(conn, WINDOW)
    assert_same(report.to_json(), expected_integrations(WINDOW))
    assert "(unknown)" in {p.provider for p in report.providers}


def test_auth_activity(conn: psycopg.Connection[Any]) -> None:
    report = q.auth_activity(conn, WINDOW)
    assert_same(report.to_json(), expected_auth(WINDOW))
    by_key = {(b.event_type, b.method): b for b in report.breakdown}
    # method 42 is no method; "success": "yes" is no success.
    assert by_key[("auth_login_attempt", "(none)")].failures == 1
    assert by_key[("auth_login_attempt", "sso")].failure_rate == 0.0


def test_cocoon_activity(conn: psycopg.Connection[Any]) -> None:
    report = q.cocoon_activity(conn, WINDOW)
    assert_same(report.to_json(), expected_cocoons(WINDOW))
    assert {c.cocoon_id for c in report.cocoons} <= set(COCOONS)


def test_error_counts(conn: psycopg.Connection[Any]) -> None:
    report = q.error_counts(conn, WINDOW)
    assert_same(report.to_json(), expected_errors(WINDOW))
    assert len(report.per_hour) == 240
    kinds = {(t.event_type, t.error_kind) for t in report.totals}
    legacy = [t for t in report.totals if t.service == "legacy"]
    assert [(t.event_type, t.error_kind, t.count) for t in legacy] == [
        ("api_request", "http_503", 1)
    ]
    assert {
        ("api_request", "http_503"),
        ("application_error", "(unknown)"),
        ("integration_error", "(unknown)"),
        ("oauth_flow_completed", "oauth_flow_completed"),
        ("database_query", "database_query"),
    } <= kinds
    worker = q.error_counts(conn, WINDOW, service="worker")
    assert_same(worker.to_json(), expected_errors(WINDOW, service="worker"))


# --- Windows -----------------------------------------------------------------------------------


METRICS: list[tuple[Callable[..., q.Result], str]] = [
    (q.active_users, "analytics_daily_active_users"),
    (q.api_latency, "analytics_api_latency_hourly"),
    (q.task_stats, "analytics_task_stats_daily"),
    (q.integration_health, "analytics_integration_health_daily"),
    (q.auth_activity, "analytics_auth_events_daily"),
    (q.cocoon_activity, "analytics_cocoon_activity_daily"),
    (q.error_counts, "analytics_errors_hourly"),
]


def test_partial_windows_cover_whole_utc_buckets(conn: psycopg.Connection[Any]) -> None:
    window = q.TimeWindow(at(2, 12, minutes=30), at(3, 0, minutes=1))
    daily = q.TimeWindow(at(2), at(4))
    hourly = q.TimeWindow(at(2, 12), at(3, 1))
    assert q.task_stats(conn, window).window == daily
    assert_same(q.task_stats(conn, window).to_json(), expected_tasks(daily))
    assert_same(q.active_users(conn, window).to_json(), expected_active_users(daily))
    assert q.api_latency(conn, window).window == hourly
    assert_same(q.api_latency(conn, window).to_json(), expected_api(hourly))
    assert_same(q.error_counts(conn, window).to_json(), expected_errors(hourly))


def test_empty_window_has_zeros_not_errors(conn: psycopg.Connection[Any]) -> None:
    users = q.active_users(conn, EMPTY)
    assert {(d.dau, d.wau, d.mau) for d in users.days} == {(0, 0, 0)}
    assert len(users.days) == 11
    api = q.api_latency(conn, EMPTY)
    assert (api.hourly, api.endpoints) == ((), ())
    tasks = q.task_stats(conn, EMPTY)
    assert (tasks.created, tasks.completed, tasks.success_rate, tasks.mean_duration_ms) == (
        0,
        0,
        None,
        None,
    )
    assert all(d.completed == 0 and d.success_rate is None for d in tasks.days)
    assert q.integration_health(conn, EMPTY).providers == ()
    auth = q.auth_activity(conn, EMPTY)
    assert (auth.attempts, auth.failure_rate, auth.breakdown) == (0, None, ())
    cocoons = q.cocoon_activity(conn, EMPTY)
    assert (cocoons.connected_cocoons, cocoons.sessions, cocoons.cocoons) == (0, 0, ())
    errors = q.error_counts(conn, EMPTY)
    assert (errors.total, errors.hourly) == (0, ())
    assert {h.count for h in errors.per_hour} == {0}


def test_answers_do_not_depend_on_the_session_time_zone(url: str) -> None:
    window = q.TimeWindow(at(2, 20), at(4, 3))
    with (
        psycopg.connect(url, autocommit=True) as utc_conn,
        psycopg.connect(url, autocommit=True) as far_conn,
    ):
        far_conn.execute("SET TimeZone = 'Pacific/Chatham'")
        for function, _ in METRICS:
            assert function(far_conn, window) == function(utc_conn, window)


def test_windows_reject_naive_and_inverted_ranges() -> None:
    naive = datetime(2024, 1, 1)
    aware = datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match=r"start is a naive datetime \(2024-01-01T00:00:00\)"):
        q.TimeWindow(naive, aware)
    with pytest.raises(ValueError, match="end is a naive datetime"):
        q.TimeWindow(aware, naive)
    with pytest.raises(ValueError, match="empty or inverted window: start 2024-01-01T00:00:00"):
        q.TimeWindow(aware, aware)
    with pytest.raises(ValueError, match="empty or inverted window"):
        q.TimeWindow(aware + timedelta(hours=1), aware)
    with pytest.raises(ValueError, match="inverted range: last day 2024-01-01 is before"):
        q.TimeWindow.days(date(2024, 1, 2), date(2024, 1, 1))
    with pytest.raises(ValueError, match="must be a date"):
        q.TimeWindow.days(aware, date(2024, 1, 1))
    with pytest.raises(TypeError, match="must be a timezone-aware datetime"):
        q.TimeWindow("2024-01-01", aware)  # type: ignore[arg-type]


def test_windows_normalise_to_utc_and_cover_buckets() -> None:
    start = datetime.fromisoformat("2024-01-01T01:30:00+02:00")
    window = q.TimeWindow(start, start + timedelta(hours=5))
    assert window.start == datetime(2023, 12, 31, 23, 30, tzinfo=UTC)
    assert window.start.tzinfo is UTC and window.end.tzinfo is UTC
    assert window.covering(timedelta(days=1)) == q.TimeWindow(
        datetime(2023, 12, 31, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)
    )
    assert window.covering(timedelta(hours=1)) == q.TimeWindow(
        datetime(2023, 12, 31, 23, tzinfo=UTC), datetime(2024, 1, 1, 5, tzinfo=UTC)
    )
    aligned = q.TimeWindow.days(date(2024, 1, 1), date(2024, 1, 1))
    assert aligned.covering(timedelta(days=1)) == aligned


@pytest.mark.parametrize("function", [f for f, _ in METRICS], ids=[n for _, n in METRICS])
def test_metrics_reject_invalid_windows_before_querying(
    function: Callable[..., q.Result], conn: psycopg.Connection[Any]
) -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        function(conn, q.TimeWindow(datetime(2024, 1, 1), datetime(2024, 1, 2)))


# --- They read the aggregates, never the raw table ---------------------------------------------


@pytest.mark.parametrize(("function", "aggregate"), METRICS, ids=[n for _, n in METRICS])
def test_metrics_read_their_aggregate_not_the_events_table(
    url: str, function: Callable[..., q.Result], aggregate: str
) -> None:
    with recording_connection(url) as (conn, executed):
        function(conn, WINDOW)
        statements = list(executed)
        assert statements, "the function ran no SQL"
        raw = re.compile(rf"\b{EVENTS_TABLE}\b")
        for statement in statements:
            assert f'"{aggregate}"' in statement.sql
            assert not raw.search(statement.sql), statement.sql
        if inspect_server(conn).edition is Edition.APACHE:
            # The plans too: the materialized rows come from the aggregate's own table. (On
            # both editions the buckets past the last refresh are computed from recent raw
            # rows through the view, by design: real-time aggregation.)
            for statement in statements:
                plan = statement.plan(conn)
                assert f"{aggregate}_materialized" in plan, plan


# --- Results serialise -------------------------------------------------------------------------


@pytest.mark.parametrize("function", [f for f, _ in METRICS], ids=[n for _, n in METRICS])
def test_results_serialise_to_json(
    function: Callable[..., q.Result], conn: psycopg.Connection[Any]
) -> None:
    result = function(conn, WINDOW)
    document = json.loads(json.dumps(result.to_json()))
    assert document == result.to_json()
    assert document["window"] == {"start": WINDOW.start.isoformat(), "end": WINDOW.end.isoformat()}
    assert dataclasses.asdict(result).keys() == document.keys()  # type: ignore[call-overload]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.window = EMPTY  # type: ignore[attr-defined]
