"""The COPY batch writer: rows built from tracked events, written by binary COPY.

``build_batch`` turns what ``track()`` captured (the event and a clock reading) into rows of
``analytics_events``: the timestamp, event type, service, user id, the JSONB ``data``
document (``event_payload_json``) and a fresh ``event_id``. ``BatchWriter`` owns one reused
autocommit connection and writes a batch with one ``COPY ... FROM STDIN (FORMAT BINARY)``,
which PostgreSQL runs as one transaction: a batch is in the table entirely or not at all.

When the connection is lost while a COPY is in flight, the client cannot know whether the
server committed it. Every row carries its ``event_id`` (unique in the table), so after
reconnecting ``present()`` asks which ids of the in-doubt rows already exist, and only the
others are written again.

Not thread-safe, except ``interrupt_if_stuck()``, which the worker's other thread calls.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypeAlias

import psycopg
from psycopg import sql
from psycopg.postgres import types as postgres_types

from analytics_core._queue import Item
from analytics_core.events import AnalyticsEvent, event_payload_json, new_event_id
from analytics_core.schema import EVENT_COPY_COLUMNS, EVENTS_TABLE

__all__ = ["Batch", "BatchWriter", "Row", "build_batch", "event_id_of"]

Row: TypeAlias = tuple[datetime, str, str, uuid.UUID | None, bytes, uuid.UUID]
"""One row of the COPY, in ``EVENT_COPY_COLUMNS`` order."""

# The order build_batch() fills a row in. Checked against the schema's list at import, so a
# change there fails loudly here rather than writing values into the wrong columns.
_ROW_LAYOUT: Final = ("timestamp", "event_type", "service", "user_id", "data", "event_id")
if _ROW_LAYOUT != EVENT_COPY_COLUMNS:
    raise RuntimeError(
        f"schema.EVENT_COPY_COLUMNS is {EVENT_COPY_COLUMNS}, but the writer builds rows as "
        f"{_ROW_LAYOUT}; update build_batch() and _ROW_LAYOUT in analytics_core/_writer.py"
    )
# Literal positions, so that type checkers know what a row holds there.
_TIMESTAMP: Final = 0
_EVENT_ID: Final = 5
assert _ROW_LAYOUT[_TIMESTAMP] == "timestamp" and _ROW_LAYOUT[_EVENT_ID] == "event_id"

# What psycopg should dump each column's Python value as. ``data`` is sent as bytes that are
# already in JSONB's binary wire format (a version byte, 1, then the JSON text) and declared
# bytea so that psycopg passes them through untouched: the server reads every binary COPY
# field with the column's own receive function (jsonb_recv here), whatever the client's
# dumper was called. That saves a Python-level dumper call per row.
_WIRE_TYPES: Final = {
    "timestamp": "timestamptz",
    "event_type": "text",
    "service": "text",
    "user_id": "uuid",
    "data": "bytea",
    "event_id": "uuid",
}
_COPY_OIDS: Final = [postgres_types[_WIRE_TYPES[column]].oid for column in _ROW_LAYOUT]
_JSONB_VERSION: Final = b"\x01"

_COPY: Final = sql.SQL("COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)").format(
    table=sql.Identifier(EVENTS_TABLE),
    columns=sql.SQL(", ").join(sql.Identifier(column) for column in _ROW_LAYOUT),
)
# Bounded by the batch's time range so the lookup uses the (event_id, "timestamp") unique
# index and TimescaleDB only visits the chunks the batch could have landed in.
_PRESENT: Final = sql.SQL(
    "SELECT {event_id} FROM {table} WHERE {event_id} = ANY(%s) AND {timestamp} BETWEEN %s AND %s"
).format(
    table=sql.Identifier(EVENTS_TABLE),
    event_id=sql.Identifier(_ROW_LAYOUT[_EVENT_ID]),
    timestamp=sql.Identifier(_ROW_LAYOUT[_TIMESTAMP]),
)
_SET_STATEMENT_TIMEOUT: Final = "SELECT set_config('statement_timeout', %s, false)"

_from_timestamp = datetime.fromtimestamp


@dataclass(slots=True)
class Batch:
    """Rows to write together, with the events they came from (``events[i]`` -> ``rows[i]``).

    ``rejected`` holds events that could not even be turned into a row, with the error; they
    count as failed.
    """

    events: list[AnalyticsEvent] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    rejected: list[tuple[AnalyticsEvent, Exception]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows) + len(self.rejected)


def build_batch(items: Sequence[Item], service: str) -> Batch:
    """The rows for ``items``: timestamps, JSONB documents and fresh event ids.

    This is the per-event work that ``track()`` leaves to the worker. Never raises: an event
    that cannot be serialised goes to ``rejected``.
    """
    batch = Batch()
    events = batch.events
    rows = batch.rows
    for event, stamp in items:
        try:
            row: Row = (
                # Whole microseconds first: the float is then within half a microsecond of
                # the reading and fromtimestamp rounds to the nearest microsecond.
                (
                    stamp
                    if isinstance(stamp, datetime)
                    else _from_timestamp(stamp // 1_000 / 1e6, UTC)
                ),
                event.event_type,
                service,
                # Not getattr(event, "user_id", None): for a model without the field, pydantic
                # builds an AttributeError to say so, which costs more than the whole row.
                # Field values live in the instance __dict__.
                event.__dict__.get("user_id"),
                _JSONB_VERSION + event_payload_json(event).encode(),
                new_event_id(),
            )
        except Exception as exc:
            batch.rejected.append((event, exc))
            continue
        events.append(event)
        rows.append(row)
    return batch


def event_id_of(row: Row) -> uuid.UUID:
    """The ``event_id`` of a row."""
    return row[_EVENT_ID]


class BatchWriter:
    """One connection to the events table, opened on first use and after every loss."""

    def __init__(self, conninfo: str, statement_timeout_ms: int) -> None:
        self._conninfo = conninfo
        self._statement_timeout = f"{statement_timeout_ms}ms"
        self._conn: psycopg.Connection[Any] | None = None
        # Guards _busy_since and _socket, which interrupt_if_stuck() reads from another thread.
        self._state_lock = threading.Lock()
        self._busy_since: float | None = None
        self._socket = -1

    def copy(self, rows: Sequence[Row], before_wait: Callable[[], None] | None = None) -> None:
        """Write ``rows`` with one binary COPY, committed when it returns.

        ``before_wait`` is called once the rows are encoded, just before the data is sent and
        the wait for the server's answer begins. Raises what psycopg raises; after a
        connection error the outcome is unknown (see ``present``) and the caller must
        ``discard()`` the connection.
        """
        conn = self._connection()
        self._begin_io()
        try:
            with conn.cursor() as cursor, cursor.copy(_COPY) as copy:
                copy.set_types(_COPY_OIDS)
                write_row = copy.write_row
                for row in rows:
                    write_row(row)
                if before_wait is not None:
                    before_wait()
        finally:
            self._end_io()

    def present(self, rows: Sequence[Row]) -> set[uuid.UUID]:
        """The event ids among ``rows`` that are already in the table."""
        if not rows:
            return set()
        stamps = [row[_TIMESTAMP] for row in rows]
        ids = [row[_EVENT_ID] for row in rows]
        conn = self._connection()
        self._begin_io()
        try:
            with conn.cursor() as cursor:
                cursor.execute(_PRESENT, (ids, min(stamps), max(stamps)))
                return {found for (found,) in cursor.fetchall()}
        finally:
            self._end_io()

    def recycle_if_unusable(self) -> None:
        """Drop the connection unless it is idle and healthy (after a rejected COPY it is)."""
        conn = self._conn
        if conn is not None and (
            conn.broken or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
        ):
            self.discard()

    def discard(self) -> None:
        """Close the connection (if any); the next write opens a new one."""
        conn = self._conn
        with self._state_lock:
            self._conn = None
            self._socket = -1
        if conn is not None:
            # Closing a broken connection only frees memory; closing a healthy one sends a
            # Terminate message and does not wait for an answer.
            conn.close()

    close = discard

    def interrupt_if_stuck(self, limit: float) -> bool:
        """Shut the socket down if one operation has waited on the server over ``limit`` s.

        The server's statement_timeout normally ends a slow COPY first; this covers a server
        that stopped answering at all (a frozen host), which TCP alone may never detect. The
        writer's wait then fails at once with a connection error, and the batch is in doubt.
        Safe to call from any thread.
        """
        with self._state_lock:
            since = self._busy_since
            if since is None or self._socket < 0 or time.monotonic() - since < limit:
                return False
            # A duplicate of the descriptor: shutdown() acts on the connection itself, and
            # closing our duplicate leaves libpq's descriptor number intact.
            try:
                with socket.socket(fileno=os.dup(self._socket)) as stuck:
                    stuck.shutdown(socket.SHUT_RDWR)
            except OSError:
                return False
            return True

    def forget_after_fork(self) -> None:
        """In a forked child: let go of the parent's connection without touching it.

        The socket is shared with the parent. Closing it normally would send the server a
        Terminate message on the parent's session, so the child first points its copy of the
        descriptor at /dev/null, then closes. Runs single-threaded in the child.
        """
        conn = self._conn
        self._conn = None
        self._socket = -1
        self._busy_since = None
        # The parent's lock may have been held at the fork by a thread that is gone here.
        self._state_lock = threading.Lock()
        if conn is None or conn.closed:
            return
        try:
            fd = conn.pgconn.socket
        except psycopg.Error:
            fd = -1
        if fd >= 0:
            devnull = os.open(os.devnull, os.O_RDWR)
            try:
                os.dup2(devnull, fd)
            finally:
                os.close(devnull)
            conn.close()
        # Without a valid descriptor libpq has nothing to send on; the object is just left.

    def _connection(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        conn = psycopg.connect(self._conninfo, autocommit=True)
        with self._state_lock:
            self._conn = conn
            self._socket = conn.pgconn.socket
        self._begin_io()
        try:
            conn.execute(_SET_STATEMENT_TIMEOUT, (self._statement_timeout,))
        except BaseException:
            self._end_io()
            self.discard()
            raise
        self._end_io()
        return conn

    def _begin_io(self) -> None:
        with self._state_lock:
            self._busy_since = time.monotonic()

    def _end_io(self) -> None:
        with self._state_lock:
            self._busy_since = None
