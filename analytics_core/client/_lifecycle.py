"""Process lifecycle: what live clients do when the process forks, exits or is terminated.

- **Fork.** A child inherits the parent's memory but none of its threads, and shares its
  sockets. ``os.register_at_fork`` runs ``_after_fork_in_child`` in the child: every client
  connection lets go of the parent's session without sending on it, then every open client starts
  over with an empty queue, its own worker and (lazily) its own connection. Events queued in
  the parent stay the parent's to write. Only weak references are held, so registering never
  keeps a client alive.
- **Exit.** An ``atexit`` hook closes every open client, each within its ``shutdown_timeout``
  (all at once, so the total is the longest one, not the sum).
- **multiprocessing children** (any start method; with fork, from a client inherited; with
  spawn or forkserver, from one opened in the child: by a pool's initializer, or as the
  child imports the main module again, which makes a module-level client): they
  leave through ``os._exit``, which skips ``atexit``, so the same hook is armed as a
  multiprocessing finalizer. And multiprocessing ends them with SIGTERM (``Pool.terminate()``,
  which ``with Pool()`` calls, ``Process.terminate()``), whose default action kills at once:
  where SIGTERM still has that default action, it is taken over (``_on_sigterm``). The
  clients are closed, within their ``shutdown_timeout``, then the process ends by SIGTERM
  as it would have, with the same exit status; a second SIGTERM ends it at once. A handler
  of the application's own, set before or after, is left to it.
"""

from __future__ import annotations

import atexit
import importlib
import os
import signal
import sys
import threading
import time
import weakref
from types import FrameType
from typing import TYPE_CHECKING, Final, Protocol

from analytics_core.client._connection import EventsConnection
from analytics_core.client._log import logger

if TYPE_CHECKING:
    from multiprocessing.util import Finalize

__all__ = ["forget_client", "register_client", "register_connection"]


class _Client(Protocol):
    def _restart_in_child(self) -> bool: ...

    def _begin_close(self) -> None: ...

    def _finish_close(self, deadline: float) -> bool: ...

    @property
    def _shutdown_timeout(self) -> float: ...


_clients: weakref.WeakSet[_Client] = weakref.WeakSet()
_connections: weakref.WeakSet[EventsConnection] = weakref.WeakSet()


class _Anchor:
    """Something for multiprocessing's after-fork registry to hold a weak reference to."""


_ANCHOR: Final = _Anchor()
# Whether _after_fork_in_child is running (it arms through multiprocessing's start hook).
_in_fork_hook = False
# The process that asked multiprocessing to arm it should it be a child (see register_client).
_watched_pid = 0
# The exit finalizer armed in this process (a child clears the finalizers it inherits).
_exit_finalizer: Finalize | None = None


def register_client(client: _Client) -> None:
    """Close ``client`` at exit and restart it in forked children, while it lives.

    In a multiprocessing child, also arm its exit and SIGTERM (see the module docstring).
    """
    _clients.add(client)
    if _in_fork_hook:
        return  # _after_fork_in_child arms the child
    if _is_multiprocessing_child():
        _arm_multiprocessing_child()
    # A fork or forkserver child clears the finalizers it inherits as it starts: it is armed
    # by the hook multiprocessing runs after that (children of this process, which inherit
    # the client through fork; and this one, if a forkserver child importing the main module).
    _arm_at_multiprocessing_start()


def forget_client(client: _Client) -> None:
    """``client`` is closed (its close() has ended): nothing more to do at exit or fork."""
    _clients.discard(client)


def register_connection(connection: EventsConnection) -> None:
    """Make forked children let go of ``connection``, while it lives.

    Connections are tracked apart from clients: one whose client was garbage-collected may
    still be open while its worker drains.
    """
    _connections.add(connection)


def _after_fork_in_child() -> None:
    global _in_fork_hook  # noqa: PLW0603 - set for the duration of the hook
    for connection in list(_connections):
        connection.forget_after_fork()
    _in_fork_hook = True
    try:
        for client in list(_clients):
            if not client._restart_in_child():
                _clients.discard(client)  # closed (or closing) in the parent
    finally:
        _in_fork_hook = False
    if _clients:
        _arm_at_multiprocessing_start()


def _is_multiprocessing_child() -> bool:
    """True in a multiprocessing child, or one still importing the main module (spawn,
    forkserver), when multiprocessing has not yet told it its parent."""
    mp_process = sys.modules.get("multiprocessing.process")
    if mp_process is None:
        return False
    return mp_process.parent_process() is not None or bool(
        getattr(mp_process.current_process(), "_inheriting", False)
    )


def _arm_at_multiprocessing_start() -> None:
    """Arm this process's multiprocessing children as they start; once per process."""
    global _watched_pid  # noqa: PLW0603 - one registration per process
    # Only if the application uses multiprocessing: importing it here would cost every user.
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is None or _watched_pid == os.getpid():
        return
    _watched_pid = os.getpid()
    # Runs as a fork or forkserver child starts, on its main thread, after it cleared the
    # finalizers it inherited; never in other processes (nor in spawn children, which the
    # checks of register_client find).
    mp_util.register_after_fork(_ANCHOR, _arm_after_multiprocessing_start)


def _arm_after_multiprocessing_start(_anchor: _Anchor) -> None:
    _arm_multiprocessing_child()


def _arm_multiprocessing_child() -> None:
    """Close the clients when this multiprocessing child exits or is sent SIGTERM.

    Idempotent: the finalizer is registered again only if the child cleared it, and SIGTERM
    taken only while it has its default action.
    """
    global _exit_finalizer  # noqa: PLW0603 - one per process
    mp_util = importlib.import_module("multiprocessing.util")
    if _exit_finalizer is None or not _exit_finalizer.still_active():
        _exit_finalizer = mp_util.Finalize(None, _close_all_at_exit, exitpriority=0)
    # signal.signal works on the main thread only (after a fork, the forking thread is it).
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    ):
        signal.signal(signal.SIGTERM, _on_sigterm)


#: Signals the process's own threads must receive. A signal is delivered to any thread that
#: does not block it; one delivered to ours would not interrupt a main thread blocked in C
#: (say, a pool worker waiting on its task queue), which would then never run the handler.
_PROCESS_SIGNALS: Final = frozenset({signal.SIGTERM, signal.SIGINT})


def keep_process_signals_off_this_thread() -> None:
    """Block SIGTERM and SIGINT in the calling thread (one of the client's own threads), so
    that they reach the application's threads, the main one above all."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, _PROCESS_SIGNALS)


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM in a multiprocessing child: close the clients, then end by SIGTERM after all.

    Runs on the main thread between two bytecodes of whatever it was doing, maybe holding a
    lock a close would take, so it only starts the closing thread and returns. The main
    thread carries on (typically waiting for its next task) until that thread ends the
    process; multiprocessing's terminate() waits for that, bounded by shutdown_timeout.
    """
    # A second SIGTERM ends the process at once, as does the one sent when closing is done.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # Not a daemon: if the main thread ends first, the interpreter waits for this one.
    closing = threading.Thread(
        target=_close_all_then_end, args=(signum,), name="analytics-core-sigterm"
    )
    try:
        closing.start()
    except RuntimeError:  # the interpreter is shutting down: no thread any more
        os.kill(os.getpid(), signum)


def _close_all_then_end(signum: int) -> None:
    keep_process_signals_off_this_thread()
    try:
        _close_all_at_exit()
    finally:
        os.kill(os.getpid(), signum)


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
