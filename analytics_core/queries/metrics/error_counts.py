"""Error counts by service, event type and kind, read from ``ERRORS_HOURLY``.

That aggregate (``analytics_errors_hourly``) holds one row per UTC hour, service, event type
and error kind; its definition says what counts as an error and what its kind is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from analytics_core.queries._fetch import utc
from analytics_core.queries._results import HourCount, Result
from analytics_core.queries._window import TimeWindow, hours_of
from analytics_core.queries.metrics._buckets import read_buckets
from analytics_core.schema import ERRORS_HOURLY

__all__ = ["ErrorHour", "ErrorReport", "ErrorTotal", "error_counts"]


@dataclass(frozen=True, slots=True)
class ErrorHour(Result):
    """Errors of one service, event type and kind in one UTC hour.

    - ``hour``: the start of the UTC hour.
    - ``service``: the service that reported them.
    - ``event_type``: the type of the events counted as errors.
    - ``error_kind``: their kind (see :func:`error_counts`); ``(unknown)`` when the payload
      lacked it.
    - ``count``: errors, at least 1.
    - ``last_seen_at``: the latest of them (UTC).
    """

    hour: datetime
    service: str
    event_type: str
    error_kind: str
    count: int
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class ErrorTotal(Result):
    """Errors of one service, event type and kind over the window.

    - ``service``, ``event_type``, ``error_kind``: as in :class:`ErrorHour`.
    - ``count``: errors in the window, at least 1.
    - ``last_seen_at``: the latest of them (UTC).
    """

    service: str
    event_type: str
    error_kind: str
    count: int
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class ErrorReport(Result):
    """Error counts over a window.

    - ``window``: the whole UTC hours answered for: the requested window widened to whole hours.
    - ``total``: every error in ``window``.
    - ``hourly``: every (hour, service, event type, kind) with errors, ordered by hour, then
      service, event type and kind.
    - ``totals``: one per (service, event type, kind), most errors first (ties by service,
      event type, kind).
    - ``per_hour``: all errors per UTC hour, every hour of ``window``, zeros included.
    """

    window: TimeWindow
    total: int
    hourly: tuple[ErrorHour, ...]
    totals: tuple[ErrorTotal, ...]
    per_hour: tuple[HourCount, ...]


def error_counts(
    conn: psycopg.Connection[Any], window: TimeWindow, *, service: str | None = None
) -> ErrorReport:
    """Error counts by service and kind, per UTC hour and over the window.

    Reads ``analytics_errors_hourly``, whose definition says what counts as an error and
    what its kind is (an application error's ``error_kind``, an integration's provider,
    ``http_<status>`` such as ``http_503`` for server errors, the event type otherwise).
    Exact. ``service`` narrows the answer to one service.
    """
    covered, rows = read_buckets(
        conn,
        ERRORS_HOURLY,
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
        per_hour=tuple(HourCount(hour, per_hour.get(hour, 0)) for hour in hours_of(covered)),
    )
