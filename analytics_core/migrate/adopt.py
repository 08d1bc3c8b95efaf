"""Take over an ``analytics_events`` table that ``analytics-migrate`` did not create.

Services of the library this package ports (and people with a psql prompt) created the table
themselves: the reference design's columns without ``event_id``, as a hypertable, or as a
plain table. ``pre`` would otherwise skip it (``CREATE TABLE IF NOT EXISTS``) and fail on the
first index that names ``event_id``. So before ``pre`` runs on a database whose ledger does
not hold it, :func:`inspect_events_table` reads the table and :func:`plan_adoption` compares
it with ours. A deploy refuses a table that differs unless asked to adopt it, and then
:func:`adopt` brings it to our shape, keeping every row:

- **A hypertable** is upgraded in place. ``event_id`` is added with a default (catalog only),
  existing rows get ids chunk by chunk (one short transaction each; compressed chunks too,
  on the Community edition), then ``SET NOT NULL`` checks every row and the unique index on
  ``(event_id, "timestamp")`` is built: those two block writes while they run (an ACCESS
  EXCLUSIVE lock for the check, a SHARE lock for the build; TimescaleDB offers no
  per-chunk form of either). The other indexes are built a chunk at a time.
- **A plain table** is replaced: in one short transaction it is renamed to
  ``analytics_events_before_adoption`` and our hypertable is created in its place (writers
  go on writing into the new table), then its rows are copied over a day at a time, each day
  one transaction (rerunning after an interruption resumes: copied rows are skipped). Once
  every row is found in the new table the old one is dropped, unless something depends on it.

What cannot be taken over safely is refused with the exact difference: a missing column, a
type our writers cannot use (``timestamp`` without time zone, ``data`` as text), a column of
its own that writers could not fill.
"""

from __future__ import annotations

import contextlib
import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import psycopg
from psycopg import sql

from analytics_core.migrate.errors import MigrateError
from analytics_core.schema import CHUNK_INTERVAL, EVENTS_TABLE

__all__ = [
    "BACKUP_SUFFIX",
    "LEGACY_TABLE",
    "AdoptionPlan",
    "AdoptionRefused",
    "Column",
    "EventsTable",
    "ForeignAggregate",
    "ForeignAggregates",
    "Strategy",
    "adopt",
    "foreign_aggregates",
    "inspect_events_table",
    "interrupted_copy",
    "plan_adoption",
    "resume_copy",
    "set_aside_aggregates",
]

#: Where a plain table's rows wait while they are copied into the new hypertable.
LEGACY_TABLE: Final = f"{EVENTS_TABLE}_before_adoption"

#: Our columns: the types the writers and readers rely on, and the ones a copy can convert.
_TYPES: Final = {
    "id": ("bigint",),
    "timestamp": ("timestamp with time zone",),
    "event_type": ("character varying(100)", "text"),
    "service": ("character varying(100)", "text"),
    "user_id": ("uuid",),
    "data": ("jsonb",),
    "event_id": ("uuid",),
}
_COPY_CONVERTS: Final = {"id": ("integer",), "data": ("json",)}
_NOT_NULL: Final = ("timestamp", "event_type", "service", "data")
# The non-unique indexes of the creating migration, and where a column list ends.
_PLAIN_INDEX: Final = re.compile(r"^\s*CREATE INDEX IF NOT EXISTS ", re.MULTILINE)
_INDEX_COLUMNS: Final = re.compile(rf"(ON\s+{EVENTS_TABLE}\s*\((?:[^()]|\([^()]*\))*\))")

#: Called with (step, done, total) as adoption goes: the runner's progress callback.
Progress = Callable[[str, int, int], None]


class Strategy(enum.StrEnum):
    """How a table is brought to our shape."""

    #: The table has our shape already: nothing to do.
    NONE = "none"
    #: A hypertable: add what is missing in place.
    IN_PLACE = "in place"
    #: A plain table: rename it, create ours, copy the rows over.
    COPY = "copy"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    #: As ``format_type`` spells it, e.g. ``character varying(100)``.
    type: str
    not_null: bool
    has_default: bool


@dataclass(frozen=True, slots=True)
class EventsTable:
    """What the existing ``analytics_events`` is."""

    columns: dict[str, Column]
    hypertable: bool
    #: The planner's estimate (``reltuples``), for messages; -1 when never analysed.
    estimated_rows: int
    #: Our NOT NULL columns that hold NULLs here (only looked for where the table allows it).
    nulls_in: frozenset[str]
    #: Whether ``(timestamp, id)`` is unique (a primary key or unique index over exactly them).
    keyed_by_time_and_id: bool
    #: Whether our unique index on ``(event_id, "timestamp")`` exists (by its name).
    event_id_indexed: bool
    #: The span of new chunks of a hypertable; None for a plain table.
    chunk_interval: timedelta | None


@dataclass(frozen=True, slots=True)
class AdoptionPlan:
    strategy: Strategy
    #: How the table differs from ours, one line each.
    differences: tuple[str, ...]
    #: Why it cannot be adopted; empty when it can.
    refusals: tuple[str, ...]
    #: What adopting would do, with the locks each step takes.
    steps: tuple[str, ...]

    @property
    def adoptable(self) -> bool:
        return not self.refusals

    def to_json(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy.value,
            "differences": list(self.differences),
            "refusals": list(self.refusals),
            "steps": list(self.steps),
        }


class AdoptionRefused(MigrateError):
    """The existing ``analytics_events`` differs from ours and was not (or cannot be) adopted."""

    def __init__(self, plan: AdoptionPlan, *, asked: bool) -> None:
        self.plan = plan
        lines = [f"{EVENTS_TABLE} exists but was not created by analytics-migrate:"]
        lines += [f"  - {line}" for line in plan.differences]
        if plan.refusals:
            lines.append("It cannot be adopted:")
            lines += [f"  - {line}" for line in plan.refusals]
            lines.append("Change the table by hand, then run `analytics-migrate pre --adopt`.")
        elif not asked:
            lines.append("`analytics-migrate pre --adopt` (or `all --adopt`) would:")
            lines += [f"  {n}. {step}" for n, step in enumerate(plan.steps, 1)]
        super().__init__("\n".join(lines))


def inspect_events_table(conn: psycopg.Connection[Any]) -> EventsTable | None:
    """The ``analytics_events`` of the current search path, or None if there is none."""
    row = conn.execute(
        "SELECT c.oid, c.reltuples::bigint FROM pg_class c"
        " WHERE c.oid = to_regclass(%s) AND c.relkind IN ('r', 'p')",
        (EVENTS_TABLE,),
    ).fetchone()
    if row is None:
        return None
    oid, estimated = row
    columns = {
        name: Column(name, type_, not_null, has_default)
        for name, type_, not_null, has_default in conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod), attnotnull, atthasdef"
            " FROM pg_attribute WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped"
            " ORDER BY attnum",
            (oid,),
        ).fetchall()
    }
    hypertable = _is_hypertable(conn)
    nulls_in = frozenset(
        name
        for name in _NOT_NULL
        if name in columns and not columns[name].not_null and _has_nulls(conn, name)
    )
    keyed = conn.execute(
        "SELECT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = %s AND i.indisunique"
        " AND i.indexprs IS NULL AND i.indpred IS NULL AND (SELECT array_agg(a.attname::text"
        " ORDER BY a.attname) FROM pg_attribute a WHERE a.attrelid = i.indrelid"
        " AND a.attnum = ANY(i.indkey)) = ARRAY['id', 'timestamp'])",
        (oid,),
    ).fetchone()
    indexed = conn.execute(
        "SELECT EXISTS (SELECT FROM pg_index WHERE indrelid = %s AND indisunique"
        " AND indexrelid = to_regclass('analytics_events_event_id_idx'))",
        (oid,),
    ).fetchone()
    return EventsTable(
        columns=columns,
        hypertable=hypertable,
        estimated_rows=int(estimated),
        nulls_in=nulls_in,
        keyed_by_time_and_id=bool(keyed and keyed[0]),
        event_id_indexed=bool(indexed and indexed[0]),
        chunk_interval=_chunk_interval(conn) if hypertable else None,
    )


def plan_adoption(table: EventsTable) -> AdoptionPlan:
    """Compare ``table`` with ours: what differs, whether it can be adopted, and how."""
    strategy = Strategy.IN_PLACE if table.hypertable else Strategy.COPY
    differences: list[str] = []
    refusals: list[str] = []
    if not table.hypertable:
        differences.append("it is a plain table, not a TimescaleDB hypertable")
    for name, accepted in _TYPES.items():
        column = table.columns.get(name)
        if column is None:
            differences.append(f"column {name} is missing")
            if name not in ("event_id", "id"):
                refusals.append(f"column {name} ({accepted[0]}) is missing: no value to give it")
            continue
        if column.type in accepted:
            pass
        elif strategy is Strategy.COPY and column.type in _COPY_CONVERTS.get(name, ()):
            differences.append(f"column {name} is {column.type}; the copy converts it")
        else:
            differences.append(f"column {name} is {column.type}, not {accepted[0]}")
            refusals.append(_type_refusal(name, column.type, accepted[0]))
        if name in _NOT_NULL and not column.not_null:
            differences.append(f"column {name} allows NULL")
            if name in table.nulls_in:
                refusals.append(f"some rows have no {name}: give them one or delete them")
            elif strategy is Strategy.IN_PLACE:
                refusals.append(
                    f"column {name} allows NULL: run ALTER TABLE {EVENTS_TABLE} ALTER COLUMN "
                    f"{name} SET NOT NULL once no row lacks it"
                )
    if "id" not in table.columns:
        refusals.append("column id is missing: its values identify rows in the primary key")
    if strategy is Strategy.IN_PLACE:
        if not table.keyed_by_time_and_id:
            differences.append('no primary key or unique index on ("timestamp", id)')
        if not table.event_id_indexed and "event_id" in table.columns:
            differences.append('no unique index on (event_id, "timestamp")')
        if table.chunk_interval != CHUNK_INTERVAL:
            differences.append(f"new chunks span {table.chunk_interval}, not {CHUNK_INTERVAL}")
    own = [c for c in table.columns.values() if c.name not in _TYPES]
    for column in own:
        differences.append(f"column {column.name} ({column.type}) is not one of ours")
        if strategy is Strategy.COPY:
            refusals.append(
                f"column {column.name} would not survive the copy: move its values elsewhere "
                "and drop it, or make the table a hypertable to adopt it in place"
            )
        elif column.not_null and not column.has_default:
            refusals.append(
                f"column {column.name} is NOT NULL without a default: writers, which do not "
                "know it, could not insert; give it a default or drop NOT NULL"
            )
    if not differences:
        return AdoptionPlan(Strategy.NONE, (), (), ())
    steps = _in_place_steps(table) if strategy is Strategy.IN_PLACE else _copy_steps(table)
    return AdoptionPlan(strategy, tuple(differences), tuple(refusals), steps)


def adopt(
    conn: psycopg.Connection[Any],
    plan: AdoptionPlan,
    *,
    table: EventsTable,
    create_table_sql: tuple[str, ...],
    lock_timeout: sql.Composable,
    progress: Progress | None = None,
) -> None:
    """Carry out ``plan`` on an autocommit connection under the deploy lock.

    ``create_table_sql``: the statements of the migration that creates our table (the copy
    runs them in place of the old table). ``lock_timeout``: a literal such as ``'10000ms'``,
    set on every statement that takes a table lock. Raises AdoptionRefused for a plan that
    refuses, or what psycopg raises (each step is its own transaction: a rerun carries on).
    """
    if not plan.adoptable:
        raise AdoptionRefused(plan, asked=True)
    if plan.strategy is Strategy.IN_PLACE:
        _adopt_in_place(conn, table, create_table_sql, lock_timeout, progress)
    elif plan.strategy is Strategy.COPY:
        _adopt_by_copy(conn, table, create_table_sql, lock_timeout, progress)


# --- in place ----------------------------------------------------------------------------------


def _in_place_steps(table: EventsTable) -> tuple[str, ...]:
    steps = []
    if "event_id" not in table.columns:
        steps += [
            "add column event_id with default gen_random_uuid() (catalog only; an ACCESS "
            "EXCLUSIVE lock for an instant)",
            f"give existing rows an event_id, a chunk at a time (about {_rows(table)}; "
            "one transaction per chunk, writers unaffected)",
            "SET NOT NULL on event_id (ACCESS EXCLUSIVE lock while every row is checked: "
            "reads and writes wait)",
        ]
    if not table.keyed_by_time_and_id:
        steps.append('add the primary key ("timestamp", id) (writes wait while it is built)')
    steps += [
        'build the unique index on (event_id, "timestamp") if missing (a SHARE lock while it '
        "is built: writes wait, reads do not)",
        "build the other indexes a chunk at a time, set 1-day chunks for new data",
    ]
    return tuple(steps)


def _adopt_in_place(
    conn: psycopg.Connection[Any],
    table: EventsTable,
    create_table_sql: tuple[str, ...],
    lock_timeout: sql.Composable,
    progress: Progress | None,
) -> None:
    events = sql.Identifier(EVENTS_TABLE)
    locked = sql.SQL("SET LOCAL lock_timeout = {}; ").format(lock_timeout)
    if "event_id" not in table.columns:
        conn.execute(
            locked
            + sql.SQL(
                "ALTER TABLE {t} ADD COLUMN IF NOT EXISTS event_id uuid;"
                " ALTER TABLE {t} ALTER COLUMN event_id SET DEFAULT gen_random_uuid()"
            ).format(t=events)
        )
    ranges = _chunk_ranges(conn)
    for done, (start, end) in enumerate(ranges):
        if progress is not None:
            progress("adopt: event ids for existing rows", done, len(ranges))
        conn.execute(
            sql.SQL(
                "UPDATE {t} SET event_id = gen_random_uuid()"
                ' WHERE event_id IS NULL AND "timestamp" >= %s AND "timestamp" < %s'
            ).format(t=events),
            (start, end),
        )
    # Rows of no chunk cannot exist in a hypertable; this catches any left by a race all the
    # same, then makes the column what ours is.
    conn.execute(
        sql.SQL("UPDATE {t} SET event_id = gen_random_uuid() WHERE event_id IS NULL").format(
            t=events
        )
    )
    conn.execute(
        locked + sql.SQL("ALTER TABLE {t} ALTER COLUMN event_id SET NOT NULL").format(t=events)
    )
    if not table.keyed_by_time_and_id:
        conn.execute(
            locked + sql.SQL('ALTER TABLE {t} ADD PRIMARY KEY ("timestamp", id)').format(t=events)
        )
    conn.execute(
        locked
        + sql.SQL(
            "CREATE UNIQUE INDEX IF NOT EXISTS analytics_events_event_id_idx"
            ' ON {t} (event_id, "timestamp")'
        ).format(t=events)
    )
    indexes = _per_chunk_indexes(create_table_sql)
    for done, statement in enumerate(indexes):
        if progress is not None:
            progress("adopt: indexes", done, len(indexes))
        # Not in a transaction block: each chunk's index is built and committed alone.
        conn.execute(sql.SQL(statement))
    conn.execute(
        sql.SQL("SELECT set_chunk_time_interval({}, {})").format(
            sql.Literal(EVENTS_TABLE), sql.Literal(CHUNK_INTERVAL)
        )
    )
    if progress is not None:
        progress("adopt: indexes", len(indexes), len(indexes))


def _per_chunk_indexes(create_table_sql: tuple[str, ...]) -> list[str]:
    """The plain indexes of the migration that creates our table, each built a chunk at a
    time: the same definitions, so the migration finds them there afterwards."""
    statements = []
    for statement in create_table_sql:
        if not _PLAIN_INDEX.search(statement):
            continue
        # The option goes after the column list, before any WHERE of a partial index.
        statements.append(
            _INDEX_COLUMNS.sub(r"\1 WITH (timescaledb.transaction_per_chunk)", statement, count=1)
        )
    return statements


# --- by copy -----------------------------------------------------------------------------------


def _copy_steps(table: EventsTable) -> tuple[str, ...]:
    return (
        f"rename {EVENTS_TABLE} to {LEGACY_TABLE} and create the new hypertable in its place, "
        "in one transaction (an ACCESS EXCLUSIVE lock on the old table for an instant; "
        "writers then write to the new one)",
        f"copy its rows a day at a time (about {_rows(table)}; one transaction per day; reads "
        "see the older days arrive as they are copied)",
        f"check that every row is in the new table, then drop {LEGACY_TABLE} (kept if "
        "anything depends on it)",
    )


def _adopt_by_copy(
    conn: psycopg.Connection[Any],
    table: EventsTable,
    create_table_sql: tuple[str, ...],
    lock_timeout: sql.Composable,
    progress: Progress | None,
) -> None:
    legacy = sql.Identifier(LEGACY_TABLE)
    swap = [
        sql.SQL("SET LOCAL lock_timeout = {}").format(lock_timeout),
        sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(EVENTS_TABLE)),
        sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(EVENTS_TABLE), legacy),
        # Its index and sequence names would clash with the new table's.
        sql.SQL(_RENAME_LEGACY_RELATIONS),
        *(sql.SQL(statement) for statement in create_table_sql),
        # New rows get ids past the old ones from the first write on.
        sql.SQL(
            "SELECT setval(pg_get_serial_sequence({t}, 'id'),"
            " greatest((SELECT max(id) FROM {legacy}), 1))"
        ).format(t=sql.Literal(EVENTS_TABLE), legacy=legacy),
    ]
    conn.execute(sql.SQL("; ").join(swap))
    _rescue_root_rows(conn, lock_timeout)
    _copy_rows(conn, "event_id" in table.columns, progress)
    _drop_legacy_when_all_copied(conn)


def _rescue_root_rows(conn: psycopg.Connection[Any], lock_timeout: sql.Composable) -> None:
    """Move rows that writers put into the new hypertable's root table into its chunks.

    A COPY that was waiting for the swap's lock had been judged against the old, plain table
    by TimescaleDB (not a hypertable), so once the name led to the new table PostgreSQL's
    own COPY wrote into the hypertable's root, where no query sees them (TimescaleDB 2.23
    has no trigger to refuse it). The lock waits for every such writer to finish; later
    ones go through TimescaleDB and land in chunks.
    """
    events = sql.Identifier(EVENTS_TABLE)
    conn.execute(
        sql.SQL(
            "SET LOCAL lock_timeout = {timeout}; "
            "LOCK TABLE {t} IN SHARE ROW EXCLUSIVE MODE; "
            "WITH moved AS (DELETE FROM ONLY {t} RETURNING *) INSERT INTO {t} SELECT * FROM moved"
        ).format(timeout=lock_timeout, t=events)
    )


def interrupted_copy(conn: psycopg.Connection[Any]) -> AdoptionPlan | None:
    """The rest of a copy that was interrupted (the old table is still there), or None."""
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (LEGACY_TABLE,)).fetchone()
    if not (row and row[0]):
        return None
    return AdoptionPlan(
        Strategy.COPY,
        (f"an adoption was interrupted while copying rows: {LEGACY_TABLE} still exists",),
        (),
        (
            f"copy the rows of {LEGACY_TABLE} not yet in {EVENTS_TABLE}, a day at a time",
            f"check that every row is in {EVENTS_TABLE}, then drop {LEGACY_TABLE}",
        ),
    )


def resume_copy(
    conn: psycopg.Connection[Any],
    lock_timeout: sql.Composable,
    progress: Progress | None = None,
) -> None:
    """Finish an interrupted copy: the rows already copied are skipped."""
    has_event_id = conn.execute(
        "SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass(%s)"
        " AND attname = 'event_id' AND NOT attisdropped)",
        (LEGACY_TABLE,),
    ).fetchone()
    _rescue_root_rows(conn, lock_timeout)
    _copy_rows(conn, bool(has_event_id and has_event_id[0]), progress)
    _drop_legacy_when_all_copied(conn)


def _copy_rows(
    conn: psycopg.Connection[Any], has_event_id: bool, progress: Progress | None
) -> None:
    legacy = sql.Identifier(LEGACY_TABLE)
    # Each day's rows are found by an index on time; the renamed table takes no writes.
    conn.execute(
        sql.SQL('CREATE INDEX IF NOT EXISTS {} ON {} ("timestamp")').format(
            sql.Identifier(f"{LEGACY_TABLE}_time"), legacy
        )
    )
    bounds = conn.execute(
        sql.SQL('SELECT min("timestamp"), max("timestamp") FROM {}').format(legacy)
    ).fetchone()
    if bounds is None or bounds[0] is None:
        return
    days = _day_ranges(bounds[0], bounds[1])
    event_id = (
        sql.SQL("coalesce(event_id, gen_random_uuid())")
        if has_event_id
        else sql.SQL("gen_random_uuid()")
    )
    copy = sql.SQL(
        'INSERT INTO {t} (id, "timestamp", event_type, service, user_id, data, event_id)'
        ' SELECT id, "timestamp", event_type, service, user_id, data::jsonb, {event_id}'
        ' FROM {legacy} WHERE "timestamp" >= %s AND "timestamp" < %s'
        ' ON CONFLICT ("timestamp", id) DO NOTHING'
    ).format(t=sql.Identifier(EVENTS_TABLE), legacy=legacy, event_id=event_id)
    for done, (start, end) in enumerate(days):
        if progress is not None:
            progress("adopt: copying rows", done, len(days))
        conn.execute(copy, (start, end))
    if progress is not None:
        progress("adopt: copying rows", len(days), len(days))


def _drop_legacy_when_all_copied(conn: psycopg.Connection[Any]) -> None:
    missing = conn.execute(
        sql.SQL(
            "SELECT count(*) FROM {legacy} l WHERE NOT EXISTS (SELECT FROM {t} e"
            ' WHERE e."timestamp" = l."timestamp" AND e.id = l.id)'
        ).format(legacy=sql.Identifier(LEGACY_TABLE), t=sql.Identifier(EVENTS_TABLE))
    ).fetchone()
    if missing is None or missing[0]:
        raise MigrateError(
            f"{missing[0] if missing else '?'} rows of {LEGACY_TABLE} are not in "
            f"{EVENTS_TABLE} after the copy; it is kept. Run `analytics-migrate pre --adopt` "
            "again to copy what is missing."
        )
    # Kept if a view of the application's reads it: every row is in the new table anyway.
    with contextlib.suppress(psycopg.errors.DependentObjectsStillExist):
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(LEGACY_TABLE)))


# --- aggregates of the same names -------------------------------------------------------------

#: What a set-aside aggregate is renamed to: ``<name>`` + this.
BACKUP_SUFFIX: Final = "_before_adoption"


@dataclass(frozen=True, slots=True)
class ForeignAggregate:
    """A relation with one of our aggregates' names that the migrations did not create."""

    name: str
    #: ``continuous aggregate``, ``materialized view``, ``view`` or ``table``.
    kind: str
    columns: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.name} (a {self.kind} of {', '.join(self.columns)})"


class ForeignAggregates(MigrateError):
    """Relations hold our aggregates' names; ``post`` replaces them only when told to."""

    def __init__(self, found: list[ForeignAggregate]) -> None:
        self.found = found
        super().__init__(
            "these exist but were not created by analytics-migrate: "
            + "; ".join(str(f) for f in found)
            + ". `analytics-migrate post --replace-aggregates` (or `all --replace-aggregates`) "
            f"renames each to <name>{BACKUP_SUFFIX}, keeping its rows and stopping its refresh "
            "policy, then creates ours and backfills them from the raw events; drop the "
            "renamed ones once you no longer need their rows"
        )


def foreign_aggregates(conn: psycopg.Connection[Any], names: list[str]) -> list[ForeignAggregate]:
    """The relations of the search path named like one of ``names`` (call it before the
    migration that creates them)."""
    rows = conn.execute(
        """
        SELECT c.relname,
               CASE c.relkind WHEN 'm' THEN 'materialized view' WHEN 'v' THEN 'view'
                              ELSE 'table' END,
               array(SELECT attname::text FROM pg_attribute
                      WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped
                      ORDER BY attnum)
        FROM pg_class c
        WHERE c.relname = ANY(%s) AND c.relnamespace = current_schema()::regnamespace
          AND c.relkind IN ('r', 'p', 'v', 'm')
        ORDER BY c.relname
        """,
        (names,),
    ).fetchall()
    if not rows:
        return []
    # A continuous aggregate is a view to the catalog; TimescaleDB's own view tells them
    # apart (it exists only once the extension does).
    continuous: set[str] = set()
    if _has_timescaledb(conn):
        continuous = {
            str(name)
            for (name,) in conn.execute(
                "SELECT view_name FROM timescaledb_information.continuous_aggregates"
                " WHERE view_name = ANY(%s)",
                (names,),
            ).fetchall()
        }
    rows = [
        (name, "continuous aggregate" if name in continuous else kind, columns)
        for name, kind, columns in rows
    ]
    return [ForeignAggregate(str(name), str(kind), tuple(columns)) for name, kind, columns in rows]


def set_aside_aggregates(
    conn: psycopg.Connection[Any], found: list[ForeignAggregate], lock_timeout: sql.Composable
) -> None:
    """Rename each of ``found`` to ``<name>_before_adoption`` (its indexes too, whose names
    would clash with ours), and stop the refresh policy of a continuous aggregate; one
    transaction each."""
    for aggregate in found:
        backup = aggregate.name + BACKUP_SUFFIX
        kind = {
            "continuous aggregate": "MATERIALIZED VIEW",
            "materialized view": "MATERIALIZED VIEW",
            "view": "VIEW",
            "table": "TABLE",
        }[aggregate.kind]
        steps = [
            sql.SQL("SET LOCAL lock_timeout = {}").format(lock_timeout),
            sql.SQL("ALTER {} {} RENAME TO {}").format(
                sql.SQL(kind), sql.Identifier(aggregate.name), sql.Identifier(backup)
            ),
            sql.SQL(_RENAME_INDEXES).format(
                relation=sql.Literal(backup), prefix=sql.Literal(backup + "_")
            ),
        ]
        if aggregate.kind == "continuous aggregate":
            steps.append(
                sql.SQL("SELECT remove_continuous_aggregate_policy({}, if_exists => true)").format(
                    sql.Literal(backup)
                )
            )
        conn.execute(sql.SQL("; ").join(steps))


_RENAME_INDEXES: Final = """
DO $rename$
DECLARE
    found record;
    n int := 0;
BEGIN
    FOR found IN SELECT indexrelid::regclass AS name FROM pg_index
                  WHERE indrelid = to_regclass({relation})
    LOOP
        n := n + 1;
        EXECUTE format('ALTER INDEX %s RENAME TO %I', found.name, {prefix} || n);
    END LOOP;
END
$rename$"""


# --- shared ------------------------------------------------------------------------------------

_RENAME_LEGACY_RELATIONS: Final = f"""
DO $rename$
DECLARE
    related record;
    n int := 0;
BEGIN
    FOR related IN
        SELECT indexrelid::regclass AS name FROM pg_index
        WHERE indrelid = '{LEGACY_TABLE}'::regclass
    LOOP
        n := n + 1;
        EXECUTE format('ALTER INDEX %s RENAME TO %I', related.name, '{LEGACY_TABLE}_' || n);
    END LOOP;
    FOR related IN
        SELECT s.oid::regclass AS name FROM pg_class s
        JOIN pg_depend d ON d.objid = s.oid AND d.deptype IN ('a', 'i')
        WHERE s.relkind = 'S' AND d.refobjid = '{LEGACY_TABLE}'::regclass
    LOOP
        n := n + 1;
        EXECUTE format('ALTER SEQUENCE %s RENAME TO %I', related.name, '{LEGACY_TABLE}_' || n);
    END LOOP;
END
$rename$"""


def _has_nulls(conn: psycopg.Connection[Any], column: str) -> bool:
    row = conn.execute(
        sql.SQL("SELECT EXISTS (SELECT FROM {} WHERE {} IS NULL)").format(
            sql.Identifier(EVENTS_TABLE), sql.Identifier(column)
        )
    ).fetchone()
    return bool(row and row[0])


def _has_timescaledb(conn: psycopg.Connection[Any]) -> bool:
    """Whether the timescaledb extension exists in this database."""
    row = conn.execute(
        "SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'timescaledb')"
    ).fetchone()
    return bool(row and row[0])


def _is_hypertable(conn: psycopg.Connection[Any]) -> bool:
    if not _has_timescaledb(conn):
        return False
    found = conn.execute(
        "SELECT EXISTS (SELECT FROM timescaledb_information.hypertables"
        " WHERE hypertable_name = %s AND hypertable_schema = current_schema())",
        (EVENTS_TABLE,),
    ).fetchone()
    return bool(found and found[0])


def _chunk_interval(conn: psycopg.Connection[Any]) -> timedelta | None:
    row = conn.execute(
        "SELECT time_interval FROM timescaledb_information.dimensions"
        " WHERE hypertable_name = %s AND hypertable_schema = current_schema()"
        " AND dimension_number = 1",
        (EVENTS_TABLE,),
    ).fetchone()
    return row[0] if row else None


def _chunk_ranges(conn: psycopg.Connection[Any]) -> list[tuple[datetime, datetime]]:
    return [
        (start, end)
        for start, end in conn.execute(
            "SELECT range_start, range_end FROM timescaledb_information.chunks"
            " WHERE hypertable_name = %s AND hypertable_schema = current_schema()"
            " ORDER BY range_start",
            (EVENTS_TABLE,),
        ).fetchall()
    ]


def _day_ranges(first: datetime, last: datetime) -> list[tuple[datetime, datetime]]:
    start = first.replace(hour=0, minute=0, second=0, microsecond=0)
    ranges = []
    while start <= last:
        ranges.append((start, start + timedelta(days=1)))
        start += timedelta(days=1)
    return ranges


def _rows(table: EventsTable) -> str:
    return (
        "an unknown number of rows"
        if table.estimated_rows < 0
        else (f"{table.estimated_rows:,} rows")
    )


def _type_refusal(name: str, found: str, wanted: str) -> str:
    if name == "timestamp" and found == "timestamp without time zone":
        return (
            '"timestamp" is timestamp without time zone: which zone its values are in is not '
            f"known here. Convert it first: ALTER TABLE {EVENTS_TABLE} ALTER COLUMN "
            '"timestamp" TYPE timestamptz USING "timestamp" AT TIME ZONE \'UTC\' (or their zone)'
        )
    return f"column {name} is {found}; writers and readers need {wanted}: convert it first"
