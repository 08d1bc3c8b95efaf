"""Ingest throughput: the client (C) against a bare binary COPY (A) and executemany (B).

All three arms write the same events (same timestamps, types, users and payloads) into the
same schema, in batches of the same size, one transaction per batch:

- **A, the ceiling**: psycopg's binary COPY of tuples built before the clock starts, the
  JSONB documents already encoded, one COPY per batch on an autocommit connection (each
  COPY commits). Nothing is left to do per row but psycopg's own encoding.
- **B, the common alternative**: ``cursor.executemany`` of an INSERT with the same tuples
  (JSON as text), committed per batch. psycopg pipelines it.
- **C, analytics-core**: a producer thread calls ``track()`` with each pre-built event model
  and its timestamp; the clock stops when ``close()`` returns, everything written. The
  client serialises each event, stamps its id and writes it by binary COPY.

Every arm runs with an empty table (``TRUNCATE``, then ``CHECKPOINT`` so no arm pays for the
previous one's dirty pages) and ends with ``count(*)`` checked. A warm-up round comes first;
each measured round runs the three arms in a rotated order (A B C, B C A, C A B, ...), and a
round's ratios compare arms of that round only.
"""

from __future__ import annotations

import functools
import gc
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import psycopg
from psycopg import sql

from analytics_core import AnalyticsClient, ClientStats
from analytics_core.events import AnalyticsEvent, event_payload_json, new_event_id
from analytics_core.sample import sample_events
from analytics_core.schema import EVENT_COPY_COLUMNS, EVENTS_TABLE
from benchmarks.database import reset_events
from benchmarks.figures import Spread, cpu_seconds, thread_cpu_seconds
from benchmarks.settings import Settings

__all__ = [
    "ARMS",
    "TARGET_CPU_OVER_COPY",
    "TARGET_OVER_COPY",
    "TARGET_OVER_INSERT",
    "ArmRun",
    "IngestResult",
    "IngestRound",
    "run",
]

#: C's throughput over A's must be at least this (in every round), and over B's at least this.
TARGET_OVER_COPY: Final = 0.9
TARGET_OVER_INSERT: Final = 2.5
#: C's CPU time per event over A's must be at most this, in every round (issue 14).
TARGET_CPU_OVER_COPY: Final = 2.0
#: Arm letters and what they are, in the report's order.
ARMS: Final = {
    "A": "psycopg binary COPY of pre-built tuples (ceiling)",
    "B": "psycopg executemany INSERT of the same tuples",
    "C": "analytics-core track() until close()",
}
#: The one service of every row: a client writes for one service.
SERVICE: Final = "platform"
#: One fixed UTC day: live ingest writes into the current one-day chunk, and so do the arms.
DAY_START: Final = datetime(2024, 6, 3, tzinfo=UTC)
USERS: Final = 2_000
# The client's worker threads are named "analytics-core-<role> (<service>)".
_WORKER_THREADS: Final = ("batcher", "writer")
# JSONB's binary wire format: a version byte, then the JSON text. Sent typed as bytea so
# psycopg passes the bytes through; the server reads binary COPY fields with the column's
# own receive function (jsonb_recv), whatever type the client declared.
_JSONB_VERSION: Final = b"\x01"
_COPY_TYPES: Final = ("timestamptz", "text", "text", "uuid", "bytea", "uuid")
_COLUMNS: Final = sql.SQL(", ").join(sql.Identifier(column) for column in EVENT_COPY_COLUMNS)
_COPY: Final = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
    sql.Identifier(EVENTS_TABLE), _COLUMNS
)
_INSERT: Final = sql.SQL("INSERT INTO {} ({}) VALUES (%s, %s, %s, %s, %s::jsonb, %s)").format(
    sql.Identifier(EVENTS_TABLE), _COLUMNS
)
_COUNT: Final = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(EVENTS_TABLE))

Row = tuple[datetime, str, str, Any, Any, Any]


@dataclass(frozen=True, slots=True)
class ArmRun:
    """One arm, once: wall-clock and CPU seconds of this process (all its threads)."""

    arm: str
    seconds: float
    cpu_seconds: float
    events: int

    @property
    def rate(self) -> float:
        """Events per second."""
        return self.events / self.seconds

    @property
    def cpu_per_1k(self) -> float:
        """CPU seconds of this process per 1000 events."""
        return self.cpu_seconds / self.events * 1000


@dataclass(frozen=True, slots=True)
class IngestRound:
    order: tuple[str, ...]
    runs: tuple[ArmRun, ...]

    def arm(self, letter: str) -> ArmRun:
        return next(run for run in self.runs if run.arm == letter)


@dataclass(frozen=True, slots=True)
class IngestResult:
    events: int
    batch_size: int
    warmup: IngestRound
    rounds: tuple[IngestRound, ...]
    #: C's throughput over A's and over B's, one sample per measured round.
    c_over_a: Spread
    c_over_b: Spread
    #: C's CPU time per event over A's, one sample per measured round.
    cpu_c_over_a: Spread
    #: Per arm: events per second, and CPU seconds per 1000 events.
    rates: dict[str, Spread]
    cpu_per_1k: dict[str, Spread]
    #: Arm C's CPU seconds per 1000 events by thread (producer, batcher, writer), where
    #: the platform reports per-thread CPU time.
    client_threads: dict[str, Spread]
    #: The client's counters after its last run.
    client_stats: ClientStats
    checkpointed: bool


@dataclass(frozen=True, slots=True)
class _Workload:
    tracked: list[tuple[AnalyticsEvent, datetime]]
    copy_batches: list[list[Row]]
    insert_batches: list[list[Row]]
    batch_size: int

    @property
    def events(self) -> int:
        return len(self.tracked)


def _prepare(settings: Settings) -> _Workload:
    samples = list(
        sample_events(
            settings.ingest_events,
            DAY_START,
            DAY_START + timedelta(days=1),
            users=USERS,
            seed=settings.seed,
        )
    )
    copy_rows: list[Row] = []
    insert_rows: list[Row] = []
    for sample in samples:
        event = sample.event
        payload = event_payload_json(event)
        user_id = getattr(event, "user_id", None)
        event_id = new_event_id()
        copy_rows.append(
            (
                sample.timestamp,
                event.event_type,
                SERVICE,
                user_id,
                _JSONB_VERSION + payload.encode(),
                event_id,
            )
        )
        insert_rows.append(
            (sample.timestamp, event.event_type, SERVICE, user_id, payload, event_id)
        )
    size = settings.ingest_batch_size
    return _Workload(
        # sample_events() yields concrete event models, typed as their base class.
        tracked=[(sample.event, sample.timestamp) for sample in samples],
        copy_batches=[copy_rows[i : i + size] for i in range(0, len(copy_rows), size)],
        insert_batches=[insert_rows[i : i + size] for i in range(0, len(insert_rows), size)],
        batch_size=size,
    )


def _copy_arm(url: str, work: _Workload) -> None:
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cursor:
        for batch in work.copy_batches:
            with cursor.copy(_COPY) as copy:
                copy.set_types(list(_COPY_TYPES))
                write_row = copy.write_row
                for row in batch:
                    write_row(row)


def _insert_arm(url: str, work: _Workload) -> None:
    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        for batch in work.insert_batches:
            cursor.executemany(_INSERT, batch)
            conn.commit()


class _ClientArm:
    """Arm C; keeps the counters of its last run and the CPU time of each thread."""

    def __init__(self) -> None:
        self.stats: ClientStats | None = None
        self.thread_cpu: list[dict[str, float]] = []

    def __call__(self, url: str, work: _Workload) -> None:
        client = AnalyticsClient(
            url,
            service=SERVICE,
            batch_size=work.batch_size,
            # Room for every event: a producer this fast outruns any database, and this arm
            # measures how fast the client drains, not how it sheds load.
            max_queue_size=max(work.events, work.batch_size),
        )
        producer_cpu: list[float] = []

        def produce() -> None:
            track = client.track
            for event, timestamp in work.tracked:
                track(event, timestamp=timestamp)
            producer_cpu.append(time.thread_time())

        producer = threading.Thread(target=produce, name="bench-producer")
        producer.start()
        producer.join()
        # Bounded like every wait: far longer than any plausible drain of this many events.
        timeout = max(60.0, work.events / 1_000)
        # flush() then close() is close() with a pause in between, in which the worker
        # threads still exist and their CPU time can be read.
        drained = client.flush(timeout)
        self.thread_cpu.append({"producer (track)": producer_cpu[0], **_worker_cpu()})
        drained = client.close(timeout) and drained
        self.stats = client.stats
        if not drained or self.stats.written != work.events:
            raise RuntimeError(f"the client did not write every event: {self.stats}")


def _worker_cpu() -> dict[str, float]:
    """CPU seconds of the client's worker threads (found by their names; Linux only)."""
    found: dict[str, float] = {}
    for thread in threading.enumerate():
        for role in _WORKER_THREADS:
            if thread.name.startswith(f"analytics-core-{role} "):
                seconds = thread_cpu_seconds(thread.native_id)
                if seconds is not None:
                    found[f"{role} (worker)"] = seconds
    return found


def _timed(arm: str, action: Callable[[], None], events: int) -> ArmRun:
    gc.collect()
    cpu = cpu_seconds()
    start = time.perf_counter()
    action()
    seconds = time.perf_counter() - start
    return ArmRun(arm, seconds, cpu_seconds() - cpu, events)


def _round(
    conn: psycopg.Connection[Any],
    url: str,
    work: _Workload,
    order: Sequence[str],
    arms: dict[str, Callable[[str, _Workload], None]],
) -> tuple[IngestRound, bool]:
    runs = []
    checkpointed = True
    for letter in order:
        checkpointed &= reset_events(conn)
        runs.append(_timed(letter, functools.partial(arms[letter], url, work), work.events))
        row = conn.execute(_COUNT).fetchone()
        count = None if row is None else row[0]
        if count != work.events:
            raise RuntimeError(f"arm {letter} left {count} rows, expected {work.events}")
    return IngestRound(tuple(order), tuple(runs)), checkpointed


def run(url: str, settings: Settings, log: Callable[[str], None]) -> IngestResult:
    """Run the ingest benchmark in the migrated, empty database at ``url``."""
    log(f"ingest: preparing {settings.ingest_events:,} events")
    work = _prepare(settings)
    client_arm = _ClientArm()
    arms: dict[str, Callable[[str, _Workload], None]] = {
        "A": _copy_arm,
        "B": _insert_arm,
        "C": client_arm,
    }
    letters = tuple(ARMS)
    rounds: list[IngestRound] = []
    checkpointed = True
    with psycopg.connect(url, autocommit=True) as conn:
        log("ingest: warm-up round (A B C)")
        warmup, ok = _round(conn, url, work, letters, arms)
        checkpointed &= ok
        for index in range(settings.ingest_rounds):
            shift = index % len(letters)
            order = letters[shift:] + letters[:shift]
            log(f"ingest: round {index + 1}/{settings.ingest_rounds} ({' '.join(order)})")
            measured, ok = _round(conn, url, work, order, arms)
            checkpointed &= ok
            rounds.append(measured)
            log("ingest:   " + ", ".join(f"{run.arm} {run.rate:,.0f}/s" for run in measured.runs))
        reset_events(conn)
    assert client_arm.stats is not None
    measured_threads = client_arm.thread_cpu[1:]  # the first is the warm-up's
    per_1k = 1000 / work.events
    return IngestResult(
        events=work.events,
        batch_size=work.batch_size,
        warmup=warmup,
        rounds=tuple(rounds),
        c_over_a=Spread.of([r.arm("C").rate / r.arm("A").rate for r in rounds]),
        c_over_b=Spread.of([r.arm("C").rate / r.arm("B").rate for r in rounds]),
        cpu_c_over_a=Spread.of([r.arm("C").cpu_per_1k / r.arm("A").cpu_per_1k for r in rounds]),
        rates={arm: Spread.of([r.arm(arm).rate for r in rounds]) for arm in letters},
        cpu_per_1k={arm: Spread.of([r.arm(arm).cpu_per_1k for r in rounds]) for arm in letters},
        client_threads={
            role: Spread.of([run[role] * per_1k for run in measured_threads])
            for role in measured_threads[0]
            if all(role in run for run in measured_threads)
        },
        client_stats=client_arm.stats,
        checkpointed=checkpointed,
    )
