"""Does the schema that exists match what the migrations build for this edition?

The ledger only says which files ran. A database can still differ from what they build: the
Apache edition's aggregates (views over incrementally materialized rows) built on a
Community server because the edition was misread, plain materialized views left on an
Apache one, a database moved from Azure to Timescale, a policy removed or altered by hand.
:func:`check_schema` compares the catalog with what the applied migrations create on the
server's edition and names every difference; ``status`` reports them as drift and
``analytics-migrate repair`` fixes them.

Read-only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg

from analytics_core.migrate.edition import Edition
from analytics_core.migrate.incremental import KIND as INCREMENTAL
from analytics_core.migrate.incremental import incremental_aggregates
from analytics_core.migrate.ledger import CHECKSUM_TABLE, LEDGER_TABLE
from analytics_core.migrate.settings import Setting, effective_settings
from analytics_core.schema import (
    AGGREGATE_REFRESHES_TABLE,
    AGGREGATES,
    COMPRESS_ORDER_BY,
    COMPRESS_SEGMENT_BY,
    EVENTS_TABLE,
    MAINTENANCE_RUNS_TABLE,
    READER_ROLE,
    SETTINGS_TABLE,
    WRITER_ROLE,
)

__all__ = ["DriftKind", "SchemaDrift", "check_schema"]


class DriftKind(enum.StrEnum):
    """What kind of object differs; each kind has one repair."""

    HYPERTABLE = "hypertable"
    CHUNK_INTERVAL = "chunk interval"
    ROLE = "role"
    PRIVILEGES = "privileges"
    AGGREGATE = "aggregate"
    REAL_TIME = "real-time aggregation"
    REFRESH_POLICY = "refresh policy"
    COMPRESSION = "compression settings"
    COMPRESSION_POLICY = "compression policy"
    RETENTION_POLICY = "retention policy"


@dataclass(frozen=True, slots=True)
class SchemaDrift:
    """One object that is not what the applied migrations build on this edition."""

    kind: DriftKind
    #: The relation it concerns (a table or an aggregate).
    relation: str
    expected: str
    found: str

    @property
    def repairable(self) -> bool:
        """Whether ``analytics-migrate repair`` can fix it (a missing table it cannot)."""
        return self.kind is not DriftKind.HYPERTABLE

    def __str__(self) -> str:
        return f"{self.kind} of {self.relation}: expected {self.expected}, found {self.found}"


def check_schema(
    conn: psycopg.Connection[Any], edition: Edition, *, pre_applied: bool, post_applied: bool
) -> tuple[SchemaDrift, ...]:
    """Every difference between the catalog and what the applied phases build on ``edition``.

    A phase is checked only once all its migrations are applied (pending ones are reported as
    pending, not as drift). Chunk interval and policies are compared with the effective
    settings (``migrate.settings``): a setting a deploy changed is not drift.
    """
    if not pre_applied:
        return ()
    settings = {name: value.value for name, value in effective_settings(conn).items()}
    chunk_interval = settings[Setting.CHUNK_INTERVAL]
    hypertable = conn.execute(
        "SELECT h.compression_enabled,"
        " extract(epoch FROM d.time_interval)::float8"
        " FROM timescaledb_information.hypertables h"
        " LEFT JOIN timescaledb_information.dimensions d"
        "   ON d.hypertable_name = h.hypertable_name AND d.dimension_number = 1"
        " WHERE h.hypertable_name = %s",
        (EVENTS_TABLE,),
    ).fetchone()
    if hypertable is None:
        return (SchemaDrift(DriftKind.HYPERTABLE, EVENTS_TABLE, "a hypertable", "no hypertable"),)
    drift: list[SchemaDrift] = []
    chunk_seconds = hypertable[1]
    if chunk_seconds is not None and chunk_seconds != chunk_interval.total_seconds():
        drift.append(
            SchemaDrift(
                DriftKind.CHUNK_INTERVAL,
                EVENTS_TABLE,
                _interval(chunk_interval),
                _interval(timedelta(seconds=chunk_seconds)),
            )
        )
    drift += _roles(conn)
    if not post_applied:
        return tuple(drift)
    drift += _aggregates(conn, edition)
    if edition is Edition.COMMUNITY:
        drift += _compression(conn, compression_enabled=bool(hypertable[0]))
        drift += _policies(conn, settings)
    return tuple(drift)


def _roles(conn: psycopg.Connection[Any]) -> list[SchemaDrift]:
    """The least-privilege roles exist and hold exactly what the roles migration grants."""
    present = {
        str(name)
        for (name,) in conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", ([WRITER_ROLE, READER_ROLE],)
        ).fetchall()
    }
    drift = [
        SchemaDrift(DriftKind.ROLE, role, "a role (NOLOGIN)", "no role")
        for role in (WRITER_ROLE, READER_ROLE)
        if role not in present
    ]
    if WRITER_ROLE in present:
        row = conn.execute(
            "SELECT has_table_privilege(%(role)s, %(table)s, 'INSERT') AS may_insert,"
            " has_table_privilege(%(role)s, %(table)s, 'SELECT') AS may_select,"
            " has_sequence_privilege(%(role)s, pg_get_serial_sequence(%(table)s, 'id'),"
            "  'USAGE') AS may_use_sequence",
            {"role": WRITER_ROLE, "table": EVENTS_TABLE},
        ).fetchone()
        granted = dict(zip(_WRITER_GRANTS, row or (), strict=True))
        missing = [grant for grant, ok in granted.items() if not ok]
        if missing:
            drift.append(
                SchemaDrift(
                    DriftKind.PRIVILEGES,
                    WRITER_ROLE,
                    ", ".join(_WRITER_GRANTS),
                    "without " + ", ".join(missing),
                )
            )
    if READER_ROLE in present:
        ours = [
            EVENTS_TABLE,
            MAINTENANCE_RUNS_TABLE,
            SETTINGS_TABLE,
            AGGREGATE_REFRESHES_TABLE,
            LEDGER_TABLE,
            CHECKSUM_TABLE,
            *(aggregate.name for aggregate in AGGREGATES),
        ]
        unreadable = [
            str(name)
            for (name,) in conn.execute(
                "SELECT name FROM unnest(%s::text[]) AS name"
                " WHERE to_regclass(name) IS NOT NULL"
                "   AND NOT has_table_privilege(%s, to_regclass(name), 'SELECT') ORDER BY 1",
                (ours, READER_ROLE),
            ).fetchall()
        ]
        if unreadable:
            drift.append(
                SchemaDrift(
                    DriftKind.PRIVILEGES,
                    READER_ROLE,
                    "SELECT on the analytics tables and aggregates",
                    "no SELECT on " + ", ".join(unreadable),
                )
            )
    return drift


_WRITER_GRANTS = (
    f"INSERT on {EVENTS_TABLE}",
    f"SELECT on {EVENTS_TABLE}",
    "USAGE on its id sequence",
)


def _aggregates(conn: psycopg.Connection[Any], edition: Edition) -> list[SchemaDrift]:
    names = [aggregate.name for aggregate in AGGREGATES]
    continuous = dict(
        conn.execute(
            "SELECT view_name::text, materialized_only"
            " FROM timescaledb_information.continuous_aggregates WHERE view_name = ANY(%s)",
            (names,),
        ).fetchall()
    )
    materialized = {
        str(name)
        for (name,) in conn.execute(
            "SELECT matviewname FROM pg_matviews WHERE matviewname = ANY(%s)", (names,)
        ).fetchall()
    }
    views = {
        str(name)
        for (name,) in conn.execute(
            "SELECT viewname FROM pg_views WHERE viewname = ANY(%s)", (names,)
        ).fetchall()
    }
    incremental = incremental_aggregates(conn)
    expected = "continuous aggregate" if edition is Edition.COMMUNITY else INCREMENTAL
    drift = []
    for name in names:
        if name in continuous:
            found = "continuous aggregate"
        elif name in materialized:
            found = "materialized view"
        elif name in incremental:
            found = INCREMENTAL
        elif name in views:
            found = "view"
        else:
            found = "nothing"
        if found != expected:
            drift.append(SchemaDrift(DriftKind.AGGREGATE, name, expected, found))
        elif edition is Edition.COMMUNITY and continuous[name]:
            drift.append(
                SchemaDrift(
                    DriftKind.REAL_TIME,
                    name,
                    "materialized_only = false",
                    "materialized_only = true",
                )
            )
    return drift


def _compression(conn: psycopg.Connection[Any], *, compression_enabled: bool) -> list[SchemaDrift]:
    expected = _describe_compression(
        list(COMPRESS_SEGMENT_BY), [f"{column} {order}" for column, order in COMPRESS_ORDER_BY]
    )
    if not compression_enabled:
        return [SchemaDrift(DriftKind.COMPRESSION, EVENTS_TABLE, expected, "not enabled")]
    rows = conn.execute(
        "SELECT attname::text, segmentby_column_index, orderby_column_index, orderby_asc"
        " FROM timescaledb_information.compression_settings WHERE hypertable_name = %s",
        (EVENTS_TABLE,),
    ).fetchall()
    segment_by = [name for name, seg, _, _ in sorted(rows, key=lambda r: r[1] or 0) if seg]
    order_by = [
        f"{name} {'ASC' if asc else 'DESC'}"
        for name, _, order, asc in sorted(rows, key=lambda r: r[2] or 0)
        if order
    ]
    found = _describe_compression(segment_by, order_by)
    if found != expected:
        return [SchemaDrift(DriftKind.COMPRESSION, EVENTS_TABLE, expected, found)]
    return []


def _describe_compression(segment_by: list[str], order_by: list[str]) -> str:
    return f"segment by {', '.join(segment_by) or '-'}; order by {', '.join(order_by) or '-'}"


def _policies(
    conn: psycopg.Connection[Any], settings: dict[Setting, timedelta]
) -> list[SchemaDrift]:
    rows = conn.execute(
        """
        SELECT j.proc_name::text, coalesce(c.view_name, j.hypertable_name)::text,
               extract(epoch FROM j.schedule_interval)::float8,
               extract(epoch FROM (j.config ->> 'compress_after')::interval)::float8,
               extract(epoch FROM (j.config ->> 'drop_after')::interval)::float8,
               extract(epoch FROM (j.config ->> 'start_offset')::interval)::float8,
               extract(epoch FROM (j.config ->> 'end_offset')::interval)::float8
        FROM timescaledb_information.jobs j
        LEFT JOIN timescaledb_information.continuous_aggregates c
               ON c.materialization_hypertable_name = j.hypertable_name
        WHERE j.proc_name IN ('policy_compression', 'policy_retention',
                              'policy_refresh_continuous_aggregate')
        """
    ).fetchall()
    found: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for proc, relation, *values in rows:
        found.setdefault((proc, relation), []).append(tuple(values))
    continuous = {
        str(name)
        for (name,) in conn.execute(
            "SELECT view_name FROM timescaledb_information.continuous_aggregates"
        ).fetchall()
    }
    drift = [
        *_one_policy(
            found.get(("policy_compression", EVENTS_TABLE), []),
            DriftKind.COMPRESSION_POLICY,
            EVENTS_TABLE,
            {"compress after": (1, settings[Setting.COMPRESS_AFTER])},
        ),
        *_one_policy(
            found.get(("policy_retention", EVENTS_TABLE), []),
            DriftKind.RETENTION_POLICY,
            EVENTS_TABLE,
            {"drop after": (2, settings[Setting.RETENTION])},
        ),
    ]
    for aggregate in AGGREGATES:
        if aggregate.name not in continuous:
            continue  # reported as the aggregate's own drift; its rebuild adds the policy
        drift += _one_policy(
            found.get(("policy_refresh_continuous_aggregate", aggregate.name), []),
            DriftKind.REFRESH_POLICY,
            aggregate.name,
            {
                "every": (0, settings[Setting.REFRESH_SCHEDULE]),
                "start offset": (3, settings[Setting.REFRESH_START_OFFSET]),
                "end offset": (4, settings[Setting.REFRESH_END_OFFSET]),
            },
        )
    return drift


def _one_policy(
    jobs: list[tuple[Any, ...]],
    kind: DriftKind,
    relation: str,
    settings: dict[str, tuple[int, timedelta]],
) -> list[SchemaDrift]:
    """Drift unless exactly one job exists with each setting (name: (column, value))."""
    expected = ", ".join(f"{name} {_interval(value)}" for name, (_, value) in settings.items())
    if len(jobs) != 1:
        found = "no policy" if not jobs else f"{len(jobs)} policies"
        return [SchemaDrift(kind, relation, expected, found)]
    (job,) = jobs
    actual = ", ".join(
        f"{name} {_interval(timedelta(seconds=job[column])) if job[column] is not None else '-'}"
        for name, (column, _) in settings.items()
    )
    return [] if actual == expected else [SchemaDrift(kind, relation, expected, actual)]


def _interval(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"
