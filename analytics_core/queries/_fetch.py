"""Running a read-only statement and bringing its values back in the shapes results use."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, overload

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from analytics_core._checks import aware_datetime
from analytics_core.errors import SchemaNotMigrated
from analytics_core.queries._timestamps import load_clamped_timestamps

__all__ = ["database_now", "fetch_all", "fetch_one", "utc"]


def fetch_all(
    conn: psycopg.Connection[Any],
    query: sql.SQL | sql.Composed,
    params: Mapping[str, Any] | None = None,
) -> list[tuple[Any, ...]]:
    """Every row of ``query`` as tuples, whatever row factory ``conn`` was opened with.

    Raises SchemaNotMigrated when a relation or function of the schema is missing. A
    timestamp Python cannot hold comes back clamped (see ``_timestamps``).
    """
    with conn.cursor(row_factory=tuple_row) as cursor:
        load_clamped_timestamps(cursor)
        try:
            cursor.execute(query, params)
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedFunction) as error:
            raise SchemaNotMigrated(
                f"{error.diag.message_primary or error}: the analytics schema is missing or "
                "incomplete; run `analytics-migrate all` against this database first"
            ) from error
        return cursor.fetchall()


def fetch_one(
    conn: psycopg.Connection[Any],
    query: sql.SQL | sql.Composed,
    params: Mapping[str, Any] | None = None,
) -> tuple[Any, ...]:
    """The single row ``query`` returns (an aggregate without GROUP BY always returns one)."""
    rows = fetch_all(conn, query, params)
    if len(rows) != 1:
        raise RuntimeError(f"expected one row, got {len(rows)}")
    return rows[0]


@overload
def utc(value: datetime) -> datetime: ...
@overload
def utc(value: None) -> None: ...
def utc(value: datetime | None) -> datetime | None:
    """A timestamptz from the database in UTC.

    psycopg returns timestamptz in the session's TimeZone; results are always UTC so that
    they do not depend on how the connection was configured.
    """
    return None if value is None else value.astimezone(UTC)


def database_now(conn: psycopg.Connection[Any], now: datetime | None) -> datetime:
    """``now`` (validated, in UTC) when given, else the database's clock.

    The database's clock rather than this process's: events carry the producers' timestamps
    and land in the database, so "the last five minutes" is judged by the server's time.
    ``statement_timestamp()`` rather than ``now()``, which stands still for the whole of a
    caller's open transaction.
    """
    if now is not None:
        return aware_datetime(now, "now")
    (value,) = fetch_one(conn, sql.SQL("SELECT statement_timestamp()"))
    assert isinstance(value, datetime)
    return utc(value)
