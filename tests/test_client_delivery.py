"""The delivery policy on its own: retry, split, in-doubt look-up, without threads or a server.

A ``FakeConnection`` keeps an events table in memory and fails on cue, the way PostgreSQL
does: a COPY is all or nothing, a duplicate ``event_id`` is a unique violation (23505), a
lost connection has no SQLSTATE. The ledger is the client's real ``EventQueue``, so what is
asserted is what ``client.stats`` would show.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psycopg
import pytest
from psycopg import errors

from analytics_core.client._backoff import RECONNECT_CAP_S
from analytics_core.client._config import ClientConfig
from analytics_core.client._delivery import Delivery
from analytics_core.client._encoder import Batch, Rejection, Row, event_id_of, row_encoder
from analytics_core.client._queue import EventQueue
from analytics_core.client._worker import Worker
from analytics_core.events import AnalyticsEvent, TaskCreated
from analytics_core.tracker import ClientStats


def lost_connection() -> psycopg.OperationalError:
    return psycopg.OperationalError("server closed the connection unexpectedly")


@dataclass
class FakeConnection:
    """An in-memory events table behind the ``Connection`` protocol, failing on cue."""

    table: dict[bytes, Row] = field(default_factory=dict)
    #: Faults for the next COPYs, in order: the exception, and whether the rows commit first.
    faults: list[tuple[Exception, bool]] = field(default_factory=list)
    #: Errors for the next COPYs raised before any row is sent (connecting failed, say).
    unsent_faults: list[Exception] = field(default_factory=list)
    #: Rows the "server" rejects whenever a COPY contains them, by event id.
    poison: dict[bytes, Exception] = field(default_factory=dict)
    #: Errors for the next look-ups, in order (the look-up itself failing).
    lookup_faults: list[Exception] = field(default_factory=list)
    #: Row counts of every COPY attempted, and of every look-up.
    copies: list[int] = field(default_factory=list)
    lookups: list[int] = field(default_factory=list)
    discards: int = 0
    recycles: int = 0

    def copy(self, rows: Sequence[Row], before_wait: Callable[[], None] | None = None) -> None:
        self.copies.append(len(rows))
        if self.unsent_faults:
            raise self.unsent_faults.pop(0)
        if before_wait is not None:
            before_wait()
        exc, commits = self.faults.pop(0) if self.faults else (None, False)
        if exc is not None and not commits:
            raise exc
        ids = [event_id_of(row) for row in rows]
        for event_id in ids:
            if event_id in self.poison:
                raise self.poison[event_id]
        if any(event_id in self.table for event_id in ids):
            raise errors.UniqueViolation("duplicate key value violates unique constraint")
        self.table.update(zip(ids, rows, strict=True))
        if exc is not None:
            raise exc

    def reject(self, row: Row, exc: Exception) -> None:
        """Make the server refuse, with ``exc``, every COPY that contains ``row``."""
        self.poison[event_id_of(row)] = exc

    def present(self, rows: Sequence[Row]) -> set[bytes]:
        self.lookups.append(len(rows))
        if self.lookup_faults:
            raise self.lookup_faults.pop(0)
        return {event_id_of(row) for row in rows} & self.table.keys()

    def recycle_if_unusable(self) -> None:
        self.recycles += 1

    def discard(self) -> None:
        self.discards += 1


@dataclass
class Run:
    """One delivery set up for a test: its fake connection, ledger and what it called."""

    connection: FakeConnection
    queue: EventQueue
    delivery: Delivery
    pauses: list[float]
    rejected: list[tuple[list[AnalyticsEvent], BaseException]]
    releases: list[None]

    @property
    def stats(self) -> ClientStats:
        return self.queue.snapshot()

    def deliver(self, batch: Batch) -> None:
        self.delivery.deliver(batch, release=lambda: self.releases.append(None))


def setup(
    *,
    max_backoff: float = 10.0,
    keep_retrying: Callable[[], bool] = lambda: True,
    aborted: Callable[[], bool] = lambda: False,
    on_error_raises: bool = False,
) -> Run:
    connection = FakeConnection()
    pauses: list[float] = []
    rejected: list[tuple[list[AnalyticsEvent], BaseException]] = []

    def pause(delay: float) -> bool:
        pauses.append(delay)
        return keep_retrying()

    def on_error(events: Sequence[AnalyticsEvent], exc: BaseException) -> None:
        rejected.append((list(events), exc))
        if on_error_raises:
            raise RuntimeError("the callback is broken")

    queue = EventQueue(max_size=1_000, batch_size=1_000, encode=row_encoder("platform"))
    delivery = Delivery(
        connection,
        queue,
        on_error=on_error,
        max_backoff=max_backoff,
        max_queue_size=1_000,
        pause=pause,
        aborted=aborted,
    )
    return Run(connection, queue, delivery, pauses, rejected, [])


def track(run: Run, count: int) -> tuple[list[TaskCreated], Batch]:
    """``count`` events tracked and taken from the queue, and their batch."""
    events = [
        TaskCreated(task_id=uuid.uuid4(), user_id=uuid.uuid4(), command=f"make {i}")
        for i in range(count)
    ]
    for event in events:
        assert run.queue.put(event, time.time_ns())
    return events, Batch.of(run.queue.take())


def outcome(run: Run) -> tuple[int, int, int, int, int]:
    """(written, failed, retried, batches, queue_depth)."""
    s = run.stats
    return s.written, s.failed, s.retried, s.batches, s.queue_depth


# --- Healthy ----------------------------------------------------------------------------------


def test_a_healthy_batch_is_one_copy() -> None:
    run = setup()
    _, batch = track(run, 10)
    run.deliver(batch)
    assert run.connection.copies == [10]
    assert outcome(run) == (10, 0, 0, 1, 0)
    assert set(run.connection.table) == {event_id_of(row) for row in batch.rows}
    assert (run.connection.lookups, run.pauses, run.rejected) == ([], [], [])
    # Once by the COPY when its data is sent, once when delivery ends.
    assert len(run.releases) == 2


# --- Rows the database rejects ------------------------------------------------------------------


def test_a_poison_row_is_isolated_by_halving_and_costs_only_itself() -> None:
    run = setup()
    events, batch = track(run, 8)
    bad = errors.UntranslatableCharacter("unsupported Unicode escape sequence")
    run.connection.reject(batch.rows[5], bad)
    run.deliver(batch)
    # 8 fails; 0-3 written; 4-7 fails; 4-5 fails; 4 written; 5 fails alone; 6-7 written.
    assert run.connection.copies == [8, 4, 4, 2, 1, 1, 2]
    assert outcome(run) == (7, 1, 0, 3, 0)
    assert run.rejected == [([events[5]], bad)]
    assert (
        run.stats.last_error == "22P05 UntranslatableCharacter: unsupported Unicode escape sequence"
    )
    assert len(run.connection.table) == 7
    assert event_id_of(batch.rows[5]) not in run.connection.table
    assert run.connection.recycles == 4
    assert run.pauses == []


def test_each_distinct_rejection_gets_its_own_on_error_call() -> None:
    run = setup()
    events, batch = track(run, 8)
    first = errors.UntranslatableCharacter("unsupported Unicode escape sequence")
    second = errors.CheckViolation("new row violates check constraint")
    run.connection.reject(batch.rows[1], first)
    run.connection.reject(batch.rows[6], second)
    run.deliver(batch)
    assert outcome(run) == (6, 2, 0, 4, 0)
    assert run.rejected == [([events[1]], first), ([events[6]], second)]


def test_events_that_could_not_be_encoded_fail_without_a_copy() -> None:
    run = setup()
    events, batch = track(run, 3)
    unencodable = ValueError("cannot serialise this event")
    # As the intake records an event it could not turn into a row.
    batch.rows.pop()
    batch.rejected.append(Rejection(events[2], unencodable))
    run.deliver(batch)
    assert run.connection.copies == [2]
    assert outcome(run) == (2, 1, 0, 1, 0)
    assert run.rejected == [([events[2]], unencodable)]


def test_an_on_error_callback_that_raises_is_logged_and_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = setup(on_error_raises=True)
    _, batch = track(run, 4)
    run.connection.reject(batch.rows[0], errors.CheckViolation("check"))
    with caplog.at_level(logging.WARNING, logger="analytics_core"):
        run.deliver(batch)
    assert outcome(run) == (3, 1, 0, 2, 0)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        "analytics-core: the on_error callback raised; ignored"
    ]


# --- A commit the client may not have heard about -----------------------------------------------


def test_a_commit_lost_in_flight_is_looked_up_not_written_twice() -> None:
    run = setup()
    _, batch = track(run, 10)
    run.connection.faults.append((lost_connection(), True))
    run.deliver(batch)
    # The one COPY committed; the look-up finds all 10 rows, so there is no second COPY.
    assert run.connection.copies == [10]
    assert run.connection.lookups == [10]
    assert run.connection.discards == 1
    assert len(run.pauses) == 1
    # Written, but no COPY was seen to commit.
    assert outcome(run) == (10, 0, 1, 0, 0)
    assert len(run.connection.table) == 10


def test_a_connection_lost_before_the_commit_writes_the_rows_again() -> None:
    run = setup()
    _, batch = track(run, 10)
    run.connection.faults.append((lost_connection(), False))
    run.deliver(batch)
    assert run.connection.copies == [10, 10]
    assert run.connection.lookups == [10]
    assert outcome(run) == (10, 0, 1, 1, 0)


@pytest.mark.parametrize(
    "error",
    [
        OverflowError("date value out of range"),  # the bounds' arithmetic, say
        errors.DatetimeFieldOverflow('timestamp out of range: "9.22432e+12"'),  # class 22
        errors.InsufficientPrivilege("permission denied for table analytics_events"),
        lost_connection(),
    ],
)
def test_a_failed_look_up_is_retried_and_never_fails_rows_that_may_be_written(
    error: Exception,
) -> None:
    run = setup()
    _, batch = track(run, 10)
    run.connection.faults.append((lost_connection(), True))  # committed, never acknowledged
    run.connection.lookup_faults.append(error)
    run.deliver(batch)
    # Whatever the look-up's error, its rows stay in doubt: it is asked again, not split.
    assert run.connection.copies == [10]
    assert run.connection.lookups == [10, 10]
    assert outcome(run) == (10, 0, 2, 0, 0)
    assert (run.rejected, len(run.pauses)) == ([], 2)
    assert run.stats.last_error is None


def test_giving_up_on_a_look_up_leaves_its_rows_pending_and_says_they_may_be_written(
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = setup(keep_retrying=lambda: len(run.pauses) < 3)
    _, batch = track(run, 10)
    run.connection.faults.append((lost_connection(), True))
    run.connection.lookup_faults.extend([lost_connection()] * 5)
    with caplog.at_level(logging.WARNING, logger="analytics_core"):
        run.deliver(batch)
    assert run.connection.lookups == [10, 10]
    assert outcome(run) == (0, 0, 3, 0, 10)
    assert run.rejected == []
    assert (
        "analytics-core: gave up on 10 events whose commit was not acknowledged; they may be "
        "in the table although they will count as dropped" in caplog.messages
    )


def test_a_copy_that_never_reached_the_server_is_written_again_without_a_look_up() -> None:
    run = setup()
    _, batch = track(run, 10)
    run.connection.unsent_faults.append(lost_connection())
    run.deliver(batch)
    assert run.connection.copies == [10, 10]
    assert run.connection.lookups == []
    assert outcome(run) == (10, 0, 1, 1, 0)


def test_rows_already_in_the_table_are_skipped_after_a_unique_violation() -> None:
    run = setup()
    _, batch = track(run, 10)
    # An earlier attempt committed four of the rows without the client hearing about it.
    for i in (1, 4, 5, 9):
        run.connection.table[event_id_of(batch.rows[i])] = batch.rows[i]
    run.deliver(batch)
    assert run.connection.copies == [10, 6]
    assert run.connection.lookups == [10]
    assert outcome(run) == (10, 0, 0, 1, 0)
    assert run.pauses == []
    assert len(run.connection.table) == 10


def test_a_unique_violation_not_about_our_event_ids_fails_that_row() -> None:
    run = setup()
    events, batch = track(run, 4)
    other_key = errors.UniqueViolation("duplicate key value violates unique constraint")
    run.connection.reject(batch.rows[3], other_key)
    run.deliver(batch)
    # Each time none of the rows is present, so the violation splits like a data error.
    assert run.connection.copies == [4, 2, 2, 1, 1]
    assert run.connection.lookups == [4, 2, 1]
    assert outcome(run) == (3, 1, 0, 2, 0)
    assert run.rejected == [([events[3]], other_key)]


# --- A database that is away or misconfigured --------------------------------------------------


def test_last_error_tells_of_an_outage_while_it_lasts_and_is_cleared_by_recovery() -> None:
    seen: list[str | None] = []
    run = setup(keep_retrying=lambda: seen.append(run.stats.last_error) or True)
    _, batch = track(run, 10)
    run.connection.faults.extend([(lost_connection(), False)] * 2)
    run.deliver(batch)
    assert seen == ["OperationalError: server closed the connection unexpectedly"] * 2
    assert outcome(run) == (10, 0, 2, 1, 0)
    assert run.stats.last_error is None


def test_last_error_keeps_a_rejection_until_a_batch_is_written_without_one() -> None:
    run = setup()
    _, batch = track(run, 4)
    run.connection.reject(batch.rows[2], errors.CheckViolation("new row violates check"))
    run.deliver(batch)
    assert run.stats.last_error == "23514 CheckViolation: new row violates check"
    _, clean = track(run, 4)
    run.deliver(clean)
    assert outcome(run) == (7, 1, 0, 3, 0)
    assert run.stats.last_error is None


def test_a_persistent_error_is_retried_with_growing_capped_pauses(
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = setup(max_backoff=0.3)
    _, batch = track(run, 5)
    missing = errors.UndefinedTable('relation "analytics_events" does not exist')
    run.connection.faults.extend([(missing, False)] * 5)
    with caplog.at_level(logging.INFO, logger="analytics_core"):
        run.deliver(batch)
    assert run.connection.copies == [5] * 6
    assert run.connection.lookups == [5] * 5
    assert outcome(run) == (5, 0, 5, 1, 0)
    assert run.stats.last_error is None  # written in the end
    # 0.05 s doubling per failure, capped at max_backoff, each jittered to 50-100 %.
    for failures, delay in enumerate(run.pauses):
        ceiling = min(0.3, 0.05 * 2**failures)
        assert ceiling / 2 <= delay <= ceiling
    assert len(run.pauses) == 5
    errors_logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    # Throttled: the first failure is logged, the next four fall in the same period.
    assert len(errors_logged) == 1
    assert "This is not a transient error" in errors_logged[0]
    assert "analytics-core: writing events again after 5 retries" in caplog.messages


@pytest.mark.parametrize(
    "unreachable",
    [
        lost_connection(),
        errors.ConnectionFailure("connection failure"),  # class 08
        errors.CannotConnectNow("the database system is starting up"),  # 57P03
        errors.AdminShutdown("terminating connection due to administrator command"),  # 57P01
    ],
)
def test_a_database_that_cannot_be_reached_is_probed_at_a_short_interval(
    unreachable: Exception,
) -> None:
    # However long the outage, the pauses stop growing at RECONNECT_CAP_S: the first attempt
    # after the database is back comes within that bound, and writes the batch once.
    run = setup(max_backoff=10.0)
    _, batch = track(run, 5)
    run.connection.unsent_faults.extend([unreachable] * 12)
    run.deliver(batch)
    assert len(run.pauses) == 12
    for failures, delay in enumerate(run.pauses):
        ceiling = min(RECONNECT_CAP_S, 0.05 * 2**failures)
        assert ceiling / 2 <= delay <= ceiling
    assert run.connection.copies == [5] * 13
    assert outcome(run) == (5, 0, 12, 1, 0)
    assert len(run.connection.table) == 5


@pytest.mark.parametrize(
    "refusal",
    [
        errors.UndefinedTable('relation "analytics_events" does not exist'),
        errors.TooManyConnections("sorry, too many clients already"),  # 53300: it answers
    ],
)
def test_a_database_that_answers_with_an_error_is_backed_off_up_to_max_backoff(
    refusal: Exception,
) -> None:
    run = setup(max_backoff=10.0)
    _, batch = track(run, 5)
    run.connection.unsent_faults.extend([refusal] * 9)
    run.deliver(batch)
    # The ninth pause is 12.8 s capped at max_backoff, before jitter: far past the reconnect
    # bound.
    assert 5.0 <= run.pauses[-1] <= 10.0
    assert outcome(run) == (5, 0, 9, 1, 0)


def test_giving_up_during_a_pause_leaves_the_rows_pending() -> None:
    run = setup(keep_retrying=lambda: False)
    _, batch = track(run, 5)
    run.connection.faults.append((lost_connection(), False))
    run.deliver(batch)
    assert run.connection.copies == [5]
    assert outcome(run) == (0, 0, 1, 0, 5)
    assert run.connection.table == {}


def test_an_abort_between_attempts_stops_a_batch_being_split() -> None:
    run = setup(aborted=lambda: len(run.connection.copies) >= 2)
    _, batch = track(run, 8)
    run.connection.reject(batch.rows[5], errors.CheckViolation("check"))
    run.deliver(batch)
    # The first half was written; the half with the bad row is left pending.
    assert run.connection.copies == [8, 4]
    assert outcome(run) == (4, 0, 0, 1, 4)
    assert run.rejected == []


# --- A backlog ----------------------------------------------------------------------------------


class FakeEventsConnection(FakeConnection):
    """The fake table with what the worker's threads also call on a connection."""

    def interrupt_if_stuck(self, limit: float) -> bool:
        return False

    def shut(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_backlog_of_full_batches_is_written_in_fewer_copies() -> None:
    # 35 events wait before the worker starts: the three full batches of 10 go out in one
    # COPY (a backlog drains in fewer transactions), the five left when flushed.
    config = ClientConfig.create(
        "",
        service="platform",
        batch_size=10,
        flush_interval=3600.0,
        max_queue_size=100,
        on_error=None,
        shutdown_timeout=1.0,
        connect_timeout=5.0,
        statement_timeout=10.0,
        max_backoff=0.1,
        connect=False,
    )
    queue = EventQueue(100, 10, row_encoder("platform"))
    for i in range(35):
        assert queue.put(
            TaskCreated(task_id=uuid.uuid4(), user_id=uuid.uuid4(), command=f"{i}"), time.time_ns()
        )
    connection = FakeEventsConnection()
    worker = Worker(config, queue, connection)  # type: ignore[arg-type]  # a fake connection
    worker.start()
    try:
        assert worker.flush(time.monotonic() + 10) is True
    finally:
        worker.begin_close()
        assert worker.join(time.monotonic() + 10) is True
    assert connection.copies == [30, 5]
    assert outcome_of(queue) == (35, 0, 0, 2, 0)


def outcome_of(queue: EventQueue) -> tuple[int, int, int, int, int]:
    s = queue.snapshot()
    return s.written, s.failed, s.retried, s.batches, s.queue_depth
