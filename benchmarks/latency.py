"""What ``track()`` costs its caller, against an enqueue on a ``queue.SimpleQueue``.

The baseline does the least any in-process event pipe can do: stamp ``time.time_ns()`` and
put ``(event, stamp)`` on a ``SimpleQueue`` (C code, no consumer). The client runs with its
default batch size and room for every call (``max_queue_size``, so nothing is dropped)
against a live database: its worker threads batch and write while the calls are measured,
sharing the GIL and the CPUs with the caller. That is the realistic case.

- **Closed loop**: back-to-back calls, each timed with ``perf_counter_ns``. Its calls per
  second are the *maximum track rate*. The time until ``flush()`` has written them all gives
  the client's *sustained rate*, what it can write end to end.
- **Open loop** at 50 % and 90 % of the maximum track rate: call *i* is due at
  ``start + i / rate``; the loop spins until it is due, calls, and records completion minus
  due time. A call that starts late because earlier ones ran long counts its wait, so
  queueing shows (no coordinated omission). The baseline runs the same schedule.
- **Open loop at 50 % of the sustained rate**, as context: a load the client can keep up
  with, where the worker is busy only part of the time.

The client is flushed before every sample, so each starts with an idle worker; each
repetition alternates which side goes first. The collector is kept out of timed loops, as
``timeit`` does (see ``_no_gc``).
"""

from __future__ import annotations

import gc
import inspect
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from queue import SimpleQueue
from typing import Final

from analytics_core import AnalyticsClient, ClientStats
from analytics_core.events import AnalyticsEvent
from analytics_core.sample import sample_events
from benchmarks.figures import Percentiles, Spread, percentiles
from benchmarks.settings import Settings

__all__ = ["LOADS", "TARGET_P50_NS", "TARGET_P99_NS", "LatencyResult", "LoopResult", "run"]

#: At ``LOADS[0]`` (50 %) of the maximum rate, track()'s p50 and p99 must be within these.
TARGET_P50_NS: Final = 1_000
TARGET_P99_NS: Final = 5_000
#: Open-loop loads, as fractions of the client's maximum track() rate.
LOADS: Final = (0.5, 0.9)
#: The context load, as a fraction of the client's sustained rate, and its duration.
SUSTAINED_LOAD: Final = 0.5
SUSTAINED_SECONDS: Final = 2.0
SERVICE: Final = "platform"
#: The client's own default, which is what applications run with.
BATCH_SIZE: Final[int] = inspect.signature(AnalyticsClient).parameters["batch_size"].default
_POOL_SIZE: Final = 10_000
# Long enough for the worker to write a big backlog on a slow machine; still bounded.
_FLUSH_TIMEOUT_S: Final = 300.0

Call = Callable[[AnalyticsEvent], object]


@dataclass(frozen=True, slots=True)
class LoopResult:
    """Latencies of one loop shape, both sides, all repetitions pooled."""

    label: str
    #: Calls per second: achieved by the client (closed loop) or scheduled (open loop).
    rate: float
    baseline: Percentiles
    client: Percentiles

    def ratio(self, fraction: float) -> float:
        """Client over baseline at one of ``PERCENTILES``."""
        return self.client.at(fraction) / max(1, self.baseline.at(fraction))

    @property
    def max_ratio(self) -> float:
        return self.client.maximum / max(1, self.baseline.maximum)


@dataclass(frozen=True, slots=True)
class LatencyResult:
    calls: int
    repetitions: int
    batch_size: int
    #: Closed-loop calls per second, one sample per repetition.
    client_max_rate: Spread
    baseline_max_rate: Spread
    #: Events per second the client tracked and wrote, closed loop plus flush.
    sustained_rate: Spread
    closed: LoopResult
    #: The open loops at ``LOADS`` of the client's maximum rate, in that order.
    loaded: tuple[LoopResult, ...]
    #: The open loop at ``SUSTAINED_LOAD`` of the sustained rate.
    sustained: LoopResult
    client_stats: ClientStats

    @property
    def loops(self) -> tuple[LoopResult, ...]:
        return (self.closed, *self.loaded, self.sustained)


def _baseline() -> Call:
    """A fresh baseline enqueue: stamp the time, put ``(event, stamp)`` on a SimpleQueue."""
    put = SimpleQueue[tuple[AnalyticsEvent, int]]().put
    time_ns = time.time_ns

    def enqueue(event: AnalyticsEvent) -> None:
        put((event, time_ns()))

    return enqueue


@contextmanager
def _no_gc() -> Iterator[None]:
    """Collect first, then keep the collector out of the timed loop, as ``timeit`` does.

    Both sides keep every event they were given (nothing consumes the baseline's queue; the
    client's backlog grows faster than it writes), so full collections would scan a heap
    growing by the call and land in whichever sample happened to trigger them.
    """
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _closed_loop(call: Call, pool: Sequence[AnalyticsEvent], calls: int) -> tuple[list[int], int]:
    """Back-to-back calls, each timed; returns the samples and the loop's wall-clock ns."""
    perf = time.perf_counter_ns
    size = len(pool)
    samples = [0] * calls
    with _no_gc():
        start = perf()
        for i in range(calls):
            event = pool[i % size]
            began = perf()
            call(event)
            samples[i] = perf() - began
        elapsed = perf() - start
    return samples, elapsed


def _open_loop(call: Call, pool: Sequence[AnalyticsEvent], calls: int, rate: float) -> list[int]:
    """Call *i* is due at ``start + i / rate``; spin until due, call, record completion minus
    due time. Spinning holds the GIL, like a caller busy with CPU work between events."""
    perf = time.perf_counter_ns
    size = len(pool)
    interval = 1e9 / rate
    samples = [0] * calls
    with _no_gc():
        start = perf() + 1_000_000
        for i in range(calls):
            event = pool[i % size]
            due = start + int(i * interval)
            while perf() < due:
                pass
            call(event)
            samples[i] = perf() - due
    return samples


def _pool(settings: Settings) -> list[AnalyticsEvent]:
    start = datetime(2024, 6, 3, tzinfo=UTC)
    # sample_events() yields concrete event models, typed as their base class.
    return [
        sample.event
        for sample in sample_events(
            _POOL_SIZE, start, start + timedelta(days=1), users=2_000, seed=settings.seed
        )
    ]


def run(url: str, settings: Settings, log: Callable[[str], None]) -> LatencyResult:
    """Run the latency benchmark against the migrated database at ``url``."""
    pool = _pool(settings)
    calls = settings.latency_calls
    reps = settings.latency_repetitions
    # Every call of every client sample fits, so none is dropped: the closed loop, each
    # load, and the sustained-rate context (at most ``calls`` calls each).
    capacity = calls * reps * (1 + len(LOADS) + 1)
    client = AnalyticsClient(url, service=SERVICE, batch_size=BATCH_SIZE, max_queue_size=capacity)
    track: Call = client.track

    def settle() -> float:
        """Wait until the worker has written everything; the seconds it took."""
        began = time.perf_counter()
        if not client.flush(_FLUSH_TIMEOUT_S):
            raise RuntimeError(f"the client did not drain in {_FLUSH_TIMEOUT_S:.0f} s")
        return time.perf_counter() - began

    def sides(rep: int) -> tuple[str, str]:
        return ("baseline", "client") if rep % 2 == 0 else ("client", "baseline")

    try:
        closed: dict[str, list[int]] = {"baseline": [], "client": []}
        rates: dict[str, list[float]] = {"baseline": [], "client": []}
        sustained_rates: list[float] = []
        for rep in range(reps):
            log(f"latency: closed loop, repetition {rep + 1}/{reps}")
            for side in sides(rep):
                settle()
                samples, elapsed_ns = _closed_loop(
                    track if side == "client" else _baseline(), pool, calls
                )
                closed[side] += samples
                rates[side].append(calls / (elapsed_ns / 1e9))
                if side == "client":
                    sustained_rates.append(calls / (elapsed_ns / 1e9 + settle()))
        max_rate = Spread.of(rates["client"])
        sustained_rate = Spread.of(sustained_rates)
        log(
            f"latency:   maximum track rate {max_rate.median:,.0f}/s, "
            f"sustained {sustained_rate.median:,.0f}/s"
        )

        def open_loop(label: str, rate: float, count: int) -> LoopResult:
            pooled: dict[str, list[int]] = {"baseline": [], "client": []}
            for rep in range(reps):
                log(f"latency: {label}, repetition {rep + 1}/{reps}")
                for side in sides(rep):
                    settle()
                    call = track if side == "client" else _baseline()
                    pooled[side] += _open_loop(call, pool, count, rate)
            return LoopResult(
                label, rate, percentiles(pooled["baseline"]), percentiles(pooled["client"])
            )

        loaded = tuple(
            open_loop(f"open loop, {load:.0%} of maximum", load * max_rate.median, calls)
            for load in LOADS
        )
        context_rate = SUSTAINED_LOAD * sustained_rate.median
        sustained = open_loop(
            f"open loop, {SUSTAINED_LOAD:.0%} of sustained",
            context_rate,
            max(1, min(calls, int(context_rate * SUSTAINED_SECONDS))),
        )
        settle()
    finally:
        client.close(_FLUSH_TIMEOUT_S)
    closed_result = LoopResult(
        "closed loop",
        max_rate.median,
        percentiles(closed["baseline"]),
        percentiles(closed["client"]),
    )
    result = LatencyResult(
        calls=calls,
        repetitions=reps,
        batch_size=BATCH_SIZE,
        client_max_rate=max_rate,
        baseline_max_rate=Spread.of(rates["baseline"]),
        sustained_rate=sustained_rate,
        closed=closed_result,
        loaded=loaded,
        sustained=sustained,
        client_stats=client.stats,
    )
    for loop in result.loops:
        log(
            f"latency:   {loop.label}: p50 {loop.client.at(0.5):,} ns (baseline "
            f"{loop.baseline.at(0.5):,}), p99 {loop.client.at(0.99):,} ns (baseline "
            f"{loop.baseline.at(0.99):,})"
        )
    return result
