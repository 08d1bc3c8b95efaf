"""The background worker: two daemon threads forming a two-stage pipeline.

- The **batcher** wakes when a batch is full, the flush interval has passed, ``flush()`` asks
  or ``close()`` starts. It takes ``batch_size`` rows at a time from the intake (a partial
  batch only when one is due; ``track()`` encoded them) and hands each batch over; full
  batches that wait together (a backlog) go over as one, of up to 10,000 rows, so that it
  drains in fewer COPYs. Between
  batches it looks after the writer: a server that stops answering is cut off.
- The **writer** writes one batch at a time by COPY. While it waits for the server, without
  the GIL, the batcher hands over the next batch.

Neither does per-event Python work, so each holds the GIL only for short turns (take a
batch, join its rows, send them): a caller of ``track()`` waits at most that long for it.

The handoff holds one batch, so at most three batches are outside the intake: one being
written, one ready, one being taken. All of them still count as pending against
``max_queue_size``.

What happens when a write fails is ``_delivery``'s decision; the worker only gives it the
writer thread, and a pause between retries that ends early when ``close()`` starts (then
retries come fast) and at once when it gives up.
"""

from __future__ import annotations

import threading
import time
from typing import Final

from analytics_core.client._config import ClientConfig
from analytics_core.client._connection import EventsConnection
from analytics_core.client._delivery import Delivery
from analytics_core.client._encoder import Batch
from analytics_core.client._lifecycle import keep_process_signals_off_this_thread
from analytics_core.client._log import Throttle, logger
from analytics_core.client._queue import EventQueue

__all__ = ["Worker"]

# How often, at most, the batcher looks around (drop warnings, a stuck writer) while idle or
# waiting for the writer.
_HOUSEKEEPING_S: Final = 1.0
# The server's statement_timeout should end any operation first; this much later, the
# connection is cut from our side (a frozen server does not enforce its own timeout).
_WATCHDOG_GRACE_S: Final = 5.0
# A backlog of full batches goes out in COPYs of up to this many rows (or batch_size, if
# more). Each COPY costs the writer four round trips, and after each it needs the GIL back:
# while a producer keeps the GIL busy that takes up to sys.getswitchinterval() (5 ms), so a
# backlog written batch by batch drains at a pace set by the producer, not by the server.
_BACKLOG_COPY_ROWS: Final = 10_000
# While close() drains, retries come at least this often, so a database that comes back is
# used before close()'s deadline.
_CLOSING_RETRY_S: Final = 0.25


class _Handoff:
    """A one-batch mailbox from the batcher to the writer, refilled while the server works.

    The writer ``get``s a batch and ``release``s the slot only once its COPY is on the wire
    and it waits for the server without the GIL. The batcher then hands over the next
    batch: its turn with the GIL comes while the server works, instead of competing with
    the writer thread while it sends.
    """

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._batch: Batch | None = None
        self._held = False
        self._finished = False
        self._aborted = False

    def put(self, batch: Batch, timeout: float) -> bool:
        """Leave ``batch`` for the writer; False on timeout (slot still taken) or abort."""
        with self._ready:
            if (
                not self._ready.wait_for(
                    lambda: (self._batch is None and not self._held) or self._aborted, timeout
                )
                or self._aborted
            ):
                return False
            self._batch = batch
            self._ready.notify_all()
            return True

    def get(self) -> Batch | None:
        """The next batch; None once finished and empty, or at once when aborted."""
        with self._ready:
            self._ready.wait_for(lambda: self._batch is not None or self._finished or self._aborted)
            if self._aborted:
                return None
            batch, self._batch = self._batch, None
            self._held = batch is not None
            return batch

    def release(self) -> None:
        """The writer is waiting on the server: the batcher may hand over the next batch."""
        if self._held:
            with self._ready:
                self._held = False
                self._ready.notify_all()

    def finish(self) -> None:
        """No more batches will come."""
        with self._ready:
            self._finished = True
            self._ready.notify_all()

    def abort(self) -> None:
        """End every wait now; a batch left in the slot is not written."""
        with self._ready:
            self._aborted = True
            self._ready.notify_all()


class Worker:
    """Moves events from an ``EventQueue`` into the table; see the module docstring."""

    def __init__(
        self, config: ClientConfig, queue: EventQueue, connection: EventsConnection
    ) -> None:
        self.queue = queue
        self._config = config
        self._connection = connection
        self._handoff = _Handoff()
        self._closing = threading.Event()
        self._abort = threading.Event()
        # Cuts a pause between retries short: set when close() starts and when it gives up.
        self._retry_now = threading.Event()
        self._delivery = Delivery(
            connection,
            queue,
            on_error=config.on_error,
            max_backoff=config.max_backoff,
            max_queue_size=config.max_queue_size,
            pause=self._pause_before_retry,
            aborted=self._abort.is_set,
        )
        self._exit_lock = threading.Lock()
        self._running = 2
        self._drops_reported = 0
        self._drop_warnings = Throttle()
        self._threads = (
            threading.Thread(
                target=self._run_batcher,
                name=f"analytics-core-batcher ({config.service})",
                daemon=True,
            ),
            threading.Thread(
                target=self._run_writer,
                name=f"analytics-core-writer ({config.service})",
                daemon=True,
            ),
        )

    # --- Control, from the client --------------------------------------------------------------

    def start(self) -> None:
        """Start both threads."""
        for thread in self._threads:
            thread.start()

    def flush(self, deadline: float) -> bool:
        """Ask for everything queued so far to be written; wait until ``deadline``."""
        target = self.queue.request_flush()
        return self.queue.wait_settled(target, deadline)

    def begin_close(self) -> None:
        """Stop intake and start draining; returns at once."""
        self.queue.close_intake()
        self._closing.set()
        self._retry_now.set()
        self.queue.wake.set()

    def join(self, deadline: float) -> bool:
        """Wait until both threads have ended, or ``deadline`` (monotonic) passes."""
        for thread in self._threads:
            remaining = deadline - time.monotonic()
            if remaining > 0:
                thread.join(remaining)
        return not any(thread.is_alive() for thread in self._threads)

    def abort(self) -> None:
        """Give up: end every wait now, and shut the connection down.

        A COPY or look-up waiting on the server fails at once (a COPY whose data was sent may
        have committed: the server decides); a connection attempt under way ends within
        ``connect_timeout``. The threads then stop without writing anything more. What is
        still pending is for the caller to count as dropped (``queue.seal()``).
        """
        self._abort.set()
        self._retry_now.set()
        self._handoff.abort()
        self.queue.wake.set()
        self._connection.shut()

    def runs_on_current_thread(self) -> bool:
        """True when called from one of the worker's own threads (e.g. in ``on_error``)."""
        return threading.current_thread() in self._threads

    # --- The batcher -----------------------------------------------------------------------------

    def _run_batcher(self) -> None:
        keep_process_signals_off_this_thread()
        try:
            self._batch_until_closed()
        except BaseException:
            logger.exception(
                "analytics-core: the batcher thread crashed; new events are dropped from now "
                "on. Please report this bug."
            )
            self.queue.close_intake()
        finally:
            self._handoff.finish()
            self._thread_done()

    def _batch_until_closed(self) -> None:
        queue = self.queue
        size = self._config.batch_size
        backlog_rows = max(size, _BACKLOG_COPY_ROWS)
        interval = self._config.flush_interval
        emitted = 0
        next_due = time.monotonic() + interval
        while not self._abort.is_set():
            if (
                not self._closing.is_set()
                and not queue.has_full_batch()
                and queue.flush_upto <= emitted
            ):
                timeout = min(next_due - time.monotonic(), _HOUSEKEEPING_S)
                if timeout > 0:
                    queue.wake.wait(timeout)
            queue.wake.clear()
            # Read before take(): intake closes before _closing is set, so once closing is
            # seen, the takes below get the last events there will ever be.
            closing = self._closing.is_set()
            now = time.monotonic()
            partial = closing or now >= next_due or queue.flush_upto > emitted
            if partial:
                next_due = now + interval
            # Full batches while there are any; then, if due, what is left (a partial batch
            # ends the round, so a busy producer cannot keep it taking small ones).
            while True:
                entries = queue.take(partial)
                if not entries:
                    break
                while len(entries) + size <= backlog_rows and queue.has_full_batch():
                    entries.extend(queue.take(partial=False))
                if not self._hand_over(Batch.of(entries)):
                    return
                emitted += len(entries)
                if len(entries) < size:
                    break
            self._housekeeping()
            if closing and not queue.size():
                return

    def _hand_over(self, batch: Batch) -> bool:
        while not self._handoff.put(batch, _HOUSEKEEPING_S):
            if self._abort.is_set():
                return False
            self._housekeeping()
        return True

    def _housekeeping(self) -> None:
        self._report_drops(force=False)
        limit = self._config.statement_timeout + _WATCHDOG_GRACE_S
        if self._connection.interrupt_if_stuck(limit):
            logger.warning(
                "analytics-core: the database did not answer for %.0f s (statement_timeout "
                "is %g s); cut the connection. The batch will be checked and written again.",
                limit,
                self._config.statement_timeout,
            )

    def _report_drops(self, *, force: bool) -> None:
        dropped = self.queue.dropped_full
        new = dropped - self._drops_reported
        if new and (force or self._drop_warnings.ready()):
            self._drops_reported = dropped
            logger.warning(
                "analytics-core: dropped %d events since last warning (queue full: "
                "max_queue_size=%d events pending); the database is slow or unreachable "
                "(last error: %s). Check the database, or raise max_queue_size to buffer "
                "longer outages.",
                new,
                self._config.max_queue_size,
                self.queue.snapshot().last_error,
            )

    # --- The writer -----------------------------------------------------------------------------

    def _run_writer(self) -> None:
        keep_process_signals_off_this_thread()
        try:
            while (batch := self._handoff.get()) is not None:
                self._delivery.deliver(batch, release=self._handoff.release)
                if self._abort.is_set():
                    break
        except BaseException:
            logger.exception(
                "analytics-core: the writer thread crashed; pending and new events are dropped. "
                "Please report this bug."
            )
            self.queue.close_intake()
            self.abort()
        finally:
            self._connection.close()
            self._thread_done()

    def _pause_before_retry(self, delay: float) -> bool:
        """Wait ``delay`` s before a retry, less once closing; False once ``abort()`` ran."""
        if self._closing.is_set():
            delay = min(delay, _CLOSING_RETRY_S)
        self._retry_now.wait(delay)
        self._retry_now.clear()
        return not self._abort.is_set()

    # --- Both --------------------------------------------------------------------------------

    def _thread_done(self) -> None:
        with self._exit_lock:
            self._running -= 1
            if self._running:
                return
        # The last thread out counts what could not be written as dropped: what close() gave
        # up on, or what a crashed thread left. The closing client's summary says how many.
        self._report_drops(force=True)
        self._delivery.warn_unreported_failures()
        self.queue.seal()
