"""Argument checks shared by the client, its configuration, the test doubles, the queries
and the events: one rule and one message per kind of argument.

Each check returns the value in the form the caller keeps and raises ``TypeError`` for a
value of the wrong type and ``ValueError`` for one out of range, naming the argument, the
value and what to pass instead.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

__all__ = ["aware_datetime", "bounded_int", "positive_int", "seconds"]


def aware_datetime(value: object, name: str) -> datetime:
    """``value`` converted to UTC if it is a timezone-aware datetime.

    Naive datetimes are refused rather than assumed to be UTC: a local wall-clock time taken
    for UTC silently shifts every answer by the machine's offset.
    """
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a timezone-aware datetime, not {type(value).__name__}")
    if value.utcoffset() is None:
        raise ValueError(
            f"{name} is a naive datetime ({value.isoformat()}): pass a timezone-aware one "
            "such as datetime.now(UTC)"
        )
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def seconds(value: object, name: str, *, allow_zero: bool = True) -> float:
    """``value`` as a float if it is a finite number of seconds, >= 0 (or > 0).

    None (wait forever) is refused on purpose: every wait in analytics-core is bounded.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number of seconds {bound}, got {value!r}")
    return number


def bounded_int(value: object, name: str, *, minimum: int, maximum: int) -> int:
    """``value`` if it is an int (not a bool) within ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not minimum <= value <= maximum:
        raise ValueError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def positive_int(value: object, name: str) -> int:
    """``value`` if it is a whole number of at least 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
    return value
