"""Capped exponential backoff with jitter, for retrying writes against an unwell database."""

from __future__ import annotations

import random
from typing import Final

__all__ = ["Backoff"]

_INITIAL_DELAY_S: Final = 0.05


class Backoff:
    """Delays of 0.05 s doubling per failure up to ``cap``, each jittered to 50-100 %.

    The jitter keeps many clients that lost the same database from reconnecting in step; the
    lower half is kept so that a retry never comes immediately. Not thread-safe: one
    ``Delivery`` owns it.
    """

    def __init__(self, cap: float) -> None:
        self._cap = cap
        self._failures = 0
        self._random = random.Random()

    @property
    def failures(self) -> int:
        """Failures since the last ``reset()``."""
        return self._failures

    def next_delay(self) -> float:
        """Count one more failure and return how long to wait before the next attempt."""
        # The exponent stops growing once the cap is reached, so it cannot overflow.
        exponent = min(self._failures, 64)
        self._failures += 1
        delay = min(self._cap, _INITIAL_DELAY_S * 2.0**exponent)
        return delay * (0.5 + 0.5 * self._random.random())

    def reset(self) -> None:
        """Start again from the shortest delay (after a success)."""
        self._failures = 0
