"""SQL fragments for reading TimescaleDB's catalog without tripping over its edge values.

The catalog holds timestamps that PostgreSQL calls finite but Python cannot represent: the
watermark of an empty continuous aggregate converts to the minimum timestamp (4714-11-24 BC),
and a job that never ran has ``-infinity`` or NULL times. Every timestamp ``status`` reads
goes through :func:`in_python_range`, so such values arrive as None instead of an exception.
"""

from __future__ import annotations

__all__ = ["in_python_range"]

# Python's datetime covers years 1 to 9999; a day's margin on each side keeps any time zone
# offset psycopg applies inside that range.
_FIRST = "0001-01-02 00:00:00+00"
_LAST = "9999-12-30 00:00:00+00"


def in_python_range(expression: str) -> str:
    """SQL for ``expression`` (a timestamptz) when Python can hold it, else NULL."""
    return (
        f"(CASE WHEN ({expression}) BETWEEN '{_FIRST}'::timestamptz AND '{_LAST}'::timestamptz"
        f" THEN ({expression}) END)"
    )
