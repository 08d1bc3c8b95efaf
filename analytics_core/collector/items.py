"""One item of an ingest request, validated: an event and what its producer chose for it.

An item is a JSON object::

    {"event": {"event_type": "task_created", ...},   # required: validated by parse_event
     "event_id": "0193...",                           # optional: a UUID, for retries
     "timestamp": "2026-12-01T10:00:00.123Z"}         # optional: when it happened (default: now)

``event`` validates against the union's JSON Schema (``GET /v1/schema``). A producer that
may send an item twice (a retry after a timeout) gives it an ``event_id`` and a
``timestamp``: the table's unique key is both, so the copy is recognised and not stored again.
Without them each request is new events. The service is the API key's: an item cannot name it.

What is wrong is said per field path (``event.task_completed.duration_ms: ...``), never with
the value, which may be personal data.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from analytics_core.events import AnalyticsEvent, InvalidEventError, parse_event
from analytics_core.tracker import EARLIEST_TIMESTAMP, MAX_CLOCK_SKEW, in_range

__all__ = ["Item", "validate_item"]

_FIELDS: Final = frozenset({"event", "event_id", "timestamp"})


@dataclass(frozen=True, slots=True)
class Item:
    """A valid item: the event, its time (None: when received) and id (None: a new one)."""

    event: AnalyticsEvent
    timestamp: datetime | None
    event_id: uuid.UUID | None


def validate_item(raw: Any) -> Item | list[str]:
    """The item, or what is wrong with it: one ``path: problem`` line per problem."""
    if not isinstance(raw, dict):
        return ['item: expected an object such as {"event": {"event_type": ...}}']
    errors = [_unknown_field(name) for name in raw if name not in _FIELDS]
    event: AnalyticsEvent | None = None
    payload = raw.get("event")
    if payload is None:
        errors.append("event: required, an object with an event_type (see /v1/schema)")
    elif not isinstance(payload, dict):
        errors.append("event: expected an object with an event_type (see /v1/schema)")
    else:
        try:
            event = parse_event(payload)
        except InvalidEventError as error:
            errors.extend(f"event.{detail}" for detail in error.details)
    event_id = _event_id(raw.get("event_id"), errors)
    timestamp = _timestamp(raw.get("timestamp"), errors)
    if event_id is not None and timestamp is None and "timestamp" not in raw:
        errors.append(
            "timestamp: required with an event_id, so that a retry is recognised (the "
            "table's unique key is event_id and timestamp)"
        )
    if errors or event is None:
        return errors
    return Item(event, timestamp, event_id)


def _unknown_field(name: str) -> str:
    if name == "service":
        return "service: not allowed in an item; the service is the API key's"
    shown = name if len(name) <= 64 else name[:64] + "..."
    return f"{shown}: unknown field; an item has event, event_id and timestamp"


def _event_id(value: Any, errors: list[str]) -> uuid.UUID | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    errors.append("event_id: expected a UUID string such as 0193a1e4-...")
    return None


def _timestamp(value: Any, errors: list[str]) -> datetime | None:
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise TypeError
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        errors.append("timestamp: expected an ISO 8601 date-time such as 2026-12-01T10:00:00Z")
        return None
    if moment.utcoffset() is None:
        errors.append("timestamp: needs a UTC offset, such as 2026-12-01T10:00:00Z")
        return None
    if not in_range(moment):
        errors.append(
            f"timestamp: outside the accepted times, from {EARLIEST_TIMESTAMP.date()} to "
            f"{MAX_CLOCK_SKEW.days} day after now"
        )
        return None
    return moment
