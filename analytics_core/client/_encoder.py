"""Rows of ``analytics_events`` built from tracked events, in PostgreSQL's binary COPY format.

``row_encoder(service)`` returns the function that turns what ``track()`` captured (the event
and a clock reading) into a row: the timestamp, event type, service, user id, the JSONB
``data`` document (``event_payload_bytes``) and a fresh ``event_id``, encoded right away as one
tuple of the binary COPY format. The data of a COPY is then ``copy_data(rows)``: a header,
the rows, a trailer.

``track()`` encodes in the caller's thread, so the intake holds bytes rather than models:

- the garbage collector has nothing to visit in a queue of 100,000 events (a bytes object
  is not tracked by it), where queued models made every full collection walk each of them;
- the worker's turns with the GIL are short (join the rows, send them), instead of a whole
  batch's worth of Python each: a caller busy with CPU work waits for the GIL only that long;
- the work is done once, by the thread that has the event at hand, with no hand-over.

An event that cannot be serialised (built with ``model_construct`` from wrong values, say)
is kept as a ``Rejection`` instead and counts as failed. ``event_of(row)`` decodes a row back
into its event, for ``on_error``. Pure CPU work, no I/O and no psycopg.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, NamedTuple, TypeAlias

from analytics_core.events import (
    EVENT_TYPES,
    AnalyticsEvent,
    event_payload_bytes,
    new_event_id_bytes,
    parse_event,
)
from analytics_core.schema import EVENT_COPY_COLUMNS

__all__ = [
    "ROW_LAYOUT",
    "Batch",
    "CallerStamp",
    "Entry",
    "Rejection",
    "Row",
    "RowEncoder",
    "Stamp",
    "copy_data",
    "encode_all",
    "event_id_of",
    "event_of",
    "micros_of",
    "row_encoder",
]

Row: TypeAlias = bytes
"""One row of the COPY, in ``ROW_LAYOUT`` order, as a binary COPY tuple."""

Stamp: TypeAlias = int | datetime
"""When an event happened: ``time.time_ns()`` read by ``track()``, or the caller's datetime
(a ``CallerStamp`` when the caller also chose the event's id or service)."""


class CallerStamp(datetime):
    """A caller's aware datetime carrying what the caller chose for the row: its
    ``event_id`` (16 bytes; None for a fresh one) and its ``service`` (``track_all``).

    A datetime, so that everything that reads stamps reads it as one. Made by ``of``.
    """

    __slots__ = ("event_id", "service")
    event_id: bytes | None
    service: str

    @classmethod
    def of(cls, at: datetime, event_id: bytes | None, service: str) -> CallerStamp:
        """``at`` (aware) carrying ``event_id`` and ``service``."""
        stamp = cls(
            at.year,
            at.month,
            at.day,
            at.hour,
            at.minute,
            at.second,
            at.microsecond,
            at.tzinfo,
            fold=at.fold,
        )
        stamp.event_id = event_id
        stamp.service = service
        return stamp


#: The columns of a row, in the order row_encoder() encodes them. Checked against the schema's
#: list at import, so a change there fails loudly here rather than writing values into the
#: wrong columns.
ROW_LAYOUT: Final = ("timestamp", "event_type", "service", "user_id", "data", "event_id")
if ROW_LAYOUT != EVENT_COPY_COLUMNS:
    raise RuntimeError(
        f"schema.EVENT_COPY_COLUMNS is {EVENT_COPY_COLUMNS}, but the client encodes rows as "
        f"{ROW_LAYOUT}; update row_encoder() and ROW_LAYOUT in analytics_core/client/_encoder.py"
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
# Where the fields after the timestamp start: field count, its length, its 8 bytes.
_AFTER_TIMESTAMP: Final = 14
_unpack_length = struct.Struct(">i").unpack_from


def _text_field(text: str) -> bytes:
    encoded = text.encode()
    return struct.pack(">i", len(encoded)) + encoded


# The event type field of every type, ready-made.
_EVENT_TYPE_FIELDS: Final = {name: _text_field(name) for name in EVENT_TYPES}


class Rejection(NamedTuple):
    """An event that could not be turned into a row, and why: it counts as failed."""

    event: AnalyticsEvent
    error: Exception


Entry: TypeAlias = Row | Rejection
"""What the intake holds per event: its row, or (rarely) why it has none."""

RowEncoder: TypeAlias = Callable[[AnalyticsEvent, Stamp], Row]
"""``encode(event, stamp)``: the row of one event, with a fresh event id; raises if it has none."""


def row_encoder(service: str) -> RowEncoder:
    """The function that turns one tracked event of ``service`` into its row.

    Called by ``track()`` (through the intake), in the caller's thread: the row is the
    timestamp, event type, service, user id, the JSONB ``data`` document
    (``event_payload_bytes``) and a fresh ``event_id`` (a UUIDv7 of the moment it is encoded).
    Raises what serialising the event raises (an event built with ``model_construct`` from
    values of the wrong type, say).
    """
    # The event type and service fields of every type, ready-made and adjacent.
    type_and_service = {
        name: type_field + _text_field(service) for name, type_field in _EVENT_TYPE_FIELDS.items()
    }
    payload = event_payload_bytes
    join = b"".join
    new_id = new_event_id_bytes

    def encode(event: AnalyticsEvent, stamp: Stamp) -> Row:
        # Field values live in the instance __dict__. Not getattr(event, "user_id", None): for
        # a model without the field, pydantic builds an AttributeError to say so, which costs
        # more than the whole row.
        fields = event.__dict__
        user_id = fields.get("user_id")
        data = payload(event)
        return join(
            (
                _pack_head(
                    len(ROW_LAYOUT),
                    8,
                    # A datetime is exact to the microsecond; so is the clock reading.
                    (stamp - _PG_EPOCH) // _MICROSECOND
                    if isinstance(stamp, datetime)
                    else stamp // 1_000 - _UNIX_TO_PG_US,
                ),
                type_and_service[fields["event_type"]],
                _NULL if user_id is None else (_UUID_FIELD | user_id.int).to_bytes(20),
                _pack_data_head(len(data) + 1, 1),
                data,
                _UUID_SIZE,
                new_id(),
            )
        )

    return encode


def encode_all(
    encode: RowEncoder, events: Sequence[AnalyticsEvent], stamps: Sequence[Stamp]
) -> list[Entry]:
    """The entry of each event: its row, with the caller's service and id where its stamp
    is a ``CallerStamp``, or a ``Rejection`` when it cannot be serialised."""
    by_service: dict[str, RowEncoder] = {}
    entries: list[Entry] = []
    for event, stamp in zip(events, stamps, strict=True):
        try:
            if isinstance(stamp, CallerStamp):
                if stamp.service not in by_service:
                    by_service[stamp.service] = row_encoder(stamp.service)
                row = by_service[stamp.service](event, stamp)
                # The id is the row's last field: 16 bytes after its length.
                entries.append(row if stamp.event_id is None else row[:-16] + stamp.event_id)
            else:
                entries.append(encode(event, stamp))
        except Exception as exc:
            entries.append(Rejection(event, exc))
    return entries


@dataclass(slots=True)
class Batch:
    """Rows to write together, and the events that could not even be turned into a row.

    ``rejected`` events count as failed. The event of a row, for ``on_error``, is decoded
    from the row (``event_of``): the intake keeps no model alive.
    """

    rows: list[Row] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    @classmethod
    def of(cls, entries: list[Entry]) -> Batch:
        """The batch of entries taken from the intake (the list is used, not copied)."""
        # Rejections are rare: one pass of C-level type checks finds there are none.
        if all(type(entry) is bytes for entry in entries):
            return cls(entries)  # type: ignore[arg-type]  # all bytes, checked above
        batch = cls()
        for entry in entries:
            if type(entry) is bytes:
                batch.rows.append(entry)
            else:
                batch.rejected.append(entry)  # type: ignore[arg-type]  # a Rejection
        return batch

    def __len__(self) -> int:
        return len(self.rows) + len(self.rejected)


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


def event_of(row: Row) -> AnalyticsEvent:
    """The event a row was encoded from, decoded from its event type and ``data`` fields.

    Equal to the tracked model (the document holds every field, and each field's JSON form
    validates back to the same value). For ``on_error``, which gets the events the database
    rejected: rare, so decoding them costs nothing that matters.
    """
    at = _AFTER_TIMESTAMP
    fields: list[bytes | None] = []
    for _ in range(len(ROW_LAYOUT) - 1):
        (length,) = _unpack_length(row, at)
        at += 4
        if length < 0:
            fields.append(None)
            continue
        fields.append(row[at : at + length])
        at += length
    event_type, _service, _user_id, data = fields[:4]
    assert event_type is not None and data is not None  # never NULL in a row we encode
    document = json.loads(data[1:])  # after JSONB's version byte
    document["event_type"] = event_type.decode()
    return parse_event(document)
