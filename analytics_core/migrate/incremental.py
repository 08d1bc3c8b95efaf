"""The Apache edition's aggregates: views over incrementally materialized rows.

``post_0006_apache_incremental_aggregates`` turns each aggregate into a view with the same
name and columns over ``<name>_materialized`` (rows kept forever) and a live part computed
from the events past the aggregate's watermark; ``analytics_aggregate_refreshes`` holds the
watermarks. This module reads that state for ``maintain``, ``status`` and the drift check.

Read-only: works on a replica and with ``default_transaction_read_only=on``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from analytics_core.migrate._catalog import in_python_range
from analytics_core.schema import AGGREGATE_REFRESHES_TABLE, AGGREGATES

__all__ = ["KIND", "AggregateRefresh", "incremental_aggregates"]

#: The kind ``status`` and the drift check give an aggregate of this shape.
KIND = "incremental aggregate"


@dataclass(frozen=True, slots=True)
class AggregateRefresh:
    """One aggregate's incremental state (a row of ``analytics_aggregate_refreshes``)."""

    name: str
    #: Buckets before it are materialized, the view computes later ones from the events;
    #: None while nothing is materialized.
    materialized_until: datetime | None
    #: When the last refresh committed, whoever ran it (``maintain`` or pg_cron); None if
    #: none has since the aggregate took this shape.
    refreshed_at: datetime | None
    #: What the last refresh (or the conversion) did, in words.
    detail: str | None


def incremental_aggregates(conn: psycopg.Connection[Any]) -> dict[str, AggregateRefresh]:
    """The aggregates that have the incremental shape complete (the view, its table, its
    function and its state row), by name; empty where the migration has not run."""
    row = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (AGGREGATE_REFRESHES_TABLE,)
    ).fetchone()
    if not (row and row[0]):
        return {}
    names = [aggregate.name for aggregate in AGGREGATES]
    rows = conn.execute(
        f"""
        SELECT r.aggregate, {in_python_range("r.materialized_until")},
               {in_python_range("r.refreshed_at")}, r.detail
        FROM {AGGREGATE_REFRESHES_TABLE} r
        JOIN pg_views v ON v.viewname = r.aggregate AND v.schemaname = current_schema()
        WHERE r.aggregate = ANY(%s)
          AND to_regclass(quote_ident(r.aggregate || '_materialized')) IS NOT NULL
          AND EXISTS (SELECT FROM pg_proc p WHERE p.proname = r.aggregate || '_between'
                        AND p.pronamespace = current_schema()::regnamespace)
        """,
        (names,),
    ).fetchall()
    return {
        str(name): AggregateRefresh(str(name), until, refreshed, detail)
        for name, until, refreshed, detail in rows
    }
