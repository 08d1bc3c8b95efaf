"""The bounded intake between ``track()`` and the worker, and the ledger of every event.

One short lock guards both, which is what makes ``ClientStats`` a consistent snapshot: an
event moves from pending to written, failed or dropped in a single critical section. The
writer never holds the lock while it does I/O; ``track()`` holds it for an append.

``put`` encodes the event into its row (``_encoder``) before it takes the lock, so the intake
holds bytes: nothing for the garbage collector to visit however long the backlog, and nothing
left for the worker to do but write.

``pending`` counts every event accepted and not yet resolved: those in the intake, those the
worker has taken and is writing. ``max_queue_size`` bounds that number, so memory
stays bounded however long the database is away.

``seal()`` ends the ledger when the client gives up: what is pending counts as dropped, and
the counters do not change any more (a late outcome of the writer is logged, not counted).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from analytics_core.client._encoder import Entry, Rejection, RowEncoder, Stamp, encode_all
from analytics_core.client._log import logger
from analytics_core.events import AnalyticsEvent
from analytics_core.tracker import ClientStats

__all__ = ["EventQueue", "LocalIntake", "Stamp"]


class EventQueue:
    """A bounded FIFO of tracked events plus the counters of what became of them.

    Producers call ``put`` (never blocks), which encodes each event with ``encode``; one
    worker drains with ``take`` and reports back with ``settle``; anyone may ``snapshot`` or
    wait for a flush target with ``wait_settled``.
    """

    __slots__ = (
        "_accepted",
        "_batch_size",
        "_batches",
        "_capacity",
        "_dropped_closed",
        "_dropped_full",
        "_dropped_shutdown",
        "_encode",
        "_entries",
        "_failed",
        "_flush_upto",
        "_full",
        "_last_error",
        "_lock",
        "_max_size",
        "_pending",
        "_resolved",
        "_retried",
        "_sealed",
        "_settled",
        "_written",
        "wake",
    )

    def __init__(self, max_size: int, batch_size: int, encode: RowEncoder) -> None:
        self._encode = encode
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        #: Set when a batch is full, a flush is requested or intake closes.
        self.wake = threading.Event()
        # The intake: full batches (exactly batch_size events each, oldest first), then the
        # one being filled. Handing out a batch is then O(1) however long the backlog, and
        # no list of the whole backlog is ever copied or freed in one go (with the GIL held).
        # An entry is a row (bytes, which the garbage collector does not track) or, rarely, a
        # Rejection. A full batch is kept as a tuple: a tuple of untracked objects leaves the
        # collector's care at the first collection it survives, where a list would have each
        # of its entries visited by every full collection (100,000 queued: milliseconds).
        self._full: deque[tuple[Entry, ...]] = deque()
        self._entries: list[Entry] = []
        self._max_size = max_size
        # Room for pending events; 0 once closed, so one comparison decides in put().
        self._capacity = max_size
        self._batch_size = batch_size
        self._accepted = 0
        self._pending = 0
        self._resolved = 0
        self._written = 0
        self._failed = 0
        self._dropped_full = 0
        self._dropped_closed = 0
        self._dropped_shutdown = 0
        self._retried = 0
        self._batches = 0
        self._last_error: str | None = None
        self._flush_upto = 0
        self._sealed = False

    # --- Producers ---------------------------------------------------------------------------

    def put(self, event: AnalyticsEvent, stamp: Stamp) -> bool:
        """Encode ``event`` and append its row; False, counted as dropped, when full or closed.

        An event that cannot be encoded is appended as a ``Rejection``: it counts as failed
        once the worker settles it (and goes to ``on_error``), as a row the database rejects.
        """
        # Read without the lock, so that an event dropped because the queue is full or closed
        # is not encoded for nothing (a drop decided on this reading is a drop all the same).
        if self._pending >= self._capacity:
            return self._drop()
        try:
            entry: Entry = self._encode(event, stamp)
        except Exception as exc:
            entry = Rejection(event, exc)
        with self._lock:
            if self._pending >= self._capacity:
                return self._drop_locked()
            self._accepted += 1
            self._pending += 1
            entries = self._entries
            entries.append(entry)
            if len(entries) != self._batch_size:
                return True
            self._full.append(tuple(entries))
            self._entries = []
        # Exactly once per full batch: the append that made it full wakes the worker.
        self.wake.set()
        return True

    def put_all(self, events: Sequence[AnalyticsEvent], stamps: Sequence[Stamp]) -> bool:
        """Encode and append every ``(events[i], stamps[i])``, or none of them when the room
        left is less than ``len(events)`` (or intake is closed). A refusal counts nothing:
        the caller still holds the events and answers for them (the collector's 503)."""
        if self._pending + len(events) > self._capacity:
            return False  # checked again under the lock; this spares the encoding
        entries = encode_all(self._encode, events, stamps)
        woke = False
        with self._lock:
            if self._pending + len(entries) > self._capacity:
                return False
            self._accepted += len(entries)
            self._pending += len(entries)
            for entry in entries:
                self._entries.append(entry)
                if len(self._entries) == self._batch_size:
                    self._full.append(tuple(self._entries))
                    self._entries = []
                    woke = True
        if woke:
            self.wake.set()
        return True

    def _drop(self) -> bool:
        with self._lock:
            return self._drop_locked()

    def _drop_locked(self) -> bool:
        """Count one event dropped: the queue is full, or closed. Holds the lock."""
        self._accepted += 1
        if self._capacity:
            self._dropped_full += 1
        else:
            self._dropped_closed += 1
        return False

    # --- The worker ----------------------------------------------------------------------------

    def take(self, partial: bool = True) -> list[Entry]:
        """The oldest ``batch_size`` entries of the intake, else (``partial``) all there are.

        Empty when there are none (or, without ``partial``, fewer than ``batch_size``). Their
        events stay pending until settled.
        """
        with self._lock:
            if self._full:
                return list(self._full.popleft())
            if not partial or not self._entries:
                return []
            entries = self._entries
            self._entries = []
        return entries

    def has_full_batch(self) -> bool:
        """True when at least ``batch_size`` events wait in the intake."""
        return bool(self._full)

    def size(self) -> int:
        """How many events wait in the intake (not yet taken); exact once intake is closed."""
        return len(self._full) * self._batch_size + len(self._entries)

    @property
    def flush_upto(self) -> int:
        """Events enqueued before the latest ``request_flush()``, counted from the start."""
        return self._flush_upto

    @property
    def dropped_full(self) -> int:
        """Events dropped so far because the queue was full."""
        return self._dropped_full

    @property
    def dropped_at_shutdown(self) -> int:
        """Events ``seal()`` counted as dropped: still pending when the client gave up."""
        return self._dropped_shutdown

    @property
    def pending(self) -> int:
        """Events accepted and not yet resolved."""
        return self._pending

    def settle(self, *, written: int, failed: int, batches: int) -> None:
        """Record the outcome of a batch and wake ``wait_settled`` callers.

        Once sealed, the outcome is only logged: those events were counted as dropped, and
        the counters stay as they were when the client gave up.
        """
        with self._settled:
            sealed = self._sealed
            if not sealed:
                resolved = written + failed
                self._pending -= resolved
                self._resolved += resolved
                self._written += written
                self._failed += failed
                self._batches += batches
                self._settled.notify_all()
        if sealed and written + failed:
            logger.warning(
                "analytics-core: of the events counted as dropped when the client gave up, "
                "%d were written and %d rejected by the database after all",
                written,
                failed,
            )

    def note_retry(self, error: str) -> None:
        """Count one retried write attempt and remember its error (unless sealed)."""
        with self._lock:
            if not self._sealed:
                self._retried += 1
                self._last_error = error

    def note_error(self, error: str | None) -> None:
        """Set ``last_error``: rows the database rejected, or None after a clean batch."""
        with self._lock:
            if not self._sealed:
                self._last_error = error

    def seal(self) -> int:
        """Count every pending event as dropped and freeze the counters; return how many.

        For shutdown, when ``close()`` gives up or the worker stops: intake closes too, and
        ``wait_settled`` callers wake. Idempotent (a later call returns 0).
        """
        with self._settled:
            count = self._pending
            self._dropped_shutdown += count
            self._resolved += count
            self._pending = 0
            self._full = deque()
            self._entries = []
            self._capacity = 0
            self._sealed = True
            self._settled.notify_all()
            return count

    # --- Callers of flush() and close() --------------------------------------------------------

    def close_intake(self) -> None:
        """From now on ``put`` drops (counted as dropped, reason: closed)."""
        with self._lock:
            self._capacity = 0
        self.wake.set()

    def request_flush(self) -> int:
        """Ask the worker to write everything enqueued so far; return that flush target."""
        with self._lock:
            target = self._resolved + self._pending
            self._flush_upto = max(self._flush_upto, target)
        self.wake.set()
        return target

    def wait_settled(self, target: int, deadline: float) -> bool:
        """Wait until ``target`` events are resolved or ``deadline`` (monotonic) passes.

        True when they were resolved by writing (or failing) them, False on timeout or when
        shutdown dropped them.
        """
        with self._settled:
            while self._resolved < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._settled.wait(remaining)
            return self._dropped_shutdown == 0

    def snapshot(self) -> ClientStats:
        """All counters, read together under the lock."""
        with self._lock:
            return ClientStats(
                accepted=self._accepted,
                written=self._written,
                dropped=self._dropped_full + self._dropped_closed + self._dropped_shutdown,
                failed=self._failed,
                retried=self._retried,
                batches=self._batches,
                queue_depth=self._pending,
                last_error=self._last_error,
            )


class LocalIntake:
    """The intake of a tracker with no database: every accepted event is final at once.

    A disabled client discards events (``keep`` is None); a recording one passes each to
    ``keep``, called under the lock so that the order kept is the order of ``put``. Events
    are counted as written when accepted and as dropped once the tracker is closed.
    """

    __slots__ = ("_accepted", "_dropped", "_keep", "_lock", "_open")

    def __init__(self, keep: Callable[[AnalyticsEvent, Stamp], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._keep = keep
        self._open = True
        self._accepted = 0
        self._dropped = 0

    def put(self, event: AnalyticsEvent, stamp: Stamp) -> bool:
        """Keep (or discard) the event; False, counted as dropped, after ``close_intake()``."""
        with self._lock:
            self._accepted += 1
            if not self._open:
                self._dropped += 1
                return False
            if self._keep is not None:
                self._keep(event, stamp)
            return True

    def put_all(self, events: Sequence[AnalyticsEvent], stamps: Sequence[Stamp]) -> bool:
        """Keep every event, or none (counting nothing) after ``close_intake()``."""
        with self._lock:
            if not self._open:
                return False
            self._accepted += len(events)
            if self._keep is not None:
                for event, stamp in zip(events, stamps, strict=True):
                    self._keep(event, stamp)
            return True

    def close_intake(self) -> None:
        """From now on ``put`` drops."""
        with self._lock:
            self._open = False

    def snapshot(self) -> ClientStats:
        """The counters, consistent with each other."""
        with self._lock:
            return ClientStats(
                accepted=self._accepted,
                written=self._accepted - self._dropped,
                dropped=self._dropped,
                failed=0,
                retried=0,
                batches=0,
                queue_depth=0,
                last_error=None,
            )
