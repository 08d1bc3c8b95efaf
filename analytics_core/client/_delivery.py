"""The delivery policy: what to do when writing a batch fails, decided without threads.

``Delivery.deliver(batch)`` writes a batch's rows through a connection and settles the
outcome in the ledger (the client's ``EventQueue``). A failed attempt is classified by
SQLSTATE (see ``_sqlstate``):

- transient or persistent: the same rows are retried after a capped, jittered backoff (capped
  at ``RECONNECT_CAP_S``, half a second, while the database cannot be reached at all, so
  that writing resumes soon after it comes back; at ``max_backoff`` otherwise). If
  the rows had reached the server, the connection may have died after it committed, so they
  are first looked up (``present``) and only those not in the table are written again: none
  is written twice.
- duplicate (a unique violation): some rows may be in the table already; they are looked up
  the same way. If none of them is, the violation was not about our event ids and counts as
  a data error.
- data: the batch is split in halves until each bad row stands alone; it is counted as
  failed and passed to ``on_error``, and only it is lost.

A look-up that fails, whatever its error, is asked again after the same backoff: its rows may
be in the table, so they are never failed on a guess. If delivery gives up on them (the
client's ``close()`` timed out), they stay pending and a warning says they may be written.

Starts no thread and owns no lock: it runs on the caller's thread (the client's writer
thread) and blocks while the connection works and while ``pause`` waits between retries.
Tests drive it with a fake connection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from analytics_core.client._backoff import Backoff
from analytics_core.client._encoder import Batch, Row, event_id_of, event_of
from analytics_core.client._log import Throttle, logger
from analytics_core.client._sqlstate import Failure, classify, describe, unreachable
from analytics_core.events import AnalyticsEvent
from analytics_core.tracker import OnError

__all__ = ["Connection", "Delivery", "Ledger"]


class Connection(Protocol):
    """What delivery needs of a connection (``EventsConnection`` in the client)."""

    def copy(self, rows: Sequence[Row], before_wait: Callable[[], None] | None = None) -> None:
        """Write ``rows`` in one transaction; call ``before_wait`` once the data is sent.

        A failure before ``before_wait`` was called must mean that nothing was committed.
        """
        ...

    def present(self, rows: Sequence[Row]) -> set[bytes]:
        """The event ids (``event_id_of``) among ``rows`` already in the table."""
        ...

    def recycle_if_unusable(self) -> None:
        """Drop the connection unless it is idle and healthy."""
        ...

    def discard(self) -> None:
        """Drop the connection; the next call opens a new one."""
        ...


class Ledger(Protocol):
    """Where delivery records outcomes (``EventQueue`` in the client)."""

    def note_retry(self, error: str) -> None:
        """Count one retried attempt; ``error`` is the latest error."""
        ...

    def note_error(self, error: str | None) -> None:
        """Set the last error: rows rejected, or None once a batch is resolved without one."""
        ...

    def settle(self, *, written: int, failed: int, batches: int) -> None:
        """Record the outcome of one batch."""
        ...


@dataclass(slots=True)
class _Part:
    """Rows of a batch still to write, by position; a whole batch to begin with."""

    indices: list[int]
    # Some of these rows may already be in the table: look them up before writing.
    check: bool = False
    # A unique violation seen writing these rows; if none of them turns out to be present,
    # the violation was not about our event ids and counts as a data error.
    duplicate: Exception | None = None


@dataclass(slots=True)
class _Tally:
    """The outcome of one batch, settled into the ledger when it is done."""

    written: int = 0
    copies: int = 0
    failures: list[tuple[AnalyticsEvent, Exception]] = field(default_factory=list)


class Delivery:
    """Writes batches through ``connection`` and settles each in ``ledger``.

    - ``on_error``: called with the events of each distinct rejection and its exception;
      what it raises is logged and ignored.
    - ``max_backoff``: the cap of the pause between retries, in seconds (while the database
      cannot be reached, the lower of it and ``RECONNECT_CAP_S``).
    - ``max_queue_size``: quoted in the retry warning (events keep queueing up to it).
    - ``pause(delay)``: waits before a retry, at most ``delay`` seconds (it may wait less,
      e.g. while the client closes); returns False to give up the batch.
    - ``aborted()``: True when delivery must stop between attempts.

    Not thread-safe: one thread delivers.
    """

    def __init__(
        self,
        connection: Connection,
        ledger: Ledger,
        *,
        on_error: OnError | None,
        max_backoff: float,
        max_queue_size: int,
        pause: Callable[[float], bool],
        aborted: Callable[[], bool],
    ) -> None:
        self._connection = connection
        self._ledger = ledger
        self._on_error = on_error
        self._max_queue_size = max_queue_size
        self._pause = pause
        self._aborted = aborted
        self._backoff = Backoff(max_backoff)
        self._retry_warnings = Throttle()
        self._failure_warnings = Throttle()
        self._failures_unreported = 0

    def deliver(self, batch: Batch, release: Callable[[], None] | None = None) -> None:
        """Write ``batch``, retrying and splitting as needed; settle it in the ledger.

        Returns once every row is written or failed (with ``batch.rejected``, which count as
        failed at once), or when ``pause`` or ``aborted()`` gives up: rows not yet resolved
        then stay pending in the ledger. A resolved batch sets the ledger's last error to
        that of its last rejected row, or None. ``release`` is passed to each COPY as its
        ``before_wait`` and called once more when the attempts are over, before failures
        are reported. Raises only what ``pause``, ``aborted`` or the ledger raise.
        """
        rows = batch.rows
        tally = _Tally(failures=list(batch.rejected))
        work = [_Part(list(range(len(rows))))] if rows else []
        while work and not self._aborted():
            part = work[-1]
            if part.check:
                try:
                    self._drop_present(rows, part, tally)
                except Exception as exc:
                    if not self._look_up_failed(exc):
                        break
                    continue
                if not part.indices:
                    work.pop()
                    continue
                if part.duplicate is not None:
                    # A unique violation, yet none of these rows is in the table: it was not
                    # about our event ids, so some row is bad.
                    self._split(batch, work, part.duplicate, tally)
                    continue
            sending = _Sending(release)
            try:
                self._connection.copy(
                    rows if len(part.indices) == len(rows) else _pick(rows, part),
                    before_wait=sending,
                )
            except Exception as exc:
                if not self._handle(batch, work, exc, tally, sent=sending.sent):
                    break
                continue
            work.pop()
            tally.written += len(part.indices)
            tally.copies += 1
            self._recovered()
        # Whoever waits for this batch to be on the wire need not wait any longer.
        if release is not None:
            release()
        in_doubt = sum(len(part.indices) for part in work if part.check)
        if in_doubt:
            logger.warning(
                "analytics-core: gave up on %d events whose commit was not acknowledged; they "
                "may be in the table although they will count as dropped",
                in_doubt,
            )
        if not work:
            # Resolved: the last error now tells of this batch's rejections, or of none (an
            # outage's error, kept while retrying, is not current any more).
            self._ledger.note_error(describe(tally.failures[-1][1]) if tally.failures else None)
        if tally.failures:
            self._report_failures(tally.failures)
        self._ledger.settle(written=tally.written, failed=len(tally.failures), batches=tally.copies)

    def warn_unreported_failures(self) -> None:
        """Log the rejections a throttled warning has not mentioned yet (at shutdown)."""
        if self._failures_unreported:
            logger.warning(
                "analytics-core: %d events rejected by the database since last warning",
                self._failures_unreported,
            )

    def _drop_present(self, rows: list[Row], part: _Part, tally: _Tally) -> None:
        """Count the part's rows already in the table as written, and take them out of it.

        Keeps ``part.duplicate`` only when none of the rows was present. Raises what the
        look-up raises, leaving the part as it was (still to check).
        """
        present = self._connection.present(_pick(rows, part))
        part.check = False
        if present:
            kept = [i for i in part.indices if event_id_of(rows[i]) not in present]
            logger.info(
                "analytics-core: %d of %d events of an in-doubt batch were already written; "
                "writing the other %d",
                len(part.indices) - len(kept),
                len(part.indices),
                len(kept),
            )
            tally.written += len(part.indices) - len(kept)
            part.indices = kept
            part.duplicate = None

    def _handle(
        self, batch: Batch, work: list[_Part], exc: Exception, tally: _Tally, *, sent: bool
    ) -> bool:
        """Decide what a failed attempt means for ``work[-1]``; False to stop (gave up).

        ``sent``: the attempt's rows reached the server (its ``before_wait`` ran).
        """
        part = work[-1]
        kind = classify(exc)
        if kind is Failure.DUPLICATE:
            self._connection.recycle_if_unusable()
            part.check = True
            part.duplicate = exc
            return True
        if kind is Failure.DATA:
            self._connection.recycle_if_unusable()
            self._ledger.note_error(describe(exc))
            self._split(batch, work, exc, tally)
            return True
        # Once the rows were sent, the connection may have died after the server committed:
        # look before writing them again. A COPY that failed before cannot have committed.
        self._connection.discard()
        part.check = sent
        return self._pause_before_retry(exc, kind)

    def _look_up_failed(self, exc: Exception) -> bool:
        """The look-up of in-doubt rows failed: ask again after a pause; False to stop.

        Whatever the error (a lost connection, a permission, even a bug of ours), the rows
        stay in doubt: they may be in the table, so they are never split, failed or written
        again on a guess.
        """
        self._connection.discard()
        kind = classify(exc)
        return self._pause_before_retry(
            exc,
            Failure.TRANSIENT if kind is Failure.TRANSIENT else Failure.PERSISTENT,
            "looking up which events of an unacknowledged commit were written",
        )

    @staticmethod
    def _split(batch: Batch, work: list[_Part], exc: Exception, tally: _Tally) -> None:
        """Replace ``work[-1]`` by its two halves, or fail it if it is a single row."""
        part = work.pop()
        if len(part.indices) == 1:
            tally.failures.append((event_of(batch.rows[part.indices[0]]), exc))
            return
        middle = len(part.indices) // 2
        # Last in, first out: the first half is written first.
        work.append(_Part(part.indices[middle:]))
        work.append(_Part(part.indices[:middle]))

    def _pause_before_retry(
        self, exc: Exception, kind: Failure, doing: str = "writing events"
    ) -> bool:
        if self._aborted():
            # The closing client gave up and shut the connection: that error is its own
            # doing, and the one before it (kept in last_error) tells the operator why.
            return False
        error = describe(exc)
        self._ledger.note_retry(error)
        delay = self._backoff.next_delay(reconnecting=unreachable(exc))
        if self._retry_warnings.ready():
            log = logger.error if kind is Failure.PERSISTENT else logger.warning
            log(
                "analytics-core: %s failed (%s); retry %d in %.2f s. Events keep "
                "queueing up to max_queue_size=%d.%s",
                doing,
                error,
                self._backoff.failures,
                delay,
                self._max_queue_size,
                " This is not a transient error: check the schema, permissions and DSN."
                if kind is Failure.PERSISTENT
                else "",
            )
        return self._pause(delay)

    def _recovered(self) -> None:
        if self._backoff.failures:
            logger.info(
                "analytics-core: writing events again after %d retries", self._backoff.failures
            )
            self._backoff.reset()

    def _report_failures(self, failures: list[tuple[AnalyticsEvent, Exception]]) -> None:
        self._failures_unreported += len(failures)
        if self._failure_warnings.ready():
            logger.warning(
                "analytics-core: %d events rejected by the database since last warning, not "
                "written (latest: %s); they are counted in stats.failed and passed to on_error",
                self._failures_unreported,
                describe(failures[-1][1]),
            )
            self._failures_unreported = 0
        on_error = self._on_error
        if on_error is None:
            return
        # One call per distinct error: rows isolated by splitting each carry their own.
        groups: dict[int, tuple[Exception, list[AnalyticsEvent]]] = {}
        for event, exc in failures:
            groups.setdefault(id(exc), (exc, []))[1].append(event)
        for exc, events in groups.values():
            try:
                on_error(events, exc)
            except Exception:
                logger.exception("analytics-core: the on_error callback raised; ignored")


class _Sending:
    """The ``before_wait`` of one COPY: notes that its rows reached the server, then releases."""

    __slots__ = ("_release", "sent")

    def __init__(self, release: Callable[[], None] | None) -> None:
        self._release = release
        self.sent = False

    def __call__(self) -> None:
        self.sent = True
        if self._release is not None:
            self._release()


def _pick(rows: list[Row], part: _Part) -> list[Row]:
    return [rows[i] for i in part.indices]
