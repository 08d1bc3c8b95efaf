"""The result types that several query modules share, and how every result becomes JSON."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from datetime import date, datetime
from typing import Any

__all__ = ["DayCount", "EventRecord", "EventTypeCount", "HourCount", "Result", "jsonable"]


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: datetimes and dates as ISO 8601, UUIDs as strings,
    enums by value, dataclasses as objects, tuples as lists."""
    if is_dataclass(value) and not isinstance(value, type):
        return {field.name: jsonable(getattr(value, field.name)) for field in fields(value)}
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


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


@dataclass(frozen=True, slots=True)
class EventRecord(Result):
    """One row of the raw events table, with its JSON payload decoded."""

    timestamp: datetime
    event_type: str
    service: str
    user_id: uuid.UUID | None
    event_id: uuid.UUID
    data: Mapping[str, Any]
