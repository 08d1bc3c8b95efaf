"""What the read side should answer, computed in Python from the rows a test loaded.

The ``json_*`` functions restate in Python the payload rules the aggregates' SQL applies, so
that tests derive answers independently of the database; ``assert_same`` compares an answer
with them.
"""

from __future__ import annotations

import math
import re
import uuid
from typing import Any

import pytest

from devtools.seeding import EventRow

# --- The aggregates' payload rules, restated in Python -----------------------------------------


def field_of(row: EventRow, name: str) -> Any:
    """``data -> name``: None when the payload is not an object or lacks the field."""
    return row.data.get(name) if isinstance(row.data, dict) else None


def _number(value: Any, low: float, high: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if low <= value <= high else None


def json_ms(value: Any) -> float | None:
    """analytics_json_ms: a JSON number in [0, 1e15], else None."""
    return _number(value, 0, 1e15)


def json_int(value: Any) -> int | None:
    """analytics_json_int: a JSON number in the int4 range, truncated, else None."""
    number = _number(value, -2147483648, 2147483647)
    return None if number is None else math.trunc(number)


_LOOSE_UUID = re.compile(
    r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.IGNORECASE
)


def json_uuid(value: Any) -> uuid.UUID | None:
    """analytics_json_uuid: a string in a UUID's shape, else None."""
    if isinstance(value, str) and _LOOSE_UUID.fullmatch(value):
        return uuid.UUID(value)
    return None


def json_text(value: Any) -> str | None:
    """``analytics_json_text(data -> 'field')``: a JSON string as is, anything else None."""
    return value if isinstance(value, str) else None


# --- Comparing results -------------------------------------------------------------------------


def assert_same(actual: Any, expected: Any, path: str = "result") -> None:
    """``actual == expected`` for JSON-shaped values, floats to within 1e-9 (relative).

    Floats are summed in a different order in SQL and in Python; everything else is exact.
    """
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: {actual!r} is not an object"
        assert actual.keys() == expected.keys(), f"{path}: {actual.keys()} != {expected.keys()}"
        for key in expected:
            assert_same(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list | tuple):
        assert isinstance(actual, list | tuple), f"{path}: {actual!r} is not a list"
        assert len(actual) == len(expected), f"{path}: {len(actual)} items != {len(expected)}"
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{path}[{index}]")
    elif isinstance(expected, float) and not isinstance(actual, bool):
        assert actual == pytest.approx(expected, rel=1e-9, abs=1e-9), f"{path}: {actual!r}"
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"
