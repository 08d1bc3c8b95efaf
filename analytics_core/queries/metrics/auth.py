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
    """Attempts of one auth event type with one method.

    - ``event_type``: ``auth_login_attempt``, ``auth_code_verified``, ``auth_token_refresh`` or
      ``auth_session_validated``.
    - ``method``: the payload's ``method``; ``(none)`` when it has none.
    - ``attempts``: events, at least 1.
    - ``successes``: attempts whose payload's ``success`` is ``true``; ``failures``: every other
      (a missing or non-boolean ``success`` is a failure).
    - ``failure_rate``: ``failures / attempts``, from 0 to 1 (never None here: a breakdown is
      listed only with attempts).
    """

    event_type: str
    method: str
    attempts: int
    successes: int
    failures: int
    failure_rate: float | None


@dataclass(frozen=True, slots=True)
class AuthReport(Result):
    """Auth attempts and failures over a window.

    - ``window``: the whole UTC days answered for: the requested window widened to midnights.
    - ``attempts``, ``failures``: over every auth event type and method.
    - ``failure_rate``: ``failures / attempts``, from 0 to 1; None when there were no attempts.
    - ``breakdown``: one per (event type, method) with attempts, ordered by event type, then
      method.
    - ``failures_per_day``: failures per UTC day, every day of ``window``, zeros included.
    """

    window: TimeWindow
    attempts: int
    failures: int
    failure_rate: float | None
    breakdown: tuple[AuthBreakdown, ...]
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
