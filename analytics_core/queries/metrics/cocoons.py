"""Connected cocoons, sessions and connected time, read from ``COCOON_ACTIVITY_DAILY``.

That aggregate (``analytics_cocoon_activity_daily``) holds one row per UTC day and cocoon.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from analytics_core.queries._fetch import utc
from analytics_core.queries._results import Result
from analytics_core.queries._window import TimeWindow
from analytics_core.queries.metrics._buckets import read_buckets
from analytics_core.schema import COCOON_ACTIVITY_DAILY

__all__ = ["CocoonActivity", "CocoonReport", "cocoon_activity"]


@dataclass(frozen=True, slots=True)
class CocoonActivity(Result):
    """One cocoon over the window.

    - ``cocoon_id``: the payload's ``cocoon_id``.
    - ``events``: events naming the cocoon, at least 1.
    - ``sessions``: ``cocoon_connected`` events; ``disconnects``: ``cocoon_disconnected``
      events.
    - ``connected_ms``: the ``session_duration_ms`` reported by the disconnections in the
      window, summed, in milliseconds; 0 when none was reported (a session still open has
      reported nothing yet).
    - ``task_events``: events whose type starts with ``task_``.
    - ``first_seen_at``, ``last_seen_at``: its earliest and latest event in the window (UTC).
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
    """Cocoon activity over a window.

    - ``window``: the whole UTC days answered for: the requested window widened to midnights.
    - ``connected_cocoons``: distinct cocoons with a session in the window: one that connected
      or disconnected in it.
    - ``active_cocoons``: distinct cocoons with any event.
    - ``sessions``: connections of every cocoon.
    - ``connected_ms``: the connected time of every cocoon, in milliseconds (see
      :class:`CocoonActivity`).
    - ``cocoons``: one per active cocoon, most recently seen first (ties by id).
    """

    window: TimeWindow
    connected_cocoons: int
    active_cocoons: int
    sessions: int
    connected_ms: float
    cocoons: tuple[CocoonActivity, ...]


def cocoon_activity(conn: psycopg.Connection[Any], window: TimeWindow) -> CocoonReport:
    """Connected cocoons, sessions, connected time and last seen per cocoon.

    Reads ``analytics_cocoon_activity_daily``; exact over the UTC days the window overlaps.
    Events whose ``cocoon_id`` is not a UUID are not in the aggregate, so not counted.
    """
    covered, rows = read_buckets(
        conn,
        COCOON_ACTIVITY_DAILY,
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
