"""The package logger and the throttle that keeps repeated warnings to a bounded rate."""

from __future__ import annotations

import logging
import threading
import time
from typing import Final

__all__ = ["WARNING_PERIOD_S", "Throttle", "logger"]

logger: Final = logging.getLogger("analytics_core")

#: At most one warning of a kind per this many seconds; counts carry what was skipped.
WARNING_PERIOD_S: Final = 10.0


class Throttle:
    """Lets one occurrence through per ``period`` seconds (the first one at once).

    Thread-safe; ``ready()`` never blocks beyond a short internal lock.
    """

    def __init__(self, period: float = WARNING_PERIOD_S) -> None:
        self._period = period
        self._next = float("-inf")
        self._lock = threading.Lock()

    def ready(self) -> bool:
        """True, and start a new period, if the current period is over."""
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                return False
            self._next = now + self._period
            return True
