"""Reading timestamps that Python cannot hold.

PostgreSQL stores times from 4713 BC to 294276 AD and ``infinity``; Python's datetime covers
years 1 to 9999. ``track()`` refuses times outside its range, but a row written another way
(SQL, an older client, another language) can hold any of them, and one such row must not
make a report fail. The read side loads such a timestamptz as the nearest instant Python
has: ``datetime.min`` or ``datetime.max`` in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.abc import AdaptContext
from psycopg.types.datetime import TimestamptzLoader

__all__ = ["EARLIEST", "LATEST", "load_clamped_timestamps"]

EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)


class _ClampedTimestamptzLoader(TimestamptzLoader):
    def load(self, data: Any) -> datetime:
        try:
            return super().load(data)
        except psycopg.DataError:
            text = bytes(data)
            return EARLIEST if text.startswith(b"-") or text.endswith(b"BC") else LATEST


def load_clamped_timestamps(context: AdaptContext) -> None:
    """Make ``context`` (a connection or cursor) load out-of-range timestamptz values clamped."""
    context.adapters.register_loader("timestamptz", _ClampedTimestamptzLoader)
