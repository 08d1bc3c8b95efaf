"""Task outcomes, success rate and durations, read from ``TASK_STATS_DAILY``.

That aggregate (``analytics_task_stats_daily``) holds one row per UTC day, with that day's
exact duration percentiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg

from analytics_core.queries._ratio import ratio
from analytics_core.queries._results import Result
from analytics_core.queries._window import TimeWindow, days_of
from analytics_core.queries.metrics._buckets import bucket_day, read_buckets
from analytics_core.schema import TASK_STATS_DAILY

__all__ = ["TaskDay", "TaskReport", "task_stats"]


@dataclass(frozen=True, slots=True)
class TaskDay(Result):
    """Task outcomes on one UTC day. Every figure is exact for the day.

    - ``day``: the UTC day.
    - ``created``, ``started``, ``completed``, ``failed``, ``cancelled``: events of each
      ``task_*`` type on the day.
    - ``success_rate``: ``completed / (completed + failed)``, from 0 to 1; None when neither
      happened.
    - ``timed_completions``: completions whose ``duration_ms`` was a valid number; every
      duration covers only these.
    - ``mean_duration_ms``, ``max_duration_ms``, ``p50_duration_ms``, ``p95_duration_ms``: in
      milliseconds; None when no completion of the day was timed.
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
    """Task outcomes over a window, in total (exact) and per day.

    - ``window``: the whole UTC days answered for: the requested window widened to midnights.
    - ``created``, ``started``, ``completed``, ``failed``, ``cancelled``,
      ``timed_completions``: as in :class:`TaskDay`, summed over the days.
    - ``success_rate``: ``completed / (completed + failed)``; None when neither happened.
    - ``mean_duration_ms``: every timed completion's duration summed over their count, in
      milliseconds; None when none was timed.
    - ``max_duration_ms``: the longest timed completion, in milliseconds; None when none was
      timed.
    - ``days``: every day of ``window``, oldest first, zeros included. Percentiles are only per
      day: those of different days cannot be combined exactly.
    """

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
    covered, rows = read_buckets(
        conn,
        TASK_STATS_DAILY,
        window,
        """
        SELECT {t}, created_count, started_count, completed_count, failed_count,
               cancelled_count, timed_count, duration_sum_ms, duration_max_ms,
               duration_p50_ms, duration_p95_ms
        FROM {view}
        WHERE {t} >= %(start)s AND {t} < %(end)s
        """,
    )
    found = {bucket_day(row[0]): row[1:] for row in rows}
    days: list[TaskDay] = []
    duration_sum = 0.0
    for day in days_of(covered):
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
                success_rate=ratio(completed, completed + failed),
                timed_completions=timed,
                mean_duration_ms=ratio(total, timed),
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
        success_rate=ratio(completed, completed + failed),
        timed_completions=timed,
        mean_duration_ms=ratio(duration_sum, timed),
        max_duration_ms=max(maxima) if maxima else None,
        days=tuple(days),
    )
