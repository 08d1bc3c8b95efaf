"""The client's one connection to the events table: the COPY and the in-doubt look-up.

``EventsConnection`` opens a connection on first use (and again after every loss) and writes
a batch's rows with one ``COPY ... FROM STDIN (FORMAT BINARY)`` in a transaction of its own:
a batch is in the table entirely or not at all.

The connection is safe behind a transaction pooler (PgBouncer's transaction mode hands each
transaction to any server session): it sets no session state (``statement_timeout`` is set
with ``SET LOCAL`` in each transaction; the client encoding is a startup parameter, which
poolers carry over) and prepares no statement on the server.

When the connection is lost while a COPY is in flight, the client cannot know whether the
server committed it. Every row carries its ``event_id`` (unique in the table), so after
reconnecting ``present()`` asks which ids of the in-doubt rows already exist, and only the
others are written again (the decision is ``_delivery``'s).

Not thread-safe, except ``interrupt_if_stuck()``, which the batcher thread calls, and
``shut()``, which a closing client calls when it gives up.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

import psycopg
from psycopg import sql

from analytics_core.client._encoder import ROW_LAYOUT, Row, copy_data, event_id_of, micros_of
from analytics_core.schema import EVENTS_TABLE

__all__ = ["EventsConnection"]

_COPY: Final = sql.SQL("COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)").format(
    table=sql.Identifier(EVENTS_TABLE),
    columns=sql.SQL(", ").join(sql.Identifier(column) for column in ROW_LAYOUT),
)
# Bounded by the batch's time range so the lookup uses the (event_id, "timestamp") unique
# index and TimescaleDB only visits the chunks the batch could have landed in. The bounds are
# whole Unix seconds (see _time_bounds), converted by the server.
_PRESENT: Final = sql.SQL(
    "SELECT {event_id} FROM {table} WHERE {event_id} = ANY(%s) "
    "AND {timestamp} BETWEEN to_timestamp(%s::float8) AND to_timestamp(%s::float8)"
).format(
    table=sql.Identifier(EVENTS_TABLE),
    event_id=sql.Identifier("event_id"),
    timestamp=sql.Identifier("timestamp"),
)
# What to_timestamp() accepts, in Unix seconds: PostgreSQL's timestamptz range, from
# 4714-11-24 BC up to (not including) 294277-01-01 UTC. And 2000-01-01 UTC, its epoch.
_MIN_UNIX_S: Final = -210_866_803_200
_END_UNIX_S: Final = 9_224_318_016_000
_PG_EPOCH_UNIX_S: Final = 946_684_800
_COMMIT: Final = sql.SQL("COMMIT")
_ROLLBACK: Final = sql.SQL("ROLLBACK")


_SHUT: Final = "the client gave up writing: its connection is shut"
_IDLE: Final = psycopg.pq.TransactionStatus.IDLE


class EventsConnection:
    """One connection to the events table, opened on first use and after every loss."""

    def __init__(self, conninfo: str, statement_timeout_ms: int) -> None:
        self._conninfo = conninfo
        # One simple-protocol round trip opens each transaction with its timeout.
        self._begin = sql.SQL("BEGIN; SET LOCAL statement_timeout = {}").format(
            sql.Literal(f"{statement_timeout_ms}ms")
        )
        self._conn: psycopg.Connection[Any] | None = None
        # Guards _busy_since and _socket, which interrupt_if_stuck() reads from another thread.
        self._state_lock = threading.Lock()
        self._busy_since: float | None = None
        self._socket = -1
        # Set by shut(): no connection is opened any more.
        self._shut = False

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
            with self._transaction(conn), conn.cursor() as cursor, cursor.copy(_COPY) as copy:
                copy.write(copy_data(rows))
                if before_wait is not None:
                    before_wait()
        finally:
            self._end_io()

    def present(self, rows: Sequence[Row]) -> set[bytes]:
        """The event ids (as ``event_id_of`` gives them) among ``rows`` already in the table."""
        if not rows:
            return set()
        low, high = _time_bounds(rows)
        ids = [uuid.UUID(bytes=event_id_of(row)) for row in rows]
        conn = self._connection()
        self._begin_io()
        try:
            with self._transaction(conn), conn.cursor() as cursor:
                cursor.execute(_PRESENT, (ids, low, high))
                return {found.bytes for (found,) in cursor.fetchall()}
        finally:
            self._end_io()

    def recycle_if_unusable(self) -> None:
        """Drop the connection unless it is idle and healthy (after a rejected COPY it is)."""
        conn = self._conn
        if conn is not None and (conn.broken or conn.info.transaction_status != _IDLE):
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
            if since is None or time.monotonic() - since < limit:
                return False
            return self._shut_down_socket()

    def shut(self) -> None:
        """End this connection for good, from any thread, without waiting for the server.

        The socket is shut down, so that a wait on the server (a COPY, a look-up) fails at
        once with a connection error, and no connection is opened from now on: ``copy`` and
        ``present`` raise ``psycopg.OperationalError``. A connection attempt already under
        way cannot be interrupted; it ends within ``connect_timeout`` and is closed then.
        """
        with self._state_lock:
            self._shut = True
            self._shut_down_socket()

    def _shut_down_socket(self) -> bool:
        """Shut the current socket down (both ways); False if there is none. Holds the lock."""
        if self._socket < 0:
            return False
        # A duplicate of the descriptor: shutdown() acts on the connection itself, and
        # closing our duplicate leaves libpq's descriptor number intact. The lock keeps
        # discard() from closing the descriptor meanwhile.
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
        if self._shut:
            raise psycopg.OperationalError(_SHUT)
        conn = psycopg.connect(self._conninfo, autocommit=True, prepare_threshold=None)
        with self._state_lock:
            shut = self._shut
            if not shut:
                self._conn = conn
                self._socket = conn.pgconn.socket
        if shut:
            conn.close()
            raise psycopg.OperationalError(_SHUT)
        return conn

    @contextlib.contextmanager
    def _transaction(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        """One transaction with the statement timeout: committed if the block ends normally,
        rolled back (when the connection still works) if it raises."""
        conn.execute(self._begin)
        try:
            yield
        except BaseException:
            if not conn.broken and conn.info.transaction_status != _IDLE:
                with contextlib.suppress(psycopg.Error):
                    conn.execute(_ROLLBACK)
            raise
        conn.execute(_COMMIT)

    def _begin_io(self) -> None:
        with self._state_lock:
            self._busy_since = time.monotonic()

    def _end_io(self) -> None:
        with self._state_lock:
            self._busy_since = None


def _time_bounds(rows: Sequence[Row]) -> tuple[int, int]:
    """Unix seconds before and after every row's time, within what to_timestamp() accepts.

    Integer arithmetic on the microseconds the rows hold, so no time a row can hold overflows
    (Python's datetime stops at year 9999; a row may hold more). Widened by a second on each
    side: to_timestamp() takes a float8, which rounds microseconds far from 1970.
    """
    micros = [micros_of(row) for row in rows]
    low = min(micros) // 1_000_000 + _PG_EPOCH_UNIX_S - 1
    high = -(-max(micros) // 1_000_000) + _PG_EPOCH_UNIX_S + 1
    return _within_range(low), _within_range(high)


def _within_range(unix_s: int) -> int:
    return min(max(unix_s, _MIN_UNIX_S), _END_UNIX_S - 1)
