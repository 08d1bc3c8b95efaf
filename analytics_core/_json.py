"""Library values as plain JSON types: the one conversion behind every ``to_json()``.

Imports nothing of ours, so any module (the queries, the migration status) can use it.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from datetime import date, datetime
from typing import Any

__all__ = ["jsonable"]


def jsonable(value: Any) -> Any:
    """``value`` with every part ``json.dumps`` cannot take turned into one it can.

    Datetimes and dates become ISO 8601 strings, UUIDs strings, enums their value; dataclass
    instances become objects of their fields (properties are not included), mappings objects
    with string keys, tuples and lists lists. Anything else is returned as it is. Never
    raises for a value of another type: it is left for ``json.dumps`` to accept or refuse.
    """
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
