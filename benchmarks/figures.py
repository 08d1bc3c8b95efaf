"""Summaries of repeated measurements: the spread of a ratio, latency percentiles, CPU time."""

from __future__ import annotations

import math
import os
import resource
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "PERCENTILES",
    "Percentiles",
    "Spread",
    "cpu_seconds",
    "percentiles",
    "thread_cpu_seconds",
]

#: The latency percentiles reported, as fractions; ``max`` is reported besides.
PERCENTILES: Final = (0.50, 0.90, 0.99, 0.999)


@dataclass(frozen=True, slots=True)
class Spread:
    """Median, min and max of a figure measured once per repetition."""

    median: float
    low: float
    high: float
    samples: tuple[float, ...]

    @classmethod
    def of(cls, samples: Sequence[float]) -> Spread:
        """The spread of ``samples``; ValueError when there are none."""
        if not samples:
            raise ValueError("a spread needs at least one sample")
        return cls(statistics.median(samples), min(samples), max(samples), tuple(samples))

    def scaled(self, factor: float) -> Spread:
        """The same spread in another unit (every sample times ``factor``)."""
        return Spread.of([sample * factor for sample in self.samples])


@dataclass(frozen=True, slots=True)
class Percentiles:
    """Latency percentiles in nanoseconds (nearest rank), and the maximum."""

    values: tuple[int, ...]
    maximum: int
    count: int

    def at(self, fraction: float) -> int:
        """The percentile for one of ``PERCENTILES``."""
        return self.values[PERCENTILES.index(fraction)]


def percentiles(samples: Sequence[int]) -> Percentiles:
    """Nearest-rank percentiles of ``samples``: the smallest value with at least that share
    of samples at or below it. Sorts a copy; ValueError when there are no samples."""
    if not samples:
        raise ValueError("percentiles need at least one sample")
    ordered = sorted(samples)
    count = len(ordered)
    values = tuple(ordered[max(0, math.ceil(p * count) - 1)] for p in PERCENTILES)
    return Percentiles(values, ordered[-1], count)


def cpu_seconds() -> float:
    """User plus system CPU time of this process so far, all threads included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def thread_cpu_seconds(native_id: int | None) -> float | None:
    """CPU time (user plus system) of one thread of this process, from ``/proc``; None where
    there is no such file (not Linux, or the thread has ended). Resolution: one clock tick."""
    if native_id is None:
        return None
    try:
        with open(f"/proc/self/task/{native_id}/stat", encoding="ascii") as stat:
            # The command name (field 2) may hold spaces; the fields after it do not.
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
