"""``AnalyticsClient``: track events from application code; a worker writes them in batches.

>>> from analytics_core import AnalyticsClient
>>> from analytics_core.events import TaskCreated
>>> with AnalyticsClient(database_url, service="platform") as client:  # doctest: +SKIP
...     client.track(TaskCreated(task_id=task.id, user_id=user.id, command="build"))

``track()`` validates its argument, reads the clock, encodes the event into its row of binary
COPY data and appends it to a bounded in-memory queue: no I/O, never blocks (a few
microseconds). The queue holds bytes, which the garbage collector never visits. A background
worker writes the rows with binary COPY over one reused connection, every ``batch_size``
events or ``flush_interval`` seconds, whichever comes first; its turns with the GIL are short,
so callers of ``track()`` seldom wait for it.

Delivery
    Each row carries a unique ``event_id``. A batch is one COPY, committed as a whole. When the
    connection drops, the worker reconnects with a capped, jittered backoff (at most 0.5 s
    apart while the database cannot be reached, so writing resumes soon after it returns)
    and first asks which events of the in-doubt batch already landed, so no event is
    written twice. While
    the database is away events keep queueing up to ``max_queue_size``; beyond it ``track()``
    drops them (returns False, counted, warned about at most every 10 s). Rows the database
    rejects (class 22 data errors such as a NUL character in a string, 23 constraints) are
    isolated by splitting their batch: only they are lost, counted in ``stats.failed`` and
    passed to ``on_error``.

asyncio
    ``track()`` never blocks, so call it directly in coroutines. ``flush()`` and ``close()``
    wait, so await ``client.aflush(timeout)`` / ``client.aclose(timeout)`` (or
    ``await asyncio.to_thread(client.flush, timeout)``), which run them in a worker thread.

Process exit and signals
    - Normal exit (end of main, ``sys.exit()``, an uncaught exception): an ``atexit`` hook
      closes every open client, waiting at most its ``shutdown_timeout`` (5 s by default) for
      pending events to be written.
    - SIGTERM with Python's default handler kills the process without running ``atexit``:
      events still in memory are lost. Turn SIGTERM into a normal exit to keep them::

          import signal, sys
          signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

      Under an application server do what the README's *Servers* table says instead:
      nothing under gunicorn's sync workers, ``analytics_core.asgi.closing_lifespan`` under
      uvicorn (which re-raises SIGTERM past ``atexit``), and ``close()`` from Celery's
      ``worker_process_shutdown`` signal.
    - SIGKILL, ``os._exit()`` or a crash of the interpreter: events in memory are lost, at
      most ``max_queue_size`` (the bound counts every pending event, the batch being written
      included). What was committed stays; nothing is half-written.
    - Fork (gunicorn ``--preload``, Celery prefork, ``multiprocessing`` with fork): the child
      starts with an empty queue, its own worker and connection; events queued in the parent
      are written by the parent only.
    - ``multiprocessing`` children, whatever the start method (a client inherited through
      fork, or opened in the child: by a ``Pool`` initializer, or at the import of the main
      module that spawn and forkserver children repeat): closed when they end
      normally (``pool.close(); pool.join()``, a ``Process`` whose target returns), and when
      multiprocessing terminates them with SIGTERM (``with Pool() as pool:``, whose exit
      calls ``terminate()``; ``Process.terminate()``), as long as SIGTERM has its default
      action there: the clients are closed within ``shutdown_timeout``, then the child ends
      by SIGTERM as it would have. ``Process.kill()`` (SIGKILL) loses what is queued.
    - Other children that end with ``os._exit()`` (Celery's prefork pool among them) must
      call ``close()`` first: from Celery's ``worker_process_shutdown`` signal.
"""

# How it is built, in the order an event travels (each module's docstring has the details):
# - _client: AnalyticsClient checks the event and puts it into the intake (_queue).
# - _queue: the bounded intake, which has _encoder turn each event into its binary COPY row,
#   and the ledger of what became of every event (ClientStats).
# - _worker: two threads. The batcher takes batches of rows from the intake and watches the
#   writer; the writer hands each batch to _delivery.
# - _delivery: writes through _connection; retries (_backoff), splits out rows the database
#   rejects and looks up in-doubt rows, deciding by SQLSTATE (_sqlstate). No threads.
# - _connection: the one connection to the events table, the COPY, the in-doubt look-up.
# - _config validates the arguments once; _lifecycle closes clients at exit and restarts them
#   in forked children; _log holds the logger and its throttle.

from __future__ import annotations

from analytics_core.client._client import AnalyticsClient
from analytics_core.tracker import ClientStats, OnError, Tracker

__all__ = ["AnalyticsClient", "ClientStats", "OnError", "Tracker"]

# Defined in a private module, importable from here: say so (as psycopg does).
AnalyticsClient.__module__ = __name__
