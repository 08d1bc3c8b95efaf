"""Reading the buckets of an aggregate that a window overlaps.

Aggregates hold whole UTC buckets (a day from 00:00 UTC, an hour from hh:00 UTC), so a query
answers for every bucket its window overlaps: :meth:`TimeWindow.covering` widens the window,
and the widened window is the one a result reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, LiteralString

import psycopg
from psycopg import sql

from analytics_core.queries._fetch import fetch_all, utc
from analytics_core.queries._window import TimeWindow
from analytics_core.schema import Aggregate

__all__ = ["aggregate_identifiers", "bucket_day", "read_buckets"]


def aggregate_identifiers(aggregate: Aggregate) -> dict[str, sql.Composable]:
    """``{view}`` (the aggregate) and ``{t}`` (its bucket column), for ``sql.SQL.format``."""
    return {"view": sql.Identifier(aggregate.name), "t": sql.Identifier(aggregate.time_column)}


def read_buckets(
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
    statement = sql.SQL(query).format(**aggregate_identifiers(aggregate))
    rows = fetch_all(
        conn, statement, {"start": covered.start, "end": covered.end, **(params or {})}
    )
    return covered, rows


def bucket_day(value: datetime) -> date:
    """The UTC day of a daily bucket's timestamptz."""
    return utc(value).date()
