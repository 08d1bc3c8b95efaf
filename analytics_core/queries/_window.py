"""Validated UTC time windows, the one shape of "when" every query takes; their days and hours."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from analytics_core._checks import aware_datetime

__all__ = ["TimeWindow", "days_of", "hours_of"]

# time_bucket()'s default origin (a Monday at midnight UTC). Day and hour buckets start at
# UTC midnights and whole hours from here, as they do from the Unix epoch.
_BUCKET_ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """The half-open interval ``[start, end)``, both ends timezone-aware and held in UTC.

    Raises TypeError for an end that is not a datetime, ValueError for a naive one, or when
    ``start`` is not strictly before ``end`` (an empty or inverted window is a caller's
    mistake, not a question with answer zero). Ends are checked by
    :func:`analytics_core._checks.aware_datetime`, as every datetime argument is.
    """

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        start = aware_datetime(self.start, "start")
        end = aware_datetime(self.end, "end")
        if start >= end:
            raise ValueError(
                f"empty or inverted window: start {start.isoformat()} must be before "
                f"end {end.isoformat()}"
            )
        # Frozen: normalising to UTC goes around __setattr__, once, here.
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    @classmethod
    def days(cls, first: date, last: date) -> TimeWindow:
        """Whole UTC days ``first`` to ``last``, both included.

        Raises ValueError when ``last`` is before ``first`` or either is a datetime.
        """
        for name, value in (("first", first), ("last", last)):
            if isinstance(value, datetime) or not isinstance(value, date):
                raise ValueError(f"{name} must be a date (not a datetime), got {value!r}")
        if last < first:
            raise ValueError(
                f"inverted range: last day {last.isoformat()} is before first day "
                f"{first.isoformat()}"
            )
        return cls(
            datetime.combine(first, time(), UTC),
            datetime.combine(last + timedelta(days=1), time(), UTC),
        )

    @classmethod
    def trailing(cls, length: timedelta, end: datetime) -> TimeWindow:
        """The ``length`` of time that ends at ``end`` (exclusive)."""
        if length <= timedelta(0):
            raise ValueError(f"window length must be positive, got {length}")
        end = aware_datetime(end, "end")
        return cls(end - length, end)

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def covering(self, bucket: timedelta) -> TimeWindow:
        """The smallest window of whole ``bucket``-wide UTC buckets that contains this one.

        This is what an aggregate with that bucket width can answer for: every bucket that
        overlaps the window counts in full.
        """
        start = self.start - (self.start - _BUCKET_ORIGIN) % bucket
        overhang = (self.end - _BUCKET_ORIGIN) % bucket
        end = self.end if overhang == timedelta(0) else self.end - overhang + bucket
        return TimeWindow(start, end)

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def days_of(window: TimeWindow) -> list[date]:
    """Every UTC day ``window`` overlaps, oldest first."""
    first, last = window.start.date(), (window.end - timedelta(days=1)).date()
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def hours_of(window: TimeWindow) -> list[datetime]:
    """The start of every hour of ``window``, which must be whole hours; oldest first."""
    count = int(window.duration / timedelta(hours=1))
    return [window.start + timedelta(hours=offset) for offset in range(count)]
