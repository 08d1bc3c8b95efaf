"""``AnalyticsClient``: the public face of the client; see ``analytics_core.client``.

It validates its arguments (``_config``), puts tracked events into the intake (``_queue``),
starts and stops the worker (``_worker``) and registers itself for exit and fork
(``_lifecycle``). Everything that waits is bounded by a caller's timeout.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
import weakref
from collections.abc import Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Self

from analytics_core._checks import seconds
from analytics_core.client._config import ClientConfig, check_service
from analytics_core.client._connection import EventsConnection
from analytics_core.client._encoder import CallerStamp, Stamp, row_encoder
from analytics_core.client._lifecycle import forget_client, register_client, register_connection
from analytics_core.client._log import logger
from analytics_core.client._queue import EventQueue, LocalIntake
from analytics_core.client._worker import Worker
from analytics_core.events import AnalyticsEvent
from analytics_core.tracker import (
    EVENT_CLASSES,
    ClientStats,
    OnError,
    Tracker,
    check_event,
    check_timestamp,
    in_range,
)

__all__ = ["AnalyticsClient"]

_time_ns = time.time_ns
# How long before its deadline a close() that is running out of time gives up (at most half
# its timeout): the worker's threads then have this long to settle what they know.
_GIVE_UP_GRACE_S: Final = 0.1


class AnalyticsClient:
    """Tracks analytics events and writes them to ``analytics_events`` in the background.

    Arguments (validated here, once; a bad value raises ``ValueError`` or ``TypeError``):

    - ``database_url``: libpq DSN or URL of the database holding ``analytics_events``.
    - ``service``: the ``service`` column of every row, 1-100 characters.
    - ``batch_size`` (1000): events per COPY. Each COPY costs the writer thread a few turns
      with the GIL (one per round trip, mostly psycopg's Python), which a caller of
      ``track()`` busy with CPU work may have to wait out: fewer, larger batches make
      fewer of them. A partial batch is written after ``flush_interval`` all the same;
      full batches that wait together (a backlog) are written as one COPY of up to
      10,000 rows (or ``batch_size``, if more).
    - ``flush_interval`` (10.0 s): longest time an event waits for its batch to fill.
    - ``max_queue_size`` (10 000): most events pending at once (queued, being built or being
      written); ``track()`` drops beyond it. At least ``batch_size``.
    - ``on_error`` (None): ``on_error(events, exception)``, called on the writer thread with
      events the database rejected. Exceptions it raises are logged and ignored. It must not
      call ``flush()`` or ``close()``.
    - ``shutdown_timeout`` (5.0 s): how long the exit hook and ``with`` blocks wait to drain.
    - ``connect_timeout`` (5.0 s): per connection attempt (libpq: whole seconds, at least 2).
    - ``statement_timeout`` (30.0 s): server-side bound on each COPY; a server that stops
      answering altogether is cut off 5 s after it.
    - ``max_backoff`` (10.0 s): longest pause between retries of a write the database
      refuses (a permission, a missing table, too many connections). While it cannot be
      reached at all, a connection is tried at least every 0.5 s (or ``max_backoff`` if
      lower), so writing resumes within about that long of its return.
    - ``enabled`` (True): False makes a client that connects nowhere and discards events,
      counting them as written (for development; see also ``analytics_core.testing``).
    - ``_intake`` (None): private, for the test doubles in ``analytics_core.testing``: the
      ``LocalIntake`` that receives a disabled client's events (by default one that discards
      them). Only with ``enabled=False``.

    Starts two daemon threads (no connection is opened until the first batch). Thread-safe.
    Close it with ``close()`` or a ``with`` block; open clients are also closed at exit.
    """

    def __init__(
        self,
        database_url: str,
        *,
        service: str,
        batch_size: int = 1000,
        flush_interval: float = 10.0,
        max_queue_size: int = 10_000,
        on_error: OnError | None = None,
        shutdown_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        statement_timeout: float = 30.0,
        max_backoff: float = 10.0,
        enabled: bool = True,
        _intake: LocalIntake | None = None,
    ) -> None:
        if not isinstance(enabled, bool):
            raise TypeError(f"enabled must be a bool, not {type(enabled).__name__}")
        if _intake is not None and enabled:
            raise ValueError(
                "_intake is for disabled clients (the test doubles): pass enabled=False"
            )
        self._config = ClientConfig.create(
            database_url,
            service=service,
            batch_size=batch_size,
            flush_interval=flush_interval,
            max_queue_size=max_queue_size,
            on_error=on_error,
            shutdown_timeout=shutdown_timeout,
            connect_timeout=connect_timeout,
            statement_timeout=statement_timeout,
            max_backoff=max_backoff,
            connect=enabled,
        )
        self._close_lock = threading.Lock()
        self._closed = False
        self._summarized = False
        self._intake: EventQueue | LocalIntake
        self._worker: Worker | None = None
        self._finalizer: weakref.finalize[Any, Any]
        if enabled:
            self._start_worker()
        else:
            self._intake = LocalIntake() if _intake is None else _intake

    # --- The public surface ------------------------------------------------------------------

    @property
    def service(self) -> str:
        """The ``service`` written with every event."""
        return self._config.service

    def track(self, event: AnalyticsEvent, *, timestamp: datetime | None = None) -> bool:
        """Queue ``event`` for writing; return False when it was dropped.

        ``timestamp`` defaults to now; an explicit one must be timezone-aware and between
        2000-01-01 and a day after now (``ValueError`` otherwise: see ``tracker``).
        ``TypeError`` when ``event`` is not an event model: build one (its constructor
        validates the fields) or use ``events.parse_event`` for raw payloads.

        Dropped means the queue holds ``max_queue_size`` events already, or the client is
        closed; either is counted in ``stats.dropped``. Never blocks and does no I/O; it
        serialises the event into its row here, in the caller's thread (a few microseconds),
        so that the queue holds bytes and the worker's turns with the GIL stay short.
        """
        if type(event) not in EVENT_CLASSES:
            check_event(event)
        if timestamp is None:
            return self._intake.put(event, _time_ns())
        # The common explicit timestamp, checked inline: a call costs a share of track().
        if timestamp.__class__ is datetime and timestamp.tzinfo is UTC and in_range(timestamp):
            return self._intake.put(event, timestamp)
        return self._intake.put(event, check_timestamp(timestamp))

    def track_all(
        self,
        events: Sequence[AnalyticsEvent],
        *,
        service: str | None = None,
        timestamps: Sequence[datetime | None] | None = None,
        event_ids: Sequence[uuid.UUID | None] | None = None,
    ) -> bool:
        """Queue every one of ``events``, or none: False when the queue has less room than
        ``len(events)`` or the client is closed.

        Unlike ``track()``, a refusal drops nothing and counts nothing: the caller still
        holds the events and can refuse them in turn, for its producer to send them again
        (the HTTP collector answers 503). ``service`` (default: the client's) is written with
        all of them. ``timestamps[i]`` and ``event_ids[i]`` belong to ``events[i]`` (same
        lengths; a None entry, or no sequence, means now and a fresh id).

        A chosen event id makes a retry harmless: the table's unique key is
        ``(event_id, timestamp)``, and a row found there already counts as written without
        being written again, so a retry with the same ids and timestamps stores each event
        once. Everything is checked before anything is queued: ``TypeError`` and
        ``ValueError`` as ``track()`` and the constructor's ``service``, or for sequences of
        other lengths. Never blocks, does no I/O.
        """
        count = len(events)
        for name, given in (("timestamps", timestamps), ("event_ids", event_ids)):
            if given is not None and len(given) != count:
                raise ValueError(f"{name} has {len(given)} entries for {count} events")
        row_service = self._config.service if service is None else check_service(service)
        now: datetime | None = None
        stamps: list[Stamp] = []
        for i, event in enumerate(events):
            if type(event) not in EVENT_CLASSES:
                check_event(event)
            timestamp = None if timestamps is None else timestamps[i]
            event_id = None if event_ids is None else event_ids[i]
            if event_id is not None and not isinstance(event_id, uuid.UUID):
                raise TypeError(f"event_ids[{i}] is a {type(event_id).__name__}, not a UUID")
            if timestamp is None:
                now = now or datetime.fromtimestamp(_time_ns() // 1_000 / 1e6, UTC)
                timestamp = now
            else:
                timestamp = check_timestamp(timestamp)
            stamps.append(
                CallerStamp.of(timestamp, None if event_id is None else event_id.bytes, row_service)
            )
        return self._intake.put_all(events, stamps)

    def flush(self, timeout: float = 5.0) -> bool:
        """Write everything tracked before this call; wait at most ``timeout`` seconds.

        True when every such event has been resolved: written, or rejected by the database
        (counted in ``stats.failed`` and passed to ``on_error``; no wait would change that).
        False when the timeout passed first (the database is slow or away; the events stay
        queued) or they were dropped by a timed-out ``close()``. Blocks the calling thread;
        raises ``RuntimeError`` when called from ``on_error``.
        """
        deadline = time.monotonic() + seconds(timeout, "timeout")
        worker = self._worker
        if worker is None:
            return True
        self._refuse_worker_thread(worker, "flush")
        return worker.flush(deadline)

    def close(self, timeout: float = 5.0) -> bool:
        """Stop accepting events, write what is pending, release the connection.

        Waits at most ``timeout`` seconds (database up or down). True when everything was
        resolved in time. False when it gave up: the connection is shut down and what was
        still pending counts as dropped (a batch whose COPY was sent may have committed all
        the same; a warning says so). Either way the counters are final when it returns
        (``queue_depth`` 0) and one line sums them up in the log (INFO, or WARNING when it
        gave up). The worker's threads end with it, or at once after it gave up; only a
        connection attempt under way runs on, for at most ``connect_timeout``, and an
        ``on_error`` call until it returns. Idempotent: a later call waits for the same
        shutdown. ``track()`` after close returns False and counts a drop.
        """
        deadline = time.monotonic() + seconds(timeout, "timeout")
        self._begin_close()
        return self._finish_close(deadline)

    async def aflush(self, timeout: float = 5.0) -> bool:
        """``flush(timeout)`` in a thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.flush, timeout)

    async def aclose(self, timeout: float = 5.0) -> bool:
        """``close(timeout)`` in a thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.close, timeout)

    @property
    def stats(self) -> ClientStats:
        """A consistent snapshot of the counters (see ``ClientStats``).

        ``last_error`` tells of trouble that is current: while a write is being retried (the
        database is away, say), that attempt's error; after a batch with rows the database
        rejected, the error of its last one. A batch written without error sets it back to
        None, so None means the latest batch went in cleanly.
        """
        return self._intake.snapshot()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(self._config.shutdown_timeout)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<{type(self).__name__} service={self._config.service!r} {state} "
            f"queue_depth={self.stats.queue_depth}>"
        )

    # --- Lifecycle (called by _lifecycle at fork and exit) ------------------------------------

    @property
    def _shutdown_timeout(self) -> float:
        return self._config.shutdown_timeout

    def _start_worker(self) -> None:
        config = self._config
        queue = EventQueue(config.max_queue_size, config.batch_size, row_encoder(config.service))
        connection = EventsConnection(config.conninfo, config.statement_timeout_ms)
        register_connection(connection)
        worker = Worker(config, queue, connection)
        self._intake = queue
        self._worker = worker
        worker.start()
        register_client(self)
        # A client dropped without close(): its worker drains what it has and stops, rather
        # than running for the life of the process. (At exit the atexit hook does the job.)
        self._finalizer = weakref.finalize(self, worker.begin_close)
        self._finalizer.atexit = False

    def _begin_close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        if self._worker is None:
            self._intake.close_intake()
        else:
            self._worker.begin_close()

    def _finish_close(self, deadline: float) -> bool:
        worker = self._worker
        if worker is None:
            return True
        self._refuse_worker_thread(worker, "close")
        # Giving up starts a little before the deadline, so that the threads can settle what
        # they know (a COPY that just committed) before the counters are sealed.
        grace = min(_GIVE_UP_GRACE_S, max(0.0, deadline - time.monotonic()) / 2)
        drained = worker.join(deadline - grace)
        if not drained:
            worker.abort()
            worker.join(deadline)
        worker.queue.seal()
        lost = worker.queue.dropped_at_shutdown
        self._log_summary(lost)
        # Registered until now, so that a close at exit or on SIGTERM waits for this one.
        forget_client(self)
        return drained and not lost

    def _log_summary(self, lost: int) -> None:
        """One line when the first close() ends: what became of the events, in sum."""
        with self._close_lock:
            if self._summarized:
                return
            self._summarized = True
        stats = self.stats
        if not lost:
            logger.info(
                "analytics-core: client %r closed: %d events written, %d failed, %d dropped",
                self._config.service,
                stats.written,
                stats.failed,
                stats.dropped,
            )
            return
        logger.warning(
            "analytics-core: client %r closed: %d events written, %d failed, %d dropped, of "
            "which %d still pending when close() gave up (last error: %s)",
            self._config.service,
            stats.written,
            stats.failed,
            stats.dropped,
            lost,
            stats.last_error,
        )

    def _restart_in_child(self) -> bool:
        """In a forked child: start over if open; True if so (False: closed or closing)."""
        # Runs single-threaded in a forked child; the parent's threads are gone and its locks
        # may have been held by them, so everything stateful is created anew.
        self._close_lock = threading.Lock()
        if self._closed or self._worker is None:
            return False
        # The parent's worker is not ours to stop, and its locks may be held forever.
        self._finalizer.detach()
        self._start_worker()
        return True

    @staticmethod
    def _refuse_worker_thread(worker: Worker, method: str) -> None:
        if worker.runs_on_current_thread():
            raise RuntimeError(
                f"{method}() called from the client's own worker thread (in on_error?); it "
                "would wait for itself. Call it from application code instead."
            )


# The client satisfies the protocol that the test doubles share.
_: type[Tracker] = AnalyticsClient
