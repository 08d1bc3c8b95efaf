"""Migrated databases loaded with hand-made events, for the read-side (queries, report) tests.

Rows go straight into the events table with COPY (not through the client), so a test controls
every column, including payloads our models would reject. The ``json_*`` functions restate in
Python the payload rules the aggregates' SQL applies, so that tests derive answers
independently of the database.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
import pytest
from psycopg import sql

from analytics_core.migrate import Edition, Phase, apply, connect, maintain, pause_jobs
from analytics_core.migrate.edition import inspect_server
from analytics_core.schema import AGGREGATES, EVENT_COPY_COLUMNS, EVENTS_TABLE
from tests.conftest import with_database


@dataclass(frozen=True)
class Row:
    """One row of the events table. ``data`` is the payload (any JSON value)."""

    at: datetime
    event_type: str
    data: Any
    user_id: uuid.UUID | None = None
    service: str = "platform"
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)


@contextmanager
def migrated_database(server_url: str, server_admin_url: str) -> Iterator[str]:
    """A fresh database with every migration applied; dropped afterwards."""
    name = f"analytics_test_q_{secrets.token_hex(6)}"
    with psycopg.connect(server_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(server_url, name)
    try:
        apply(url, (Phase.PRE, Phase.POST))
        hold_the_scheduler(url)
        yield url
    finally:
        with psycopg.connect(server_admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def insert(url: str, rows: Iterable[Row]) -> None:
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


@contextmanager
def recording_connection(url: str) -> Iterator[tuple[psycopg.Connection[Any], list[Executed]]]:
    """An autocommit connection that records every statement its cursors execute."""
    executed: list[Executed] = []

    class Recording(psycopg.Cursor[Any]):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            text = query if isinstance(query, str) else query.as_string(self.connection)
            executed.append(Executed(text, params))
            return super().execute(query, params, **kwargs)

    with psycopg.connect(url, autocommit=True, cursor_factory=Recording) as conn:
        yield conn, executed


@dataclass(frozen=True)
class Executed:
    """A statement as sent, with its parameters."""

    sql: str
    params: Any

    def plan(self, conn: psycopg.Connection[Any]) -> str:
        """The statement's EXPLAIN output, one line per plan node."""
        rows = conn.execute("EXPLAIN " + self.sql, self.params).fetchall()
        return "\n".join(row[0] for row in rows)


def hold_the_scheduler(url: str) -> None:
    """Pause our policy jobs on a server with a scheduler, so that the data a test loaded
    changes only when the test says so (a real server would otherwise compress its chunks,
    drop old ones and refresh aggregates while the test reads). A no-op on the Apache edition.
    """
    with connect(url) as conn:
        if inspect_server(conn).edition is Edition.COMMUNITY:
            pause_jobs(conn)


def refresh(url: str) -> None:
    """Bring every aggregate up to date with the events, then one round of ``maintain``.

    Community edition: a full refresh of each continuous aggregate first, because the refresh
    policy (and so ``maintain``) only covers the last three days. Apache edition: ``maintain``
    refreshes the views. ``maintain`` also drops chunks past retention (90 days), so test
    events must be recent.
    """
    with connect(url) as conn:
        if inspect_server(conn).edition is Edition.COMMUNITY:
            for aggregate in AGGREGATES:
                conn.execute(
                    "CALL refresh_continuous_aggregate(%s, NULL, NULL)", (aggregate.name,)
                )
        result = maintain(conn)
    assert result.ok, result.tasks


# --- The aggregates' payload rules, restated in Python -----------------------------------------


def field_of(row: Row, name: str) -> Any:
    """``data -> name``: None when the payload is not an object or lacks the field."""
    return row.data.get(name) if isinstance(row.data, dict) else None


def _number(value: Any, low: float, high: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if low <= value <= high else None


def json_ms(value: Any) -> float | None:
    """analytics_json_ms: a JSON number in [0, 1e15], else None."""
    return _number(value, 0, 1e15)


def json_int(value: Any) -> int | None:
    """analytics_json_int: a JSON number in the int4 range, truncated, else None."""
    number = _number(value, -2147483648, 2147483647)
    return None if number is None else math.trunc(number)


_LOOSE_UUID = re.compile(
    r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.IGNORECASE
)


def json_uuid(value: Any) -> uuid.UUID | None:
    """analytics_json_uuid: a string in a UUID's shape, else None."""
    if isinstance(value, str) and _LOOSE_UUID.fullmatch(value):
        return uuid.UUID(value)
    return None


def json_text(value: Any) -> str | None:
    """``analytics_json_text(data -> 'field')``: a JSON string as is, anything else None."""
    return value if isinstance(value, str) else None


# --- Comparing results -------------------------------------------------------------------------


def assert_same(actual: Any, expected: Any, path: str = "result") -> None:
    """``actual == expected`` for JSON-shaped values, floats to within 1e-9 (relative).

    Floats are summed in a different order in SQL and in Python; everything else is exact.
    """
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: {actual!r} is not an object"
        assert actual.keys() == expected.keys(), f"{path}: {actual.keys()} != {expected.keys()}"
        for key in expected:
            assert_same(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list | tuple):
        assert isinstance(actual, list | tuple), f"{path}: {actual!r} is not a list"
        assert len(actual) == len(expected), f"{path}: {len(actual)} items != {len(expected)}"
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{path}[{index}]")
    elif isinstance(expected, float) and not isinstance(actual, bool):
        assert actual == pytest.approx(expected, rel=1e-9, abs=1e-9), f"{path}: {actual!r}"
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"
