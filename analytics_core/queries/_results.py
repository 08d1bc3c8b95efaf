"""The result types that several query modules share, and their base :class:`Result`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from analytics_core._json import jsonable

__all__ = ["DayCount", "EventTypeCount", "HourCount", "Result"]


class Result:
    """Base of every query result: frozen dataclasses that serialise with :meth:`to_json`.

    ``dataclasses.asdict`` works on them too; ``to_json`` also turns datetimes, dates and
    UUIDs into strings so that ``json.dumps`` takes the document as it is.
    """

    __slots__ = ()

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = jsonable(self)
        return document


@dataclass(frozen=True, slots=True)
class DayCount(Result):
    """How many of something happened on one UTC day.

    - ``day``: the UTC day.
    - ``count``: how many; 0 for a day without any.
    """

    day: date
    count: int


@dataclass(frozen=True, slots=True)
class HourCount(Result):
    """How many of something happened in one UTC hour.

    - ``hour``: the start of the hour, a UTC datetime on a whole hour.
    - ``count``: how many; 0 for an hour without any.
    """

    hour: datetime
    count: int


@dataclass(frozen=True, slots=True)
class EventTypeCount(Result):
    """How many events of one type.

    - ``event_type``: the type, e.g. ``task_created``.
    - ``count``: events of that type, at least 1 (types without events are not listed).
    """

    event_type: str
    count: int
