"""The deploy lock, and what a connection pooler between ``analytics-migrate`` and the server
does to it.

The lock is a session advisory lock: it dies with its server session, so a killed deploy never
leaves the schema locked. That needs a session of our own. A transaction pooler (PgBouncer
with ``pool_mode = transaction``) hands each transaction to whichever server session is free,
and gives ours to other clients: a second deploy could take the lock again on the same server
session (advisory locks are re-entrant) and apply a migration twice, and the lock would stay
behind on a pooled server session. So we check, once we hold the lock, that it really is ours
alone, and refuse (:class:`SessionPoolingRequired`) when it is not, releasing it first.

Nothing here sets session state that outlives a transaction, except the owner mark below,
which is reset when the lock is released.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Final

import psycopg

from analytics_core.errors import ConnectionFailed
from analytics_core.migrate.errors import LockTimeout, MigrateError

__all__ = [
    "ADVISORY_LOCK_KEY",
    "POOLER_ADVICE",
    "SessionPoolingRequired",
    "deploy_lock",
    "explain_startup_parameter",
]

#: Any constant works as long as every deploy uses the same one: 'analytics' as ASCII.
ADVISORY_LOCK_KEY: Final = 0x616E616C79746963
#: What to do about a transaction pooler; ends every message that reports one.
POOLER_ADVICE: Final = (
    "Migrations need one server session for their lock: point analytics-migrate at the "
    "server directly or at a session-pooled port (pool_mode = session), with --database-url "
    "or ANALYTICS_MIGRATE_DATABASE_URL."
)

# A custom setting on the lock's server session naming the deploy that holds the lock: a
# deploy that finds another's mark on its own session shares that session with it.
_OWNER_SETTING: Final = "analytics.deploy_lock_owner"
# Separate statements that must all run on the lock's session; a transaction pooler with
# other clients moves at least one of them elsewhere, or hands our session to the probe.
_SESSION_CHECKS: Final = 3
_RELEASE_ATTEMPTS: Final = 5
_TERMINATE_WAIT_S: Final = 5.0
_PROBE_CONNECT_TIMEOUT_S: Final = 10

_UNSUPPORTED_PARAMETER = re.compile(r"unsupported startup parameter:?\s*(\w+)")
_HELD_BY_THIS_SESSION = """
SELECT pg_backend_pid(), current_setting(%(owner)s, true), EXISTS (
    SELECT FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid() AND objsubid = 1
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND (classid::bigint << 32 | objid::bigint) = %(key)s)
"""
_HOLDERS = """
SELECT pid FROM pg_locks
WHERE locktype = 'advisory' AND granted AND objsubid = 1
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND (classid::bigint << 32 | objid::bigint) = %(key)s
"""


class SessionPoolingRequired(MigrateError):
    """The URL goes through a transaction pooler, so the deploy lock cannot be held; nothing
    was applied and the lock was released."""

    def __init__(self, finding: str) -> None:
        super().__init__(
            f"the database URL goes through a transaction pooler ({finding}). {POOLER_ADVICE}"
        )


def explain_startup_parameter(message: str) -> str | None:
    """The advice for a server (PgBouncer) that refused a startup parameter, or None when
    ``message`` is not that refusal."""
    match = _UNSUPPORTED_PARAMETER.search(message)
    if match is None:
        return None
    return (
        f"the server refused the startup parameter '{match.group(1)}' that the database URL "
        "sets (PgBouncer passes only a few on). Remove it from the URL "
        "(analytics-migrate sets its own timeouts per session), or add it to PgBouncer's "
        f"ignore_startup_parameters. {POOLER_ADVICE}"
    )


@contextmanager
def deploy_lock(conn: psycopg.Connection[Any], wait: timedelta) -> Iterator[None]:
    """Hold the deploy lock for the block, on ``conn`` (autocommit, outside a transaction).

    Waits for another deploy's lock for at most ``wait`` (LockTimeout). Then checks that the
    lock belongs to this connection's own server session (SessionPoolingRequired when a
    transaction pooler shares it; a second, short connection probes for that). The lock is
    released on the way out, also after an error; through a transaction pooler, if the
    session holding it cannot be reached in a few tries, that server session is ended.
    Raises ConnectionFailed when the probe cannot connect.
    """
    token = secrets.token_hex(8)
    pid = _take(conn, wait, token)
    try:
        _check_own_session(conn, pid, token)
        yield
    finally:
        # A session that is gone (the server crashed or restarted) took the lock with it,
        # and releasing it would raise over the error that says what failed.
        if not conn.closed and not conn.broken:
            with contextlib.suppress(psycopg.OperationalError):
                _release(conn, pid, token)


def _take(conn: psycopg.Connection[Any], wait: timedelta, token: str) -> int:
    """Take the lock in one transaction (one server session even through a transaction
    pooler), its wait bounded by a transaction-local lock_timeout; the session's pid."""
    millis = f"{max(1, round(wait.total_seconds() * 1000))}ms"
    try:
        with conn.transaction():
            conn.execute("SELECT set_config('lock_timeout', %s, true)", (millis,))
            conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
            row = conn.execute(
                "SELECT pg_backend_pid(), current_setting(%s, true)", (_OWNER_SETTING,)
            ).fetchone()
            assert row is not None
            pid, owner = row
            if owner:
                # Another deploy holds the lock on this very server session: we only took it
                # again (advisory locks are re-entrant). Give back our share, here, where the
                # session is still ours.
                conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
                raise SessionPoolingRequired("another deploy holds the lock on our server session")
            conn.execute("SELECT set_config(%s, %s, false)", (_OWNER_SETTING, token))
    except psycopg.errors.LockNotAvailable:
        raise LockTimeout(
            f"another deploy held the migration lock for more than {wait.total_seconds():g} s; "
            "retry when it has finished, or raise --lock-wait"
        ) from None
    return int(pid)


def _check_own_session(conn: psycopg.Connection[Any], pid: int, token: str) -> None:
    params = {"owner": _OWNER_SETTING, "key": ADVISORY_LOCK_KEY}
    for _ in range(_SESSION_CHECKS):
        row = conn.execute(_HELD_BY_THIS_SESSION, params).fetchone()
        if row != (pid, token, True):
            raise SessionPoolingRequired("our statements ran on different server sessions")
    with _probe(conn) as other:
        for _ in range(_SESSION_CHECKS):
            row = other.execute("SELECT pg_backend_pid()").fetchone()
            if row is not None and row[0] == pid:
                raise SessionPoolingRequired("another connection was given our server session")


@contextmanager
def _probe(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """A second connection with ``conn``'s settings: on a transaction pooler with an idle
    pool it is given the server session that ``conn`` used last, which is the lock's."""
    password = conn.info.password
    try:
        probe = psycopg.connect(
            conn.info.dsn,
            password=password,
            autocommit=True,
            prepare_threshold=None,
            connect_timeout=_PROBE_CONNECT_TIMEOUT_S,
        )
    except psycopg.Error as error:
        message = str(error).strip()
        if password:
            message = message.replace(password, "***")
        raise ConnectionFailed(
            "cannot open a second connection to check that the deploy lock's session is our "
            f"own (the migrations need two at once): {message}"
        ) from None
    try:
        yield probe
    finally:
        probe.close()


def _release(conn: psycopg.Connection[Any], pid: int, token: str) -> None:
    """Release the lock on the session ``pid`` that holds it, and clear the owner mark."""
    for _ in range(_RELEASE_ATTEMPTS):
        with conn.transaction():
            row = conn.execute(
                "SELECT pg_backend_pid(), current_setting(%s, true)", (_OWNER_SETTING,)
            ).fetchone()
            if row == (pid, token):
                conn.execute("SELECT set_config(%s, '', false)", (_OWNER_SETTING,))
                conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
                return
    # A transaction pooler keeps giving us other server sessions, while the lock's is idle
    # in its pool or busy with another client: end that session, or the lock stays behind.
    if pid in _holders(conn):
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + _TERMINATE_WAIT_S
        while pid in _holders(conn) and time.monotonic() < deadline:
            time.sleep(0.05)


def _holders(conn: psycopg.Connection[Any]) -> set[int]:
    return {row[0] for row in conn.execute(_HOLDERS, {"key": ADVISORY_LOCK_KEY}).fetchall()}
