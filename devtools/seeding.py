"""Databases with our schema and hand-made events, for tests and benchmarks.

Rows go straight into the events table (COPY, or one INSERT for engines without COPY), not
through the client, so a caller controls every column, including payloads our models would
reject. A migrated database here holds still: its policy jobs are paused, and its aggregates
change only when the caller refreshes them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from analytics_core.migrate import Edition, Phase, apply, connect, maintain, pause_jobs
from analytics_core.migrate.edition import inspect_server
from analytics_core.schema import AGGREGATES, EVENT_COPY_COLUMNS, EVENTS_TABLE
from devtools.databases import ThrowawayDatabases

__all__ = [
    "EventRow",
    "hold_the_scheduler",
    "insert",
    "insert_statement",
    "migrate",
    "migrated_database",
    "refresh",
    "refresh_continuous_aggregates",
]


@dataclass(frozen=True, slots=True)
class EventRow:
    """One row of the events table. ``data`` is the payload (any JSON value)."""

    at: datetime
    event_type: str
    data: Any
    user_id: uuid.UUID | None = None
    service: str = "platform"
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)


def migrate(url: str) -> None:
    """Apply every migration (pre, then post) to the database at ``url``, then
    ``hold_the_scheduler``."""
    apply(url, (Phase.PRE, Phase.POST))
    hold_the_scheduler(url)


@contextmanager
def migrated_database(databases: ThrowawayDatabases) -> Iterator[str]:
    """A fresh database from ``databases`` with every migration applied; dropped afterwards."""
    with databases.database() as url:
        migrate(url)
        yield url


def insert(url: str, rows: Iterable[EventRow]) -> None:
    """COPY ``rows`` into the events table in one transaction."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(EVENTS_TABLE), sql.SQL(", ").join(map(sql.Identifier, EVENT_COPY_COLUMNS))
    )
    with psycopg.connect(url) as conn, conn.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(
                (
                    row.at,
                    row.event_type,
                    row.service,
                    row.user_id,
                    json.dumps(row.data),
                    row.event_id,
                )
            )


def insert_statement(rows: Iterable[EventRow]) -> str:
    """One INSERT statement for every row (event ids left to the table's default).

    No parameters, so it runs on any engine, PGlite included, which has no COPY.
    """
    documents = [
        {
            "ts": row.at.isoformat(),
            "type": row.event_type,
            "service": row.service,
            "user_id": None if row.user_id is None else str(row.user_id),
            "data": row.data,
        }
        for row in rows
    ]
    payload = json.dumps(documents)
    assert "$rows$" not in payload
    return (
        f'INSERT INTO {EVENTS_TABLE} ("timestamp", event_type, service, user_id, data) '
        "SELECT (r->>'ts')::timestamptz, r->>'type', r->>'service', "
        "(r->>'user_id')::uuid, r->'data' "
        f"FROM jsonb_array_elements($rows${payload}$rows$::jsonb) AS r"
    )


def hold_the_scheduler(url: str) -> None:
    """Pause our policy jobs on a server with a scheduler, so that the data a test loaded
    changes only when the test says so (a real server would otherwise compress its chunks,
    drop old ones and refresh aggregates while the test reads). A no-op on the Apache edition.
    """
    with connect(url) as conn:
        if inspect_server(conn).edition is Edition.COMMUNITY:
            pause_jobs(conn)


def refresh_continuous_aggregates(conn: psycopg.Connection[Any]) -> None:
    """A full refresh of each continuous aggregate, one at a time (Community edition only).

    ``conn`` must be autocommit: the procedure commits.
    """
    for aggregate in AGGREGATES:
        conn.execute("CALL refresh_continuous_aggregate(%s, NULL, NULL)", (aggregate.name,))


def refresh(url: str) -> None:
    """Bring every aggregate up to date with the events, then one round of ``maintain``.

    Community edition: a full refresh of each continuous aggregate first, because the refresh
    policy (and so ``maintain``) only covers the last three days. Apache edition: ``maintain``
    refreshes the views. ``maintain`` also drops chunks past retention (90 days), so test
    events must be recent.
    """
    with connect(url) as conn:
        if inspect_server(conn).edition is Edition.COMMUNITY:
            refresh_continuous_aggregates(conn)
        result = maintain(conn)
    assert result.ok, result.tasks
