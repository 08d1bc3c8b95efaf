"""Rows of ``analytics_events`` built from tracked events, in PostgreSQL's binary COPY format.

``build_batch`` turns what ``track()`` captured (the event and a clock reading) into rows: the
timestamp, event type, service, user id, the JSONB ``data`` document (``event_payload_bytes``)
and a fresh ``event_id``. Each row is encoded right away as one tuple of the binary COPY
format, so the data of a COPY is ``copy_data(rows)``: a header, the rows, a trailer.

Pure CPU work, no I/O and no psycopg: it runs on the batcher thread, while the writer thread
waits for the server (see ``_worker``).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, TypeAlias

from analytics_core.client._queue import CallerStamp, Stamp
from analytics_core.events import (
    EVENT_TYPES,
    AnalyticsEvent,
    event_payload_bytes,
    new_event_ids,
)
from analytics_core.schema import EVENT_COPY_COLUMNS

__all__ = ["ROW_LAYOUT", "Batch", "Row", "build_batch", "copy_data", "event_id_of", "micros_of"]

Row: TypeAlias = bytes
"""One row of the COPY, in ``ROW_LAYOUT`` order, as a binary COPY tuple."""

#: The columns of a row, in the order build_batch() encodes them. Checked against the schema's
#: list at import, so a change there fails loudly here rather than writing values into the
#: wrong columns.
ROW_LAYOUT: Final = ("timestamp", "event_type", "service", "user_id", "data", "event_id")
if ROW_LAYOUT != EVENT_COPY_COLUMNS:
    raise RuntimeError(
        f"schema.EVENT_COPY_COLUMNS is {EVENT_COPY_COLUMNS}, but the client encodes rows as "
        f"{ROW_LAYOUT}; update build_batch() and ROW_LAYOUT in analytics_core/client/_encoder.py"
    )

# The binary COPY format (PostgreSQL docs, "COPY", "Binary Format"): a signature, flags and
# header extension length; per tuple an int16 field count, then per field an int32 length
# (-1 for NULL) and the value in the column type's binary format (its receive function);
# an int16 -1 ends the data. Values here, all big-endian:
# - timestamptz: int64 microseconds since 2000-01-01 00:00 UTC;
# - text: the UTF-8 bytes (the connection is set to client_encoding UTF8);
# - uuid: its 16 bytes;
# - jsonb: a version byte, 1, then the JSON text.
# Encoding rows here rather than through psycopg's per-row dumpers is most of the client's
# CPU saving over a plain ``copy.write_row``: a row is a handful of C-level operations.
_SIGNATURE: Final = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_TRAILER: Final = struct.pack(">h", -1)
_NULL: Final = struct.pack(">i", -1)
_UUID_SIZE: Final = struct.pack(">i", 16)
# Field count, the timestamp's length and the timestamp: the first 14 bytes of every row.
_pack_head = struct.Struct(">hiq").pack
_TIMESTAMP_AT: Final = slice(6, 14)
# The data field's length and JSONB's version byte.
_pack_data_head = struct.Struct(">iB").pack
# The user id's length prefix joined to its 128 bits: one int-to-bytes conversion.
_UUID_FIELD: Final = 16 << 128
_UNIX_TO_PG_US: Final = 946_684_800 * 1_000_000
_PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def _text_field(text: str) -> bytes:
    encoded = text.encode()
    return struct.pack(">i", len(encoded)) + encoded


# The event type field of every type, ready-made.
_EVENT_TYPE_FIELDS: Final = {name: _text_field(name) for name in EVENT_TYPES}


@dataclass(slots=True)
class Batch:
    """Rows to write together, with the events they came from (``events[i]`` -> ``rows[i]``).

    ``rejected`` holds events that could not even be turned into a row, with the error; they
    count as failed.
    """

    events: list[AnalyticsEvent] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    rejected: list[tuple[AnalyticsEvent, Exception]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows) + len(self.rejected)


def build_batch(
    events: Sequence[AnalyticsEvent],
    stamps: Sequence[Stamp],
    service: str,
    batch: Batch | None = None,
) -> Batch:
    """The rows for ``events`` (``stamps[i]`` is when ``events[i]`` happened): timestamps,
    JSONB documents and fresh event ids (for a ``CallerStamp``, the caller's id and service).

    This is the per-event work that ``track()`` leaves to the worker. Appends to ``batch``
    when given (and returns it), so a batch can be built in slices. Never raises: an event
    that cannot be serialised goes to ``rejected``.
    """
    if batch is None:
        batch = Batch()
    built = batch.events
    rows = batch.rows
    service_field = _text_field(service)
    # The service fields of CallerStamps, made once per service and batch.
    service_fields = {service: service_field}
    type_fields = _EVENT_TYPE_FIELDS
    payload = event_payload_bytes
    join = b"".join
    for event, stamp, fresh_id in zip(events, stamps, new_event_ids(len(events)), strict=True):
        try:
            event_id = fresh_id
            row_service = service_field
            if isinstance(stamp, CallerStamp):
                event_id = fresh_id if stamp.event_id is None else stamp.event_id
                row_service = service_fields.get(stamp.service) or service_fields.setdefault(
                    stamp.service, _text_field(stamp.service)
                )
            # Field values live in the instance __dict__. Not getattr(event, "user_id", None):
            # for a model without the field, pydantic builds an AttributeError to say so,
            # which costs more than the whole row.
            fields = event.__dict__
            user_id = fields.get("user_id")
            data = payload(event)
            row = join(
                (
                    _pack_head(
                        len(ROW_LAYOUT),
                        8,
                        # A datetime is exact to the microsecond; so is the clock reading.
                        (stamp - _PG_EPOCH) // _MICROSECOND
                        if isinstance(stamp, datetime)
                        else stamp // 1_000 - _UNIX_TO_PG_US,
                    ),
                    type_fields[fields["event_type"]],
                    row_service,
                    _NULL if user_id is None else (_UUID_FIELD | user_id.int).to_bytes(20),
                    _pack_data_head(len(data) + 1, 1),
                    data,
                    _UUID_SIZE,
                    event_id,
                )
            )
        except Exception as exc:
            batch.rejected.append((event, exc))
            continue
        built.append(event)
        rows.append(row)
    return batch


def copy_data(rows: Sequence[Row]) -> bytes:
    """The whole data stream of a binary COPY of ``rows``: header, rows, trailer."""
    return b"".join((_SIGNATURE, *rows, _TRAILER))


def event_id_of(row: Row) -> bytes:
    """The ``event_id`` of a row, as its 16 bytes (``uuid.UUID.bytes``)."""
    return row[-16:]


def micros_of(row: Row) -> int:
    """The ``timestamp`` of a row as PostgreSQL holds it: microseconds since 2000-01-01 UTC.

    An int, not a datetime: a row may hold a time Python's datetime cannot (year 10000 on).
    """
    return int.from_bytes(row[_TIMESTAMP_AT], signed=True)
