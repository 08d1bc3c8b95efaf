"""Time windows and bounded numbers from a read request's query string.

The same rules as ``analytics-report``'s options: ``days=N`` (the last N UTC days, today
included) or ``since``/``until`` (an ISO date, meaning midnight UTC, or an ISO datetime,
UTC unless it has an offset; ``until`` a date includes that day), never both; neither gives
the endpoint's default number of days. Anything else is a ``Problem`` 400 that names the
parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Final

from analytics_core.collector.problems import Problem
from analytics_core.queries import TimeWindow

__all__ = ["MAX_DAYS", "bounded", "window_of"]

#: Ten years of days: beyond it an answer is too large to be useful (as in analytics-report).
MAX_DAYS: Final = 3_660
_DATE_LENGTH: Final = len("2026-12-01")


def bounded(params: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    """The integer parameter ``name`` (default ``default``), from 1 to ``maximum``."""
    text = params.get(name)
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= maximum:
        raise Problem(400, f"{name} must be a whole number from 1 to {maximum}")
    return int(text)


def _instant(params: Mapping[str, str], name: str, *, end: bool) -> datetime | None:
    text = params.get(name)
    if text is None:
        return None
    try:
        if len(text) == _DATE_LENGTH:
            day = date.fromisoformat(text) + timedelta(days=1 if end else 0)
            return datetime.combine(day, time(), UTC)
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise Problem(
            400, f"{name} must be an ISO date or datetime, e.g. 2026-12-01 or 2026-12-01T12:00Z"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.utcoffset() is None else moment.astimezone(UTC)


def window_of(params: Mapping[str, str], default_days: int) -> TimeWindow:
    """The window ``days`` or ``since``/``until`` describe (see the module docstring)."""
    since = _instant(params, "since", end=False)
    until = _instant(params, "until", end=True)
    if "days" in params and (since or until):
        raise Problem(400, "give either days or since/until, not both")
    now = datetime.now(UTC)
    if since is None and until is None:
        tomorrow = datetime.combine(now.date() + timedelta(days=1), time(), UTC)
        days = bounded(params, "days", default_days, MAX_DAYS)
        return TimeWindow(tomorrow - timedelta(days=days), tomorrow)
    end = until or now
    start = since or end - timedelta(days=default_days)
    if start >= end:
        raise Problem(400, "since must be before until")
    if end - start > timedelta(days=MAX_DAYS):
        raise Problem(400, f"the window is longer than {MAX_DAYS} days; narrow since/until")
    return TimeWindow(start, end)
