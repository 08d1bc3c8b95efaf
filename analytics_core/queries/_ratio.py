"""Rates and means that are undefined, not zero, when there is nothing to divide by."""

from __future__ import annotations

__all__ = ["ratio"]


def ratio(part: float, whole: float) -> float | None:
    """``part / whole``, or None when ``whole`` is 0: the error rate of no requests, the mean
    duration of no timed tasks."""
    return None if whole == 0 else part / whole
