"""The servers production puts between a service and its database, for the topology tests:
PgBouncer in transaction or session pool mode, and a streaming hot standby.

All through scripts/server-engine (``standby-start``, ``pgbouncer-start``, ``pgbouncer-stop``),
with the bounded waits and the error type of :mod:`devtools.server_engine`. Like the clusters,
they keep running after their caller, so the next start takes well under a second; stop them
with ``scripts/server-engine pgbouncer-stop --name NAME`` and ``stop --name NAME``.
"""

from __future__ import annotations

import time
from typing import Final, Literal

import psycopg

from devtools.server_engine import START_TIMEOUT_S, STOP_TIMEOUT_S, ServerEngineError, _run

__all__ = [
    "REPLAY_TIMEOUT_S",
    "PoolMode",
    "ensure_pgbouncer",
    "ensure_standby",
    "stop_pgbouncer",
    "wait_for_replay",
]

PoolMode = Literal["transaction", "session"]

#: How long a standby may take to replay what its primary wrote before a test gives up.
REPLAY_TIMEOUT_S: Final = 30.0
_POLL_S: Final = 0.05
_CONNECT_TIMEOUT_S: Final = 5


def ensure_standby(name: str, primary: str, *, timeout_s: float = START_TIMEOUT_S) -> str:
    """Start cluster ``name`` as a streaming hot standby of running cluster ``primary``
    (copied with pg_basebackup on first use, or when it no longer streams); its DSN.

    Blocks for at most ``timeout_s``; raises ``ServerEngineError`` on failure or timeout.
    """
    return _dsn(_run(["standby-start", "--name", name, "--of", primary], timeout_s))


def ensure_pgbouncer(
    name: str, primary: str, pool_mode: PoolMode, *, timeout_s: float = START_TIMEOUT_S
) -> str:
    """Start PgBouncer ``name`` in ``pool_mode`` in front of running cluster ``primary``; its
    DSN (the ``postgres`` database; every database of ``primary`` is reachable by its name).

    No ``ignore_startup_parameters``: a client that sends ``options`` is refused, as by a
    stock PgBouncer. Blocks for at most ``timeout_s``; raises ``ServerEngineError``.
    """
    return _dsn(
        _run(
            ["pgbouncer-start", "--name", name, "--of", primary, "--pool-mode", pool_mode],
            timeout_s,
        )
    )


def stop_pgbouncer(name: str, *, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Stop PgBouncer ``name``; one that is not running is left as is."""
    _run(["pgbouncer-stop", "--name", name], timeout_s)


def wait_for_replay(
    primary_url: str, standby_url: str, *, timeout_s: float = REPLAY_TIMEOUT_S
) -> None:
    """Return once the standby has replayed everything the primary had written on entry.

    Polls every 50 ms for at most ``timeout_s``; raises ``ServerEngineError`` when the standby
    lags longer (it is then not streaming: see its server.log).
    """
    with psycopg.connect(primary_url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S) as p:
        # The insert position: with synchronous_commit = off (the engine's setting) the last
        # commits may not be written out yet, and the write position would miss them.
        row = p.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
    assert row is not None
    target: str = row[0]
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(standby_url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S) as s:
        while True:
            caught_up = s.execute(
                "SELECT coalesce(pg_last_wal_replay_lsn() >= %s::pg_lsn, false)", (target,)
            ).fetchone()
            if caught_up is not None and caught_up[0]:
                return
            if time.monotonic() >= deadline:
                raise ServerEngineError(
                    f"the standby did not replay up to {target} within {timeout_s:g}s"
                )
            time.sleep(_POLL_S)


def _dsn(output: str) -> str:
    dsn = output.strip()
    if not dsn.startswith("postgresql://"):
        raise ServerEngineError(f"scripts/server-engine printed {dsn!r}, not a DSN")
    return dsn
