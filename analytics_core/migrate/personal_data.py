"""A person's events: export them (an access request) and erase them (a deletion request).

A person is a ``user_id``: the column every event that concerns a user fills in, and the only
personal identifier the schema keeps (``analytics_daily_active_users`` has it too; the other
aggregates hold counts and latencies, no ids).

**Erasing** removes, in this order:

1. the person's raw rows from ``analytics_events``, a chunk at a time (one short transaction
   each; on the Community edition compressed chunks included, which TimescaleDB decompresses
   only where the person's rows lie);
2. their contribution to every aggregate, for the buckets whose raw data still exists: those
   buckets are computed again from what is left (only the window between their first and
   last event, or aggregate row);
3. their rows of ``analytics_daily_active_users`` older than the raw data, which nothing could
   recompute: deleted where they are stored. Counts of those older buckets in the other
   aggregates stay as they are: they carry no id, and recomputing them without the raw rows
   would wipe everyone's history.

Then one row goes into ``analytics_erasures``: when, the SHA-256 of the id, how many rows.
Running it again removes nothing more and records that too. It takes no lock that stops
ingestion: rows are deleted one chunk at a time and aggregates refreshed as their policies do.
Events of the person that arrive while it runs (or later) are new data: stop sending them
first, or erase again.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from analytics_core import connection
from analytics_core._json import jsonable
from analytics_core.errors import SchemaNotMigrated
from analytics_core.migrate.edition import Edition, edition_to_maintain, inspect_server
from analytics_core.migrate.incremental import incremental_aggregates
from analytics_core.schema import (
    AGGREGATES,
    DAILY_ACTIVE_USERS,
    ERASURES_TABLE,
    EVENTS_TABLE,
    Aggregate,
)

__all__ = [
    "ErasureReport",
    "Footprint",
    "erase_user",
    "export_user_events",
    "subject_hash",
    "user_footprint",
]

_EXPORT_BATCH: Final = 1_000
_EXPORT_COLUMNS: Final = ("event_id", "timestamp", "event_type", "service", "user_id", "data")


@dataclass(frozen=True, slots=True)
class Footprint:
    """Where a person's data is, before anything is erased."""

    raw_rows: int
    #: Their rows of analytics_daily_active_users (stored, or computed live from raw rows).
    active_user_rows: int
    #: The earliest and latest moment any of it covers; None when there is nothing.
    first: datetime | None
    last: datetime | None


@dataclass(frozen=True, slots=True)
class ErasureReport:
    """What :func:`erase_user` removed."""

    subject_sha256: str
    edition: Edition
    #: Rows deleted from analytics_events.
    raw_rows: int
    #: analytics_daily_active_users rows deleted where no raw data was left to recompute them.
    aggregate_rows: int
    #: The aggregates computed again over ``window`` (empty when there was nothing to redo).
    recomputed: tuple[str, ...]
    window: tuple[datetime, datetime] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "subject_sha256": self.subject_sha256,
            "edition": self.edition.value,
            "raw_rows": self.raw_rows,
            "aggregate_rows": self.aggregate_rows,
            "recomputed": list(self.recomputed),
            "window": jsonable(self.window),
        }


def subject_hash(user_id: uuid.UUID) -> str:
    """How the audit log names a person: the SHA-256 of the id's canonical text."""
    return hashlib.sha256(str(user_id).encode()).hexdigest()


def export_user_events(
    conn: psycopg.Connection[Any], user_id: uuid.UUID, write: Callable[[str], object]
) -> int:
    """Write every stored event of ``user_id`` as JSON lines, oldest first; their number.

    One read-only transaction (one snapshot), streamed from a server-side cursor in
    batches, so a long history never sits in memory.
    """
    _require_schema(conn)
    query = sql.SQL(
        'SELECT {columns} FROM {events} WHERE user_id = %s ORDER BY "timestamp", event_id'
    ).format(
        columns=sql.SQL(", ").join(sql.Identifier(c) for c in _EXPORT_COLUMNS),
        events=sql.Identifier(EVENTS_TABLE),
    )
    count = 0
    with (
        connection.read_transaction(conn),
        conn.cursor("analytics_export", row_factory=dict_row) as cursor,
    ):
        cursor.itersize = _EXPORT_BATCH
        cursor.execute(query, (user_id,))
        for row in cursor:
            write(json.dumps(jsonable(row), sort_keys=True) + "\n")
            count += 1
    return count


def user_footprint(conn: psycopg.Connection[Any], user_id: uuid.UUID) -> Footprint:
    """How much of ``user_id`` the database holds, and over which time: nothing is changed."""
    _require_schema(conn)
    raw = conn.execute(
        sql.SQL(
            'SELECT count(*), min("timestamp"), max("timestamp") FROM {} WHERE user_id = %s'
        ).format(sql.Identifier(EVENTS_TABLE)),
        (user_id,),
    ).fetchone()
    assert raw is not None
    active = (0, None, None)
    if _exists(conn, DAILY_ACTIVE_USERS.name):
        found = conn.execute(
            sql.SQL("SELECT count(*), min({day}), max({day}) FROM {dau} WHERE user_id = %s").format(
                day=sql.Identifier(DAILY_ACTIVE_USERS.time_column),
                dau=sql.Identifier(DAILY_ACTIVE_USERS.name),
            ),
            (user_id,),
        ).fetchone()
        assert found is not None
        active = found
    moments = [m for m in (raw[1], raw[2], active[1], active[2]) if m is not None]
    return Footprint(
        raw_rows=raw[0],
        active_user_rows=active[0],
        first=min(moments) if moments else None,
        last=max(moments) if moments else None,
    )


def erase_user(
    conn: psycopg.Connection[Any],
    user_id: uuid.UUID,
    progress: Callable[[str], None] | None = None,
) -> ErasureReport:
    """Erase ``user_id`` everywhere (see the module docstring); an autocommit connection.

    Raises SchemaNotMigrated without the table, MigrateError without TimescaleDB, and what
    psycopg raises; a step that fails leaves the earlier ones done, and running it again
    finishes the job.
    """
    if not conn.autocommit:
        raise ValueError("erase_user() needs an autocommit connection: each step commits")
    edition = edition_to_maintain(inspect_server(conn))
    footprint = user_footprint(conn, user_id)
    say = progress or (lambda _: None)
    say("deleting raw events")
    raw_rows = _delete_raw_rows(conn, user_id, footprint)
    horizon = _raw_data_start(conn)
    window = _recompute_window(footprint, horizon)
    recomputed: list[str] = []
    aggregate_rows = 0
    aggregates = [a for a in AGGREGATES if _exists(conn, a.name)]
    if edition is Edition.COMMUNITY:
        for aggregate in aggregates:
            if window is not None:
                say(f"recomputing {aggregate.name}")
                _refresh_continuous(conn, aggregate, window)
                recomputed.append(aggregate.name)
        if DAILY_ACTIVE_USERS in aggregates:
            say(f"deleting {DAILY_ACTIVE_USERS.name} rows older than the raw data")
            aggregate_rows = _delete_stored_active_user_rows(conn, user_id, horizon)
    else:
        incremental = incremental_aggregates(conn)
        for aggregate in aggregates:
            state = incremental.get(aggregate.name)
            if state is None:
                # A plain materialized view (post_0006 not applied yet) is computed from the
                # raw rows alone: refreshing it is the recompute, as maintain does.
                if window is not None:
                    say(f"recomputing {aggregate.name}")
                    _refresh_materialized_view(conn, aggregate)
                    recomputed.append(aggregate.name)
                continue
            if window is not None:
                say(f"recomputing {aggregate.name}")
                if _recompute_materialized(conn, aggregate, window, state.materialized_until):
                    recomputed.append(aggregate.name)
            if aggregate is DAILY_ACTIVE_USERS:
                say(f"deleting {aggregate.name} rows older than the raw data")
                aggregate_rows = _delete_active_user_rows(
                    conn, f"{aggregate.name}_materialized", user_id, horizon
                )
    report = ErasureReport(
        subject_sha256=subject_hash(user_id),
        edition=edition,
        raw_rows=raw_rows,
        aggregate_rows=aggregate_rows,
        recomputed=tuple(recomputed),
        window=window,
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (subject_sha256, raw_rows, aggregate_rows, edition)"
            " VALUES (%s, %s, %s, %s)"
        ).format(sql.Identifier(ERASURES_TABLE)),
        (report.subject_sha256, raw_rows, aggregate_rows, edition.value),
    )
    return report


def _delete_raw_rows(
    conn: psycopg.Connection[Any], user_id: uuid.UUID, footprint: Footprint
) -> int:
    if footprint.raw_rows == 0 or footprint.first is None or footprint.last is None:
        return 0
    delete = sql.SQL(
        'DELETE FROM {} WHERE user_id = %s AND "timestamp" >= %s AND "timestamp" < %s'
    ).format(sql.Identifier(EVENTS_TABLE))
    deleted = 0
    for start, end in _chunk_ranges(conn, footprint.first, footprint.last):
        deleted += conn.execute(delete, (user_id, start, end)).rowcount
    # Anything outside the chunks' ranges (none in a hypertable; a safety net all the same).
    rest = conn.execute(
        sql.SQL("DELETE FROM {} WHERE user_id = %s").format(sql.Identifier(EVENTS_TABLE)),
        (user_id,),
    )
    return deleted + rest.rowcount


def _chunk_ranges(
    conn: psycopg.Connection[Any], first: datetime, last: datetime
) -> list[tuple[datetime, datetime]]:
    return [
        (start, end)
        for start, end in conn.execute(
            "SELECT range_start, range_end FROM timescaledb_information.chunks"
            " WHERE hypertable_name = %s AND range_end > %s AND range_start <= %s"
            " ORDER BY range_start",
            (EVENTS_TABLE, first, last),
        ).fetchall()
    ]


def _raw_data_start(conn: psycopg.Connection[Any]) -> datetime | None:
    """Where the raw data begins: the start of the oldest chunk retention left, if any."""
    row = conn.execute(
        "SELECT min(range_start) FROM timescaledb_information.chunks WHERE hypertable_name = %s",
        (EVENTS_TABLE,),
    ).fetchone()
    return row[0] if row else None


def _recompute_window(
    footprint: Footprint, horizon: datetime | None
) -> tuple[datetime, datetime] | None:
    """The whole days, from the raw data's start on, that the person's data touched."""
    if footprint.first is None or footprint.last is None or horizon is None:
        return None
    start = max(footprint.first, horizon)
    if start > footprint.last:
        return None
    day = timedelta(days=1)
    first_day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    if first_day < horizon:
        first_day += day  # a bucket whose raw data is partly gone is left as it is
    end_day = footprint.last.replace(hour=0, minute=0, second=0, microsecond=0) + day
    return (first_day, end_day) if first_day < end_day else None


def _refresh_continuous(
    conn: psycopg.Connection[Any], aggregate: Aggregate, window: tuple[datetime, datetime]
) -> None:
    # Alone, outside a transaction block: TimescaleDB refuses it inside one.
    conn.execute(
        sql.SQL("CALL refresh_continuous_aggregate({}, {}, {})").format(
            sql.Literal(aggregate.name), sql.Literal(window[0]), sql.Literal(window[1])
        )
    )


def _delete_stored_active_user_rows(
    conn: psycopg.Connection[Any], user_id: uuid.UUID, horizon: datetime | None
) -> int:
    """Delete the person's stored DAU rows that no raw data backs any more."""
    row = conn.execute(
        "SELECT materialization_hypertable_schema, materialization_hypertable_name"
        " FROM timescaledb_information.continuous_aggregates WHERE view_name = %s",
        (DAILY_ACTIVE_USERS.name,),
    ).fetchone()
    if row is None:
        return 0
    return _delete_active_user_rows(conn, (row[0], row[1]), user_id, horizon)


def _delete_active_user_rows(
    conn: psycopg.Connection[Any],
    table: str | tuple[str, str],
    user_id: uuid.UUID,
    horizon: datetime | None,
) -> int:
    """Delete the person's rows of the stored daily-active-user ``table`` before ``horizon``
    (all of them when there is no raw data at all)."""
    day = sql.Identifier(DAILY_ACTIVE_USERS.time_column)
    where = sql.SQL("user_id = %s") + (
        sql.SQL(" AND {} < %s").format(day) if horizon is not None else sql.SQL("")
    )
    params: tuple[Any, ...] = (user_id, horizon) if horizon is not None else (user_id,)
    name = sql.Identifier(table) if isinstance(table, str) else sql.Identifier(*table)
    deleted = conn.execute(sql.SQL("DELETE FROM {} WHERE ").format(name) + where, params)
    return deleted.rowcount


def _recompute_materialized(
    conn: psycopg.Connection[Any],
    aggregate: Aggregate,
    window: tuple[datetime, datetime],
    materialized_until: datetime | None,
) -> bool:
    """Apache edition: compute the stored buckets of ``window`` again, in one transaction;
    False when none of them is stored (the view computes those from the events already)."""
    if materialized_until is None or materialized_until <= window[0]:
        return False
    end = min(window[1], materialized_until)
    stored = sql.Identifier(f"{aggregate.name}_materialized")
    bucket = sql.Identifier(aggregate.time_column)
    conn.execute(
        sql.SQL(
            "DELETE FROM {stored} WHERE {bucket} >= {start} AND {bucket} < {end}; "
            "INSERT INTO {stored} SELECT * FROM {between}({start}, {end})"
        ).format(
            stored=stored,
            bucket=bucket,
            between=sql.Identifier(f"{aggregate.name}_between"),
            start=sql.Literal(window[0]),
            end=sql.Literal(end),
        )
    )
    return True


def _refresh_materialized_view(conn: psycopg.Connection[Any], aggregate: Aggregate) -> None:
    conn.execute(
        sql.SQL("REFRESH MATERIALIZED VIEW CONCURRENTLY {}").format(sql.Identifier(aggregate.name))
    )


def _exists(conn: psycopg.Connection[Any], relation: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,)).fetchone()
    return bool(row and row[0])


def _require_schema(conn: psycopg.Connection[Any]) -> None:
    if not _exists(conn, EVENTS_TABLE):
        raise SchemaNotMigrated(
            f"there is no {EVENTS_TABLE} table in this database: run `analytics-migrate all` first"
        )
