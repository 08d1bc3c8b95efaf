"""Daily, weekly and monthly active users, read from ``DAILY_ACTIVE_USERS``.

That aggregate (``analytics_daily_active_users``) holds one row per UTC day and user.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

import psycopg
from psycopg import sql

from analytics_core.queries._fetch import fetch_all
from analytics_core.queries._results import Result
from analytics_core.queries._window import TimeWindow, days_of
from analytics_core.queries.metrics._buckets import aggregate_identifiers
from analytics_core.schema import DAILY_ACTIVE_USERS

__all__ = ["MAU_DAYS", "WAU_DAYS", "ActiveUsersDay", "ActiveUsersSeries", "active_users"]

#: Days in the trailing windows of weekly and monthly active users, the day itself included.
WAU_DAYS: Final = 7
MAU_DAYS: Final = 30


# A user active on day d counts towards DAU on d, and towards WAU (MAU) on every day from d
# until d + 7 (d + 30) or their next active day, whichever comes first. One user's spans
# never overlap, so on each day the distinct users are the spans that have started and not
# yet ended: a running sum of +1 where spans start and -1 where they end, exact without
# count(DISTINCT), since the aggregate holds one row per day and user. A span depends only on
# its day and the gap to the user's next active day (capped at 30), so the rows are first
# counted by (day, gap), a few hundred groups, and the edges are computed from those.
_SWEEP: Final = sql.SQL(
    """
    WITH active AS (
        -- Each (day, user) row with the user's next active day; NULL for their last.
        -- Ordered as the (user_id, day DESC) index is, so that no sort is needed.
        SELECT ({t} AT TIME ZONE 'UTC')::date AS day,
               lag(({t} AT TIME ZONE 'UTC')::date)
                   OVER (PARTITION BY user_id ORDER BY {t} DESC) AS next_day
        FROM {view}
        WHERE {t} >= %(lookback)s AND {t} < %(end)s
    ),
    spans AS (
        -- least() ignores NULL: no next active day is a gap of 30.
        SELECT day, least(next_day - day, %(mau_days)s) AS gap, count(*) AS users
        FROM active
        GROUP BY day, gap
    ),
    changes AS (
        SELECT edge.day, sum(edge.dau) AS dau, sum(edge.wau) AS wau, sum(edge.mau) AS mau
        FROM spans
        CROSS JOIN LATERAL (VALUES
            (spans.day, spans.users, spans.users, spans.users),
            (spans.day + least(spans.gap, %(wau_days)s), 0, -spans.users, 0),
            (spans.day + spans.gap, 0, 0, -spans.users)
        ) AS edge(day, dau, wau, mau)
        GROUP BY edge.day
    ),
    running AS (
        -- Every day from the look-back on, so that days without activity get their figures.
        SELECT calendar.day,
               coalesce(changes.dau, 0) AS dau,
               sum(coalesce(changes.wau, 0)) OVER (ORDER BY calendar.day) AS wau,
               sum(coalesce(changes.mau, 0)) OVER (ORDER BY calendar.day) AS mau
        FROM generate_series(0, %(calendar_days)s - 1) AS offsets(n)
        CROSS JOIN LATERAL (SELECT %(lookback_day)s::date + offsets.n AS day) AS calendar
        LEFT JOIN changes ON changes.day = calendar.day
    )
    SELECT day, dau::bigint, wau::bigint, mau::bigint
    FROM running
    WHERE day >= %(first)s
    ORDER BY day
    """
)


@dataclass(frozen=True, slots=True)
class ActiveUsersDay(Result):
    """Active users on one UTC day: exact counts of distinct users, never sums of daily counts.

    - ``day``: the UTC day.
    - ``dau``: users with an event on ``day``.
    - ``wau``: users with an event in the ``WAU_DAYS`` (7) days ending with ``day``, ``day``
      included.
    - ``mau``: the same over the ``MAU_DAYS`` (30) days ending with ``day``.

    Only events that carry a ``user_id`` count.
    """

    day: date
    dau: int
    wau: int
    mau: int


@dataclass(frozen=True, slots=True)
class ActiveUsersSeries(Result):
    """DAU, WAU and MAU for every UTC day of a window.

    - ``window``: the whole UTC days answered for: the requested window widened to midnights.
    - ``days``: one per day of ``window``, oldest first; a day without activity has zeros.
    """

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
    # The first day whose rows count towards the first day's MAU.
    lookback = days[0] - timedelta(days=MAU_DAYS - 1)
    rows = fetch_all(
        conn,
        _SWEEP.format(**aggregate_identifiers(DAILY_ACTIVE_USERS)),
        {
            "lookback": covered.start - timedelta(days=MAU_DAYS - 1),
            "end": covered.end,
            "lookback_day": lookback,
            "calendar_days": (days[-1] - lookback).days + 1,
            "first": days[0],
            "wau_days": WAU_DAYS,
            "mau_days": MAU_DAYS,
        },
    )
    return ActiveUsersSeries(
        covered, tuple(ActiveUsersDay(day, dau, wau, mau) for day, dau, wau, mau in rows)
    )
