"""Capped exponential backoff with jitter, for retrying writes against an unwell database."""

from __future__ import annotations

import random
from typing import Final

__all__ = ["RECONNECT_CAP_S", "Backoff"]

_INITIAL_DELAY_S: Final = 0.05
#: The longest pause while the database cannot be reached at all. A connection attempt is
#: the probe: refused, it costs the server nothing, and the first that succeeds writes. So
#: writing resumes within about this long of the database coming back, however long it
#: was away, instead of after a pause that grew with the outage.
RECONNECT_CAP_S: Final = 0.5


class Backoff:
    """Delays of 0.05 s doubling per failure up to a cap, each jittered to 50-100 %.

    The cap is ``cap`` for errors the database answers with (a permission, a missing table,
    too many connections: retrying sooner would only load it), and the lower
    ``RECONNECT_CAP_S`` while it cannot be reached (``reconnecting``). The jitter keeps many
    clients that lost the same database from reconnecting in step; the lower half is kept so
    that a retry never comes immediately. Not thread-safe: one ``Delivery`` owns it.
    """

    def __init__(self, cap: float) -> None:
        self._cap = cap
        self._failures = 0
        self._random = random.Random()

    @property
    def failures(self) -> int:
        """Failures since the last ``reset()``."""
        return self._failures

    def next_delay(self, *, reconnecting: bool = False) -> float:
        """Count one more failure and return how long to wait before the next attempt."""
        # The exponent stops growing once the cap is reached, so it cannot overflow.
        exponent = min(self._failures, 64)
        self._failures += 1
        cap = min(self._cap, RECONNECT_CAP_S) if reconnecting else self._cap
        delay = min(cap, _INITIAL_DELAY_S * 2.0**exponent)
        return delay * (0.5 + 0.5 * self._random.random())

    def reset(self) -> None:
        """Start again from the shortest delay (after a success)."""
        self._failures = 0
