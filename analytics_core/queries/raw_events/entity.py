"""How one user, project or cocoon behaves, read from the raw events table.

Every function here reads ``analytics_events``: the aggregates keep no per-project history and
no per-entity event types. Each lookup filters on the column or payload field that names the
entity with the same predicate as that field's partial index (``user_id IS NOT NULL``,
``data ->> 'project_id' IS NOT NULL``, ``data ->> 'cocoon_id' IS NOT NULL``), so the planner
can answer from the index (entity, timestamp DESC) whatever plan it picks for the rest.

Project and cocoon ids are matched as the canonical lowercase text of the UUID, which is how
``event_payload_json`` writes them; a payload holding some other spelling, or a value that is
not a UUID, belongs to no entity. Times are UTC; windows are half-open ``[start, end)``.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final, LiteralString

import psycopg
from psycopg import sql

from analytics_core._checks import aware_datetime, positive_int
from analytics_core.queries._fetch import database_now, fetch_all, fetch_one, utc
from analytics_core.queries._ratio import ratio
from analytics_core.queries._results import DayCount, EventTypeCount, Result
from analytics_core.queries._window import TimeWindow, days_of
from analytics_core.queries.raw_events._record import EVENT_COLUMNS, EventRecord
from analytics_core.schema import EVENTS_TABLE

__all__ = [
    "Entity",
    "EntityKind",
    "EntitySummary",
    "EventShare",
    "HourOfDayProfile",
    "LeaderboardEntry",
    "activity_log",
    "count_between",
    "daily_event_counts",
    "days_since_last_activity",
    "entity_summary",
    "event_share",
    "event_type_counts",
    "first_event",
    "has_done",
    "is_inactive",
    "last_event",
    "leaderboard",
    "peak_hour",
    "top_event_types",
]


class EntityKind(enum.StrEnum):
    """What an entity is, which decides where its id is found in an event."""

    #: The ``user_id`` column.
    USER = "user"
    #: The payload's ``project_id``.
    PROJECT = "project"
    #: The payload's ``cocoon_id``.
    COCOON = "cocoon"


# The expression naming each kind's entity, written exactly as its partial index is (see
# pre_0001): a predicate that repeats the index's own is trivially implied by the query.
_KEY: Final = {
    EntityKind.USER: sql.SQL("user_id"),
    EntityKind.PROJECT: sql.SQL("(data ->> 'project_id')"),
    EntityKind.COCOON: sql.SQL("(data ->> 'cocoon_id')"),
}

# The text form the client writes; the leaderboard skips anything else so that every id it
# returns can be looked up with the functions below.
_CANONICAL_UUID: Final = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


@dataclass(frozen=True, slots=True)
class Entity(Result):
    """A user, project or cocoon, by kind and UUID.

    - ``kind``: which, and so where its id is found in an event (see :class:`EntityKind`).
    - ``id``: its UUID.

    Validated at construction: raises ValueError for an unknown kind or an id that is not a
    UUID. Strings are accepted for both, so ``Entity("project", "5f0c...")`` works.
    """

    kind: EntityKind
    id: uuid.UUID

    def __post_init__(self) -> None:
        try:
            kind = EntityKind(self.kind)
        except ValueError:
            choices = ", ".join(k.value for k in EntityKind)
            raise ValueError(
                f"unknown entity kind {self.kind!r}: expected one of {choices}"
            ) from None
        entity_id = self.id
        if not isinstance(entity_id, uuid.UUID):
            try:
                entity_id = uuid.UUID(str(entity_id))
            except ValueError:
                raise ValueError(
                    f"{kind.value} id {str(entity_id)[:100]!r} is not a UUID "
                    "(expected e.g. 5f0c2b1e-8d4a-4c3e-9f6b-2a7d1e0c9b8a)"
                ) from None
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "id", entity_id)

    @classmethod
    def parse(cls, kind: str, entity_id: str) -> Entity:
        """The entity named by text, as a command line gives it; ValueError when invalid."""
        # __post_init__ converts and validates both.
        return cls(kind, entity_id)  # type: ignore[arg-type]


def _param(entity: Entity) -> uuid.UUID | str:
    # The user_id column is a uuid; payload ids are compared as their canonical text.
    return entity.id if entity.kind is EntityKind.USER else str(entity.id)


def _where(entity: Entity, window: TimeWindow | None = None) -> tuple[sql.Composed, dict[str, Any]]:
    """The WHERE clause selecting ``entity``'s events (in ``window``), and its parameters."""
    key = _KEY[entity.kind]
    clause = sql.SQL("{key} = %(entity)s AND {key} IS NOT NULL").format(key=key)
    params: dict[str, Any] = {"entity": _param(entity)}
    if window is not None:
        clause = sql.SQL('{} AND "timestamp" >= %(start)s AND "timestamp" < %(end)s').format(clause)
        params.update(start=window.start, end=window.end)
    return clause, params


def _select(
    columns: sql.Composable, where: sql.Composable, tail: LiteralString = ""
) -> sql.Composed:
    return sql.SQL("SELECT {} FROM {} WHERE {} ").format(
        columns, sql.Identifier(EVENTS_TABLE), where
    ) + sql.SQL(tail)


# --- Counts by event type ----------------------------------------------------------------------


def event_type_counts(
    conn: psycopg.Connection[Any], entity: Entity, window: TimeWindow | None = None
) -> tuple[EventTypeCount, ...]:
    """How many events of each type the entity has (in ``window``, else ever), most first.

    Reads ``analytics_events``. Ties are ordered by event type name. Empty when it has none.
    """
    where, params = _where(entity, window)
    rows = fetch_all(
        conn,
        _select(
            sql.SQL("event_type, count(*)"),
            where,
            "GROUP BY event_type ORDER BY count(*) DESC, event_type",
        ),
        params,
    )
    return tuple(EventTypeCount(event_type, count) for event_type, count in rows)


def top_event_types(
    conn: psycopg.Connection[Any],
    entity: Entity,
    limit: int = 5,
    window: TimeWindow | None = None,
) -> tuple[EventTypeCount, ...]:
    """The ``limit`` most frequent event types of the entity, most first (ties by name).

    Reads ``analytics_events``. Raises ValueError when ``limit`` is below 1.
    """
    positive_int(limit, "limit")
    return event_type_counts(conn, entity, window)[:limit]


@dataclass(frozen=True, slots=True)
class EventShare(Result):
    """The share of an entity's events that are of one type.

    - ``event_type``: the type asked about.
    - ``count``: the entity's events of that type.
    - ``total``: all the entity's events (in the window asked about, else ever).
    - ``share``: ``count / total``, from 0 to 1; None when the entity has no events.
    """

    event_type: str
    count: int
    total: int
    share: float | None


def event_share(
    conn: psycopg.Connection[Any],
    entity: Entity,
    event_type: str,
    window: TimeWindow | None = None,
) -> EventShare:
    """The share of the entity's events (in ``window``, else ever) that are ``event_type``.

    Reads ``analytics_events``.
    """
    where, params = _where(entity, window)
    count, total = fetch_one(
        conn,
        _select(sql.SQL("count(*) FILTER (WHERE event_type = %(event_type)s), count(*)"), where),
        {**params, "event_type": event_type},
    )
    return EventShare(event_type, count, total, ratio(count, total))


def count_between(
    conn: psycopg.Connection[Any],
    entity: Entity,
    window: TimeWindow,
    event_type: str | None = None,
) -> int:
    """How many events (of ``event_type``, else of any type) the entity has in ``window``.

    Reads ``analytics_events``; the window is half-open, ``[start, end)``.
    """
    where, params = _where(entity, window)
    if event_type is not None:
        where = sql.SQL("{} AND event_type = %(event_type)s").format(where)
        params["event_type"] = event_type
    (count,) = fetch_one(conn, _select(sql.SQL("count(*)"), where), params)
    return int(count)


def has_done(conn: psycopg.Connection[Any], entity: Entity, event_type: str) -> bool:
    """Whether the entity has ever had an event of ``event_type`` (within retention).

    Reads ``analytics_events``; stops at the first match.
    """
    where, params = _where(entity)
    inner = _select(sql.SQL("1"), sql.SQL("{} AND event_type = %(event_type)s").format(where))
    (found,) = fetch_one(
        conn, sql.SQL("SELECT EXISTS ({})").format(inner), {**params, "event_type": event_type}
    )
    return bool(found)


# --- First, last and recent events -------------------------------------------------------------


def _edge_event(conn: psycopg.Connection[Any], entity: Entity, order: str) -> EventRecord | None:
    where, params = _where(entity)
    tail = 'ORDER BY "timestamp" DESC, id DESC' if order == "last" else 'ORDER BY "timestamp", id'
    rows = fetch_all(conn, _select(EVENT_COLUMNS, where, tail + " LIMIT 1"), params)
    return EventRecord.from_row(rows[0]) if rows else None


def first_event(conn: psycopg.Connection[Any], entity: Entity) -> EventRecord | None:
    """The entity's earliest event (within retention), or None. Reads ``analytics_events``."""
    return _edge_event(conn, entity, "first")


def last_event(conn: psycopg.Connection[Any], entity: Entity) -> EventRecord | None:
    """The entity's latest event, or None. Reads ``analytics_events``."""
    return _edge_event(conn, entity, "last")


def activity_log(
    conn: psycopg.Connection[Any],
    entity: Entity,
    limit: int = 50,
    before: datetime | None = None,
) -> tuple[EventRecord, ...]:
    """The entity's ``limit`` most recent events, newest first, with their payloads.

    Reads ``analytics_events``. ``before`` (exclusive) pages back: pass the oldest timestamp
    of the previous page. Raises ValueError for ``limit`` below 1 or a naive ``before``.
    """
    positive_int(limit, "limit")
    where, params = _where(entity)
    if before is not None:
        where = sql.SQL('{} AND "timestamp" < %(before)s').format(where)
        params["before"] = aware_datetime(before, "before")
    rows = fetch_all(
        conn,
        _select(EVENT_COLUMNS, where, 'ORDER BY "timestamp" DESC, id DESC LIMIT %(limit)s'),
        {**params, "limit": limit},
    )
    return tuple(EventRecord.from_row(row) for row in rows)


def days_since_last_activity(
    conn: psycopg.Connection[Any], entity: Entity, now: datetime | None = None
) -> int | None:
    """Whole days (rounded down) from the entity's latest event to ``now``; None if it has
    no events. ``now`` defaults to the database's clock; a latest event after ``now`` counts
    as 0 days. Reads ``analytics_events``."""
    at = database_now(conn, now)
    latest = last_event(conn, entity)
    return None if latest is None else _whole_days(latest.timestamp, at)


def _whole_days(then: datetime, now: datetime) -> int:
    return max(0, (now - then) // timedelta(days=1))


def is_inactive(
    conn: psycopg.Connection[Any], entity: Entity, days: int, now: datetime | None = None
) -> bool:
    """Whether the entity has had no event in the ``days`` days before ``now``.

    True when its latest event is more than ``days`` days old, or it has none; an event
    exactly ``days`` days before ``now`` still counts as activity. ``now`` defaults to the
    database's clock. Reads ``analytics_events``. Raises ValueError for ``days`` below 1.
    """
    positive_int(days, "days")
    at = database_now(conn, now)
    where, params = _where(entity)
    inner = _select(sql.SQL("1"), sql.SQL('{} AND "timestamp" >= %(since)s').format(where))
    (active,) = fetch_one(
        conn,
        sql.SQL("SELECT EXISTS ({})").format(inner),
        {**params, "since": at - timedelta(days=days)},
    )
    return not active


# --- Shape of activity over time ---------------------------------------------------------------


def daily_event_counts(
    conn: psycopg.Connection[Any], entity: Entity, days: int, now: datetime | None = None
) -> tuple[DayCount, ...]:
    """Events per UTC day for the ``days`` days ending with ``now``'s day, oldest first.

    Every day is present, zeros included; events after ``now``'s day are left out. ``now``
    defaults to the database's clock. Reads ``analytics_events``. Raises ValueError for
    ``days`` below 1.
    """
    positive_int(days, "days")
    today = database_now(conn, now).date()
    first = today - timedelta(days=days - 1)
    window = TimeWindow.days(first, today)
    where, params = _where(entity, window)
    rows = fetch_all(
        conn,
        _select(
            sql.SQL("""("timestamp" AT TIME ZONE 'UTC')::date AS day, count(*)"""),
            where,
            "GROUP BY day",
        ),
        params,
    )
    found: dict[date, int] = dict(rows)
    return tuple(DayCount(day, found.get(day, 0)) for day in days_of(window))


@dataclass(frozen=True, slots=True)
class HourOfDayProfile(Result):
    """An entity's events per hour of the day, in UTC.

    - ``counts``: 24 numbers; ``counts[h]`` is the events in hour ``h`` (0 to 23) of any day.
    - ``peak_hour``: the busiest hour (the earliest of equals); None when there are no events.
    - ``peak_count``: the events in ``peak_hour``; 0 when there are none.
    """

    counts: tuple[int, ...]
    peak_hour: int | None
    peak_count: int


def peak_hour(
    conn: psycopg.Connection[Any], entity: Entity, window: TimeWindow | None = None
) -> HourOfDayProfile:
    """The entity's busiest hour of the day in UTC (in ``window``, else ever).

    Reads ``analytics_events``.
    """
    where, params = _where(entity, window)
    rows = fetch_all(
        conn,
        _select(
            sql.SQL("""extract(hour FROM "timestamp" AT TIME ZONE 'UTC')::int AS h, count(*)"""),
            where,
            "GROUP BY h",
        ),
        params,
    )
    found: dict[int, int] = dict(rows)
    counts = tuple(found.get(hour, 0) for hour in range(24))
    peak = max(counts)
    return HourOfDayProfile(counts, counts.index(peak) if peak else None, peak)


# --- Summary -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntitySummary(Result):
    """What an entity has done (within retention), and how recently as of ``as_of``.

    - ``entity``: who.
    - ``as_of``: the instant recency is judged at: ``now`` when given, else the database's
      clock (UTC).
    - ``total_events``: all its events, whatever their time.
    - ``event_types``: its events per type, most first (ties by type name).
    - ``most_frequent``, ``least_frequent``: event type names, ties broken by name; None when it
      has no events.
    - ``first_event``, ``last_event``: its earliest and latest events; None when it has none.
    - ``days_since_last_activity``: whole days (rounded down) from ``last_event`` to ``as_of``,
      0 when that event is later; None when it has no events.
    - ``inactive_days``: the number of days ``inactive`` was judged over.
    - ``inactive``: :func:`is_inactive` for ``inactive_days``: no event in the ``inactive_days``
      days before ``as_of``, or no event at all.
    """

    entity: Entity
    as_of: datetime
    total_events: int
    event_types: tuple[EventTypeCount, ...]
    most_frequent: str | None
    least_frequent: str | None
    first_event: EventRecord | None
    last_event: EventRecord | None
    days_since_last_activity: int | None
    inactive_days: int
    inactive: bool


def entity_summary(
    conn: psycopg.Connection[Any],
    entity: Entity,
    *,
    inactive_days: int = 30,
    now: datetime | None = None,
) -> EntitySummary:
    """Totals, counts per event type, first and last events and recency of one entity.

    Reads ``analytics_events``. ``now`` defaults to the database's clock. Raises ValueError
    for ``inactive_days`` below 1.
    """
    positive_int(inactive_days, "inactive_days")
    at = database_now(conn, now)
    counts = event_type_counts(conn, entity)
    first = first_event(conn, entity)
    last = last_event(conn, entity)
    least = min(counts, key=lambda c: (c.count, c.event_type)) if counts else None
    return EntitySummary(
        entity=entity,
        as_of=at,
        total_events=sum(c.count for c in counts),
        event_types=counts,
        most_frequent=counts[0].event_type if counts else None,
        least_frequent=least.event_type if least else None,
        first_event=first,
        last_event=last,
        days_since_last_activity=None if last is None else _whole_days(last.timestamp, at),
        inactive_days=inactive_days,
        inactive=last is None or last.timestamp < at - timedelta(days=inactive_days),
    )


# --- Across entities ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeaderboardEntry(Result):
    """One entity's place on a leaderboard.

    - ``rank``: 1 for the most events; equal counts get consecutive ranks, in order of id.
    - ``entity``: who.
    - ``events``: its events in the window.
    - ``last_event_at``: its latest event in the window (UTC).
    """

    rank: int
    entity: Entity
    events: int
    last_event_at: datetime


def leaderboard(
    conn: psycopg.Connection[Any], kind: EntityKind, window: TimeWindow, limit: int = 10
) -> tuple[LeaderboardEntry, ...]:
    """The ``limit`` entities of ``kind`` with the most events in ``window``, most first.

    Reads ``analytics_events`` (a scan of the window). Ties share no rank: they are ordered
    by id. Payload ids that are not canonical UUID text are left out. Raises ValueError for
    ``limit`` below 1.
    """
    positive_int(limit, "limit")
    kind = EntityKind(kind)
    key = _KEY[kind]
    where = sql.SQL(
        '{key} IS NOT NULL AND "timestamp" >= %(start)s AND "timestamp" < %(end)s'
    ).format(key=key)
    if kind is not EntityKind.USER:
        where = sql.SQL("{} AND {} ~ %(canonical)s").format(where, key)
    # Ties by id; payload ids are text, compared bytewise so the order is the UUIDs' order
    # whatever the database's collation.
    tie = key if kind is EntityKind.USER else sql.SQL('{} COLLATE "C"').format(key)
    query = sql.SQL(
        'SELECT {key}, count(*), max("timestamp") FROM {table} WHERE {where} '
        "GROUP BY 1 ORDER BY 2 DESC, {tie} LIMIT %(limit)s"
    ).format(key=key, table=sql.Identifier(EVENTS_TABLE), where=where, tie=tie)
    rows = fetch_all(
        conn,
        query,
        {"start": window.start, "end": window.end, "canonical": _CANONICAL_UUID, "limit": limit},
    )
    return tuple(
        LeaderboardEntry(rank, Entity(kind, uuid.UUID(str(entity_id))), count, utc(last))
        for rank, (entity_id, count, last) in enumerate(rows, start=1)
    )
