"""How big each benchmark is: the full run the report is made from, and a quick smoke run."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

__all__ = ["FULL", "QUICK", "Settings"]


@dataclass(frozen=True, slots=True)
class Settings:
    """Sizes and repetition counts; the defaults (``FULL``) are the issue's minimums."""

    #: Events per ingest arm, and the one batch size every arm writes with.
    ingest_events: int
    ingest_batch_size: int
    #: Measured rounds after the warm-up round; each round runs every arm once, in a rotated
    #: order (A B C, B C A, C A B, ...).
    ingest_rounds: int
    #: Calls per latency sample (closed loop, and each open-loop load), per repetition.
    latency_calls: int
    latency_repetitions: int
    #: The threaded latency sample with the collector on: producer threads, calls per thread
    #: per repetition, and extra GC-tracked objects kept on the heap meanwhile.
    latency_threads: int
    latency_thread_calls: int
    latency_heap_objects: int
    #: Runs of each migration command.
    migration_runs: int
    #: Raw rows generated for the aggregate comparison, and timed runs of each query.
    aggregate_rows: int
    aggregate_runs: int
    #: Days of data (ending at today's UTC midnight) and distinct users in them.
    aggregate_days: int
    aggregate_users: int
    #: Events per day in the maintain benchmark's databases, and its timed runs.
    maintain_events_per_day: int
    maintain_runs: int
    #: The peers benchmark: rounds (each runs every client once, in rotated order); calls per
    #: call-cost sample; calls of the 1,000/s open loop (the 10,000/s one makes 4x as many);
    #: events of the delivery sample; how long the outage's destination is down, in ms; and
    #: events queued for the collector sample.
    peer_rounds: int
    peer_calls: int
    peer_open_calls: int
    peer_events: int
    peer_outage_ms: int
    peer_gc_events: int
    #: Events per arm of the HTTP collector benchmark, and its measured rounds.
    collector_events: int = 50_000
    collector_rounds: int = 3
    #: Fixed seed of every generated data set.
    seed: int = 20240603

    def scaled(self, **changes: int) -> Settings:
        """A copy with some sizes changed (the command line's overrides)."""
        return replace(self, **changes)


FULL: Final = Settings(
    ingest_events=200_000,
    ingest_batch_size=1_000,
    ingest_rounds=3,
    latency_calls=100_000,
    latency_repetitions=2,
    latency_threads=16,
    latency_thread_calls=20_000,
    latency_heap_objects=1_000_000,
    migration_runs=3,
    aggregate_rows=5_000_000,
    aggregate_runs=5,
    aggregate_days=90,
    aggregate_users=2_000,
    maintain_events_per_day=20_000,
    maintain_runs=5,
    peer_rounds=2,
    peer_calls=20_000,
    peer_open_calls=5_000,
    peer_events=30_000,
    peer_outage_ms=5_000,
    peer_gc_events=100_000,
)

#: A smoke run that exercises every code path in seconds; its figures mean little.
QUICK: Final = Settings(
    ingest_events=3_000,
    ingest_batch_size=500,
    ingest_rounds=1,
    latency_calls=3_000,
    latency_repetitions=1,
    latency_threads=4,
    latency_thread_calls=1_000,
    latency_heap_objects=100_000,
    migration_runs=1,
    aggregate_rows=30_000,
    aggregate_runs=1,
    aggregate_days=90,
    aggregate_users=200,
    maintain_events_per_day=300,
    maintain_runs=1,
    collector_events=2_000,
    collector_rounds=1,
    peer_rounds=1,
    peer_calls=500,
    peer_open_calls=200,
    peer_events=1_000,
    peer_outage_ms=500,
    peer_gc_events=2_000,
)
