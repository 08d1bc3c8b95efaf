""":class:`EventRecord`, one row of the raw events table, and the one way to read it.

A query that returns events selects :data:`EVENT_COLUMNS` and builds each record with
:meth:`EventRecord.from_row`, so that the column list and the order the record reads it in
cannot drift apart.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from psycopg import sql

from analytics_core.queries._fetch import utc
from analytics_core.queries._results import Result

__all__ = ["EVENT_COLUMNS", "EventRecord"]

#: The columns of ``analytics_events`` that :meth:`EventRecord.from_row` reads, in its order.
EVENT_COLUMNS: Final = sql.SQL('"timestamp", event_type, service, user_id, event_id, data')


@dataclass(frozen=True, slots=True)
class EventRecord(Result):
    """One row of the raw events table, with its JSON payload decoded.

    - ``timestamp``: when the event happened, as its producer stamped it; in UTC.
    - ``event_type``: the event's type, e.g. ``task_created``.
    - ``service``: the service that sent it.
    - ``user_id``: the user who caused it; None for events that carry no user.
    - ``event_id``: the id the client gave the event, unique per event (a retried write
      keeps it).
    - ``data``: the payload, as stored (a JSON object decoded into a dict).
    """

    timestamp: datetime
    event_type: str
    service: str
    user_id: uuid.UUID | None
    event_id: uuid.UUID
    data: Mapping[str, Any]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> EventRecord:
        """The record of a row whose columns are :data:`EVENT_COLUMNS`, in that order.

        The timestamp is converted to UTC, whatever TimeZone the connection's session uses.
        """
        timestamp, event_type, service, user_id, event_id, data = row
        return cls(utc(timestamp), event_type, service, user_id, event_id, data)
