"""Auth attempts and failure rates, read from ``AUTH_EVENTS_DAILY``.

That aggregate (``analytics_auth_events_daily``) holds one row per UTC day, auth event type
and method.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg

from analytics_core.queries._ratio import ratio
from analytics_core.queries._results import DayCount, Result
from analytics_core.queries._window import TimeWindow, days_of
from analytics_core.queries.metrics._buckets import bucket_day, read_buckets
from analytics_core.schema import AUTH_EVENTS_DAILY

__all__ = ["AuthBreakdown", "AuthReport", "auth_activity"]


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
    covered, rows = read_buckets(
        conn,
        AUTH_EVENTS_DAILY,
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
        failures_by_day[bucket_day(day)] = failures_by_day.get(bucket_day(day), 0) + failures
    breakdown = tuple(
        AuthBreakdown(event_type, method, attempts, successes, failures, ratio(failures, attempts))
        for (event_type, method), (attempts, successes, failures) in sorted(totals.items())
    )
    attempts = sum(b.attempts for b in breakdown)
    failures = sum(b.failures for b in breakdown)
    return AuthReport(
        window=covered,
        attempts=attempts,
        failures=failures,
        failure_rate=ratio(failures, attempts),
        breakdown=breakdown,
        failures_per_day=tuple(
            DayCount(day, failures_by_day.get(day, 0)) for day in days_of(covered)
        ),
    )
