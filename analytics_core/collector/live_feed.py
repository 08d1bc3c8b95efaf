"""The live snapshot, shared: however many streams and dashboards are open, the database is
asked at most once per half ``live_interval`` for each set of parameters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final

from analytics_core.queries import LiveSnapshot

__all__ = ["LiveFeed"]

#: How many sets of (minutes, limit) are cached at once; more are asked for afresh.
_MAX_CACHED: Final = 16


class LiveFeed:
    """A cache of recent ``LiveSnapshot``s in front of a fetch; for the event loop only."""

    def __init__(self, interval: float) -> None:
        self._max_age = interval / 2
        self._lock = asyncio.Lock()
        self._cached: dict[tuple[int, int], tuple[float, LiveSnapshot]] = {}

    async def snapshot(
        self, minutes: int, limit: int, fetch: Callable[[], Awaitable[LiveSnapshot]]
    ) -> LiveSnapshot:
        """A snapshot for ``(minutes, limit)`` at most half an interval old, else ``fetch()``'s
        (which raises what it raises; a failure is not cached)."""
        async with self._lock:
            cached = self._cached.get((minutes, limit))
            if cached is not None and time.monotonic() - cached[0] < self._max_age:
                return cached[1]
            snapshot = await fetch()
            if len(self._cached) >= _MAX_CACHED:
                self._cached.clear()
            self._cached[minutes, limit] = (time.monotonic(), snapshot)
            return snapshot
