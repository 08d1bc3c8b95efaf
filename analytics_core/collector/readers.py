"""The read side's database connections: a few kept open, each read in its own transaction.

Reads run on worker threads (psycopg is blocking here, as in the rest of the package), in
one read-only transaction with bounded statements each (``connection.read_transaction``),
so they are safe behind a transaction pooler. A connection that saw an error is closed
rather than reused; the next read opens a new one, which is how a database restart is
survived.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Final, TypeVar

import psycopg

from analytics_core.connection import connect, read_transaction
from analytics_core.errors import AnalyticsCoreError

__all__ = ["Readers", "ReadersBusy"]

_T = TypeVar("_T")

#: How long a read waits for a free connection before the request is refused.
_SLOT_WAIT_S: Final = 10.0
#: The bound on opening a connection: a read of a database that is down fails this fast.
_CONNECT_TIMEOUT_S: Final = 3.0


class ReadersBusy(AnalyticsCoreError):
    """Every read connection stayed busy for the whole wait."""


class Readers:
    """At most ``size`` connections to ``url`` for reads; thread-safe, blocking."""

    def __init__(self, url: str, size: int) -> None:
        self._url = url
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        self._closed = False

    def run(self, query: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        """``query(conn)`` in one read-only transaction. Raises ``ReadersBusy``,
        ``ConnectionFailed`` (cannot connect), ``psycopg.Error`` or what ``query`` raises."""
        if not self._slots.acquire(timeout=_SLOT_WAIT_S):
            raise ReadersBusy(f"all read connections stayed busy for {_SLOT_WAIT_S:.0f} s")
        try:
            conn = self._take()
            try:
                with read_transaction(conn):
                    result = query(conn)
            except BaseException:
                conn.close()
                raise
            self._give_back(conn)
            return result
        finally:
            self._slots.release()

    def close(self) -> None:
        """Close the idle connections; one in use is closed when its read ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _take(self) -> psycopg.Connection[Any]:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed and not conn.broken:
                    return conn
        return connect(
            self._url, application_name="analytics-collector", timeout=_CONNECT_TIMEOUT_S
        )

    def _give_back(self, conn: psycopg.Connection[Any]) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(conn)
                return
        conn.close()
