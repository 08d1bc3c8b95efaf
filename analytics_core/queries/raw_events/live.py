"""What is happening now, read from the raw events table.

The aggregates are too coarse (hours and days) and, on the Apache edition, only as fresh as
the last ``maintain``, so these read ``analytics_events`` directly, over windows of minutes
that the primary key (timestamp first) reaches without touching older chunks.

"Now" is the database's clock unless a ``now`` is passed; windows are half-open
``[now - minutes, now)``, so events stamped after ``now`` (a producer's fast clock) are not
counted until their time comes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import psycopg
from psycopg import sql

from analytics_core._checks import positive_int
from analytics_core.queries._fetch import database_now, fetch_all, fetch_one
from analytics_core.queries._results import EventTypeCount, Result
from analytics_core.queries._window import TimeWindow
from analytics_core.queries.raw_events._record import EVENT_COLUMNS, EventRecord
from analytics_core.schema import EVENTS_TABLE

__all__ = [
    "LiveCount",
    "LiveSnapshot",
    "LiveTopTypes",
    "events_last_minute",
    "live_active_users",
    "live_snapshot",
    "recent_events",
    "top_event_types_now",
]

_TABLE: Final = sql.Identifier(EVENTS_TABLE)
_IN_WINDOW: Final = sql.SQL('"timestamp" >= %(start)s AND "timestamp" < %(end)s')


@dataclass(frozen=True, slots=True)
class LiveCount(Result):
    """A count over the last minutes.

    - ``window``: ``[now - minutes, now)``.
    - ``count``: what was counted in it.
    """

    window: TimeWindow
    count: int


@dataclass(frozen=True, slots=True)
class LiveTopTypes(Result):
    """The most frequent event types of the last minutes.

    - ``window``: ``[now - minutes, now)``.
    - ``event_types``: at most ``limit`` of them, most first (ties by name); empty when the
      window has no events.
    """

    window: TimeWindow
    event_types: tuple[EventTypeCount, ...]


def _window(conn: psycopg.Connection[Any], minutes: int, now: datetime | None) -> TimeWindow:
    positive_int(minutes, "minutes")
    return TimeWindow.trailing(timedelta(minutes=minutes), database_now(conn, now))


def _bounds(window: TimeWindow) -> dict[str, Any]:
    return {"start": window.start, "end": window.end}


def live_active_users(
    conn: psycopg.Connection[Any], minutes: int = 5, now: datetime | None = None
) -> LiveCount:
    """Distinct users with an event in the last ``minutes`` minutes.

    Reads ``analytics_events``. Raises ValueError for ``minutes`` below 1 or a naive ``now``.
    """
    window = _window(conn, minutes, now)
    query = sql.SQL(
        "SELECT count(DISTINCT user_id) FROM {} WHERE {} AND user_id IS NOT NULL"
    ).format(_TABLE, _IN_WINDOW)
    (count,) = fetch_one(conn, query, _bounds(window))
    return LiveCount(window, count)


def events_last_minute(conn: psycopg.Connection[Any], now: datetime | None = None) -> LiveCount:
    """Events of any type in the last minute. Reads ``analytics_events``."""
    window = _window(conn, 1, now)
    query = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(_TABLE, _IN_WINDOW)
    (count,) = fetch_one(conn, query, _bounds(window))
    return LiveCount(window, count)


def top_event_types_now(
    conn: psycopg.Connection[Any],
    minutes: int = 5,
    limit: int = 10,
    now: datetime | None = None,
) -> LiveTopTypes:
    """The ``limit`` most frequent event types of the last ``minutes`` minutes.

    Reads ``analytics_events``. Raises ValueError for ``minutes`` or ``limit`` below 1.
    """
    positive_int(limit, "limit")
    window = _window(conn, minutes, now)
    query = sql.SQL(
        "SELECT event_type, count(*) FROM {} WHERE {} "
        "GROUP BY event_type ORDER BY count(*) DESC, event_type LIMIT %(limit)s"
    ).format(_TABLE, _IN_WINDOW)
    rows = fetch_all(conn, query, {**_bounds(window), "limit": limit})
    return LiveTopTypes(window, tuple(EventTypeCount(t, c) for t, c in rows))


def recent_events(conn: psycopg.Connection[Any], limit: int = 20) -> tuple[EventRecord, ...]:
    """The ``limit`` latest events by timestamp, newest first, with their payloads.

    Reads ``analytics_events``, walking the primary key backwards from the newest chunk.
    Raises ValueError for ``limit`` below 1.
    """
    positive_int(limit, "limit")
    query = sql.SQL('SELECT {} FROM {} ORDER BY "timestamp" DESC, id DESC LIMIT %(limit)s').format(
        EVENT_COLUMNS, _TABLE
    )
    return tuple(EventRecord.from_row(row) for row in fetch_all(conn, query, {"limit": limit}))


@dataclass(frozen=True, slots=True)
class LiveSnapshot(Result):
    """Everything :mod:`.live` answers, as of one instant.

    - ``as_of``: that instant: ``now`` when given, else the database's clock (UTC).
    - ``minutes``: the length of ``active_users``' and ``top_event_types``' windows.
    - ``active_users``: distinct users with an event in the last ``minutes`` minutes.
    - ``events_last_minute``: events of any type in the last minute.
    - ``top_event_types``: the most frequent event types of the last ``minutes`` minutes.
    - ``recent_events``: the latest events by timestamp, newest first; not bounded by
      ``as_of``, so an event stamped after it can be among them.
    """

    as_of: datetime
    minutes: int
    active_users: LiveCount
    events_last_minute: LiveCount
    top_event_types: LiveTopTypes
    recent_events: tuple[EventRecord, ...]


def live_snapshot(
    conn: psycopg.Connection[Any],
    minutes: int = 5,
    limit: int = 10,
    now: datetime | None = None,
) -> LiveSnapshot:
    """Active users and top event types over ``minutes``, events in the last minute and the
    ``limit`` most recent events, all as of one ``now`` (default: the database's clock).

    Reads ``analytics_events``. Raises ValueError for ``minutes`` or ``limit`` below 1.
    """
    positive_int(minutes, "minutes")
    positive_int(limit, "limit")
    at = database_now(conn, now)
    return LiveSnapshot(
        as_of=at,
        minutes=minutes,
        active_users=live_active_users(conn, minutes, at),
        events_last_minute=events_last_minute(conn, at),
        top_event_types=top_event_types_now(conn, minutes, limit, at),
        recent_events=recent_events(conn, limit),
    )
