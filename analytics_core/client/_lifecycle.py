"""Process lifecycle: what live clients do when the process forks and when it exits.

- **Fork.** A child inherits the parent's memory but none of its threads, and shares its
  sockets. ``os.register_at_fork`` runs ``_after_fork_in_child`` in the child: every client
  connection lets go of the parent's session without sending on it, then every open client starts
  over with an empty queue, its own worker and (lazily) its own connection. Events queued in
  the parent stay the parent's to write. Only weak references are held, so registering never
  keeps a client alive.
- **Exit.** An ``atexit`` hook closes every open client, each within its ``shutdown_timeout``
  (all at once, so the total is the longest one, not the sum). Children started by
  ``multiprocessing`` with fork leave through ``os._exit``, which skips ``atexit``; for them
  the same hook is armed as a multiprocessing finalizer.
"""

from __future__ import annotations

import atexit
import os
import sys
import time
import weakref
from typing import Final, Protocol

from analytics_core.client._connection import EventsConnection
from analytics_core.client._log import logger

__all__ = ["forget_client", "register_client", "register_connection"]


class _Client(Protocol):
    def _restart_in_child(self) -> None: ...

    def _begin_close(self) -> None: ...

    def _finish_close(self, deadline: float) -> bool: ...

    @property
    def _shutdown_timeout(self) -> float: ...


_clients: weakref.WeakSet[_Client] = weakref.WeakSet()
_connections: weakref.WeakSet[EventsConnection] = weakref.WeakSet()


class _Anchor:
    """Something for multiprocessing's after-fork registry to hold a weak reference to."""


_ANCHOR: Final = _Anchor()


def register_client(client: _Client) -> None:
    """Close ``client`` at exit and restart it in forked children, while it lives."""
    _clients.add(client)


def forget_client(client: _Client) -> None:
    """``client`` is closed: nothing more to do for it at exit or fork."""
    _clients.discard(client)


def register_connection(connection: EventsConnection) -> None:
    """Make forked children let go of ``connection``, while it lives.

    Connections are tracked apart from clients: one whose client was garbage-collected may
    still be open while its worker drains.
    """
    _connections.add(connection)


def _after_fork_in_child() -> None:
    for connection in list(_connections):
        connection.forget_after_fork()
    clients = list(_clients)
    for client in clients:
        client._restart_in_child()
    if clients:
        _arm_multiprocessing_exit()


def _arm_multiprocessing_exit() -> None:
    # Only if the application uses multiprocessing: importing it here would cost every user.
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None:
        # Runs in a multiprocessing child after it clears the finalizers it inherited.
        mp_util.register_after_fork(_ANCHOR, _register_multiprocessing_finalizer)


def _register_multiprocessing_finalizer(_anchor: _Anchor) -> None:
    mp_util = sys.modules["multiprocessing.util"]
    mp_util.Finalize(None, _close_all_at_exit, exitpriority=0)


def _close_all_at_exit() -> None:
    clients = list(_clients)
    started = time.monotonic()
    for client in clients:
        try:
            client._begin_close()
        except Exception:
            logger.exception("analytics-core: closing a client at exit failed")
    for client in clients:
        try:
            client._finish_close(started + client._shutdown_timeout)
        except Exception:
            logger.exception("analytics-core: closing a client at exit failed")


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all_at_exit)
