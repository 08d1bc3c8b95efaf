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
    """How many of something happened on one UTC day."""

    day: date
    count: int


@dataclass(frozen=True, slots=True)
class HourCount(Result):
    """How many of something happened in the UTC hour starting at ``hour``."""

    hour: datetime
    count: int


@dataclass(frozen=True, slots=True)
class EventTypeCount(Result):
    """How many events of one type."""

    event_type: str
    count: int
