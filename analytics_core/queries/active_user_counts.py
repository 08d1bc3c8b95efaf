"""Daily, weekly and monthly active users, read from ``DAILY_ACTIVE_USERS``.

That aggregate (``analytics_daily_active_users``) holds one row per UTC day and user.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

import psycopg
from psycopg import sql

from analytics_core.queries._buckets import aggregate_identifiers, days_of
from analytics_core.queries._fetch import fetch_all
from analytics_core.queries._results import Result
from analytics_core.queries._window import TimeWindow
from analytics_core.schema import DAILY_ACTIVE_USERS

__all__ = ["MAU_DAYS", "WAU_DAYS", "ActiveUsersDay", "ActiveUsersSeries", "active_users"]

#: Days in the trailing windows of weekly and monthly active users, the day itself included.
WAU_DAYS: Final = 7
MAU_DAYS: Final = 30


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
    covered = window.covering(DAILY_ACTIVE_USERS.bucket)
    days = days_of(covered)
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
    ).format(**aggregate_identifiers(DAILY_ACTIVE_USERS))
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
