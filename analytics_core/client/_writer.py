"""The COPY batch writer: rows built from tracked events, written by binary COPY.

``build_batch`` turns what ``track()`` captured (the event and a clock reading) into rows of
``analytics_events``: the timestamp, event type, service, user id, the JSONB ``data``
document (``event_payload_bytes``) and a fresh ``event_id``. Each row is encoded right away
as one tuple of PostgreSQL's binary COPY format, so writing a batch is sending the
concatenation of its rows. ``BatchWriter`` owns one reused autocommit connection and writes a
batch with one ``COPY ... FROM STDIN (FORMAT BINARY)``, which PostgreSQL runs as one
transaction: a batch is in the table entirely or not at all.

When the connection is lost while a COPY is in flight, the client cannot know whether the
server committed it. Every row carries its ``event_id`` (unique in the table), so after
reconnecting ``present()`` asks which ids of the in-doubt rows already exist, and only the
others are written again.

Not thread-safe, except ``interrupt_if_stuck()``, which the worker's other thread calls.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeAlias

import psycopg
from psycopg import sql

from analytics_core.client._queue import Item
from analytics_core.events import (
    EVENT_TYPES,
    AnalyticsEvent,
    event_payload_bytes,
    new_event_ids,
)
from analytics_core.schema import EVENT_COPY_COLUMNS, EVENTS_TABLE

__all__ = ["Batch", "BatchWriter", "Row", "build_batch", "event_id_of"]

Row: TypeAlias = bytes
"""One row of the COPY, in ``EVENT_COPY_COLUMNS`` order, as a binary COPY tuple."""

# The order build_batch() encodes a row in. Checked against the schema's list at import, so a
# change there fails loudly here rather than writing values into the wrong columns.
_ROW_LAYOUT: Final = ("timestamp", "event_type", "service", "user_id", "data", "event_id")
if _ROW_LAYOUT != EVENT_COPY_COLUMNS:
    raise RuntimeError(
        f"schema.EVENT_COPY_COLUMNS is {EVENT_COPY_COLUMNS}, but the writer builds rows as "
        f"{_ROW_LAYOUT}; update build_batch() and _ROW_LAYOUT in analytics_core/_writer.py"
    )

# The binary COPY format (PostgreSQL docs, "COPY", "Binary Format"): a signature, flags and
# header extension length; per tuple an int16 field count, then per field an int32 length
# (-1 for NULL) and the value in the column type's binary format (its receive function);
# an int16 -1 ends the data. Values here, all big-endian:
# - timestamptz: int64 microseconds since 2000-01-01 00:00 UTC;
# - text: the UTF-8 bytes (the connection is set to client_encoding UTF8);
# - uuid: its 16 bytes;
# - jsonb: a version byte, 1, then the JSON text.
# Encoding rows here rather than through psycopg's per-row dumpers is most of the client's
# CPU saving over a plain ``copy.write_row``: a row is a handful of C-level operations.
_SIGNATURE: Final = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_TRAILER: Final = struct.pack(">h", -1)
_NULL: Final = struct.pack(">i", -1)
_UUID_SIZE: Final = struct.pack(">i", 16)
# Field count, the timestamp's length and the timestamp: the first 14 bytes of every row.
_pack_head = struct.Struct(">hiq").pack
_TIMESTAMP_AT: Final = slice(6, 14)
# The data field's length and JSONB's version byte.
_pack_data_head = struct.Struct(">iB").pack
# The user id's length prefix joined to its 128 bits: one int-to-bytes conversion.
_UUID_FIELD: Final = 16 << 128
_UNIX_TO_PG_US: Final = 946_684_800 * 1_000_000
_PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def _text_field(text: str) -> bytes:
    encoded = text.encode()
    return struct.pack(">i", len(encoded)) + encoded


# The event type field of every type, ready-made.
_EVENT_TYPE_FIELDS: Final = {name: _text_field(name) for name in EVENT_TYPES}

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
    event_id=sql.Identifier("event_id"),
    timestamp=sql.Identifier("timestamp"),
)
# The rows' text is UTF-8 and the server converts text and JSONB fields of a binary COPY from
# the client encoding, so that must be UTF8 whatever the DSN or PGCLIENTENCODING say.
_SET_STATEMENT_TIMEOUT: Final = (
    "SELECT set_config('statement_timeout', %s, false), "
    "set_config('client_encoding', 'UTF8', false)"
)


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


def build_batch(items: Sequence[Item], service: str, batch: Batch | None = None) -> Batch:
    """The rows for ``items``: timestamps, JSONB documents and fresh event ids.

    This is the per-event work that ``track()`` leaves to the worker. Appends to ``batch``
    when given (and returns it), so a batch can be built in slices. Never raises: an event
    that cannot be serialised goes to ``rejected``.
    """
    if batch is None:
        batch = Batch()
    events = batch.events
    rows = batch.rows
    service_field = _text_field(service)
    type_fields = _EVENT_TYPE_FIELDS
    payload = event_payload_bytes
    join = b"".join
    for (event, stamp), event_id in zip(items, new_event_ids(len(items)), strict=True):
        try:
            # Field values live in the instance __dict__. Not getattr(event, "user_id", None):
            # for a model without the field, pydantic builds an AttributeError to say so,
            # which costs more than the whole row.
            fields = event.__dict__
            user_id = fields.get("user_id")
            data = payload(event)
            row = join(
                (
                    _pack_head(
                        len(_ROW_LAYOUT),
                        8,
                        # A datetime is exact to the microsecond; so is the clock reading.
                        (stamp - _PG_EPOCH) // _MICROSECOND
                        if isinstance(stamp, datetime)
                        else stamp // 1_000 - _UNIX_TO_PG_US,
                    ),
                    type_fields[fields["event_type"]],
                    service_field,
                    _NULL if user_id is None else (_UUID_FIELD | user_id.int).to_bytes(20),
                    _pack_data_head(len(data) + 1, 1),
                    data,
                    _UUID_SIZE,
                    event_id,
                )
            )
        except Exception as exc:
            batch.rejected.append((event, exc))
            continue
        events.append(event)
        rows.append(row)
    return batch


def event_id_of(row: Row) -> bytes:
    """The ``event_id`` of a row, as its 16 bytes (``uuid.UUID.bytes``)."""
    return row[-16:]


def _timestamp_of(row: Row) -> datetime:
    return _PG_EPOCH + int.from_bytes(row[_TIMESTAMP_AT], signed=True) * _MICROSECOND


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
                copy.write(b"".join((_SIGNATURE, *rows, _TRAILER)))
                if before_wait is not None:
                    before_wait()
        finally:
            self._end_io()

    def present(self, rows: Sequence[Row]) -> set[bytes]:
        """The event ids (as ``event_id_of`` gives them) among ``rows`` already in the table."""
        if not rows:
            return set()
        stamps = [_timestamp_of(row) for row in rows]
        ids = [uuid.UUID(bytes=event_id_of(row)) for row in rows]
        conn = self._connection()
        self._begin_io()
        try:
            with conn.cursor() as cursor:
                cursor.execute(_PRESENT, (ids, min(stamps), max(stamps)))
                return {found.bytes for (found,) in cursor.fetchall()}
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
