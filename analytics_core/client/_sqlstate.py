"""What a write error means for the rows that hit it, decided from its SQLSTATE.

Delivery never matches error messages. It asks ``classify(exc)`` and gets one of:

- ``TRANSIENT``: the rows are fine, the database or the path to it is not (class 08
  connection, 57 operator intervention such as admin shutdown 57P01 or a statement timeout
  57014, 53 insufficient resources, 40 serialization failure or deadlock, 58 system error,
  55P03 lock not available), or psycopg lost the connection and has no SQLSTATE at all. Retry
  the same rows after a backoff.
- ``DUPLICATE``: 23505 unique violation. Some rows are already in the table (an earlier
  attempt committed without us hearing it); look up which and write only the others.
- ``DATA``: class 22 data exception (such as 22P05, a NUL character that JSONB rejects), 23
  integrity constraint, 54 program limit (a document too large), or the client could not
  encode a row. Only some rows are bad; split the batch to isolate them.
- ``PERSISTENT``: anything else (42 undefined table or permission, 28 authentication, 3D
  unknown database, 25006 a read-only server such as a hot standby, XX internal). Not the
  rows' fault and not fixed by splitting; retry with the capped backoff, logged as an error,
  until an operator fixes it or ``close()`` gives up. Each retry opens a new connection, so
  a URL that routes to the primary (``target_session_attrs=read-write``) finds it again
  after a failover.

``unreachable(exc)`` tells, among transient errors, those that say the database cannot be
reached at all (refused or lost connection, a server shutting down or starting up): delivery
then probes for its return at a short interval rather than backing off further.

``describe(exc)`` adds what to do for the configuration errors an operator meets most.
"""

from __future__ import annotations

import enum
from typing import Final

import psycopg

from analytics_core.schema import EVENTS_TABLE, WRITER_ROLE

__all__ = ["Failure", "classify", "describe", "unreachable"]


class Failure(enum.Enum):
    """The kind of a write error, and so what delivery does next."""

    TRANSIENT = "transient"
    DUPLICATE = "duplicate"
    DATA = "data"
    PERSISTENT = "persistent"


_UNIQUE_VIOLATION: Final = "23505"
_TRANSIENT_CLASSES: Final = frozenset({"08", "40", "53", "57", "58"})
_TRANSIENT_STATES: Final = frozenset({"55P03"})
_DATA_CLASSES: Final = frozenset({"22", "23", "54"})
# A server going down or coming up: admin or crash shutdown, "the database system is starting
# up" (or shutting down, or in recovery).
_UNREACHABLE_STATES: Final = frozenset({"57P01", "57P02", "57P03"})
# Configuration errors, and what fixes them: the server's message names the symptom only.
_HINTS: Final = {
    "25006": (
        "the server is read-only (a hot standby?): point the client at the primary, for "
        "example with target_session_attrs=read-write in its URL"
    ),
    "42P01": f"no {EVENTS_TABLE} table: run analytics-migrate pre against this database",
    "42501": f"the client's role may not write {EVENTS_TABLE}: grant it {WRITER_ROLE}",
}


def classify(exc: BaseException) -> Failure:
    """The ``Failure`` kind of an exception raised while writing or looking up rows."""
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate
        if state is None:
            # Raised by psycopg itself: a dumper that could not encode a value is a problem
            # of one row; anything else (lost connection, closed connection) is transient.
            return Failure.DATA if isinstance(exc, psycopg.DataError) else Failure.TRANSIENT
        if state == _UNIQUE_VIOLATION:
            return Failure.DUPLICATE
        if state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_STATES:
            return Failure.TRANSIENT
        if state[:2] in _DATA_CLASSES:
            return Failure.DATA
        return Failure.PERSISTENT
    if isinstance(exc, OSError | TimeoutError):
        return Failure.TRANSIENT
    # A Python error while encoding a row (TypeError, ValueError, ...): a problem of that row.
    return Failure.DATA


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached at all, rather than refusing."""
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate
        if state is None:
            return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
        return state[:2] == "08" or state in _UNREACHABLE_STATES
    return isinstance(exc, OSError | TimeoutError)


def describe(exc: BaseException) -> str:
    """A one-line ``"SQLSTATE Class: message"`` for logs and ``stats.last_error``.

    Uses only the server's primary message: its DETAIL and CONTEXT can quote row data, and
    events may carry personal data.
    """
    name = type(exc).__name__
    if isinstance(exc, psycopg.Error):
        message = exc.diag.message_primary or str(exc).partition("\n")[0]
        if not exc.sqlstate:
            return f"{name}: {message}"
        hint = _HINTS.get(exc.sqlstate)
        return f"{exc.sqlstate} {name}: {message}" + (f" ({hint})" if hint else "")
    return f"{name}: {str(exc).partition(chr(10))[0]}"
