"""Everything a deploy pipeline or an operator asks about the schema, read in one pass.

Read-only throughout: ``status`` must work on a replica or with
``default_transaction_read_only=on``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from analytics_core.migrate.edition import Edition, ServerInfo, inspect_server
from analytics_core.migrate.ledger import read_ledger
from analytics_core.migrate.sources import MigrationFile, Phase, load_migrations
from analytics_core.schema import AGGREGATES, EVENTS_TABLE

__all__ = [
    "AggregateStatus",
    "AppliedMigration",
    "Feature",
    "HypertableStatus",
    "JobStatus",
    "PhaseStatus",
    "SchemaStatus",
    "read_status",
]


@dataclass(frozen=True, slots=True)
class AppliedMigration:
    id: str
    applied_at: datetime
    #: True when the file changed after it was applied (or is gone): the database no longer
    #: matches what the repository says it ran.
    drifted: bool


@dataclass(frozen=True, slots=True)
class PhaseStatus:
    phase: Phase
    applied: tuple[AppliedMigration, ...]
    pending: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Feature:
    """How one capability is provided on this server."""

    name: str
    #: "native", "fallback" (our replacement on the Apache edition) or "unavailable".
    mode: str
    detail: str


@dataclass(frozen=True, slots=True)
class HypertableStatus:
    chunks: int
    compressed_chunks: int
    total_bytes: int
    #: Bytes before / after compression of the compressed chunks, when any are compressed.
    before_compression_bytes: int | None
    after_compression_bytes: int | None

    @property
    def compression_ratio(self) -> float | None:
        if not self.before_compression_bytes or not self.after_compression_bytes:
            return None
        return self.before_compression_bytes / self.after_compression_bytes


@dataclass(frozen=True, slots=True)
class JobStatus:
    job_id: int
    kind: str
    relation: str
    schedule_interval: str
    last_run_at: datetime | None
    last_run_status: str | None
    next_start: datetime | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class AggregateStatus:
    name: str
    #: "continuous aggregate" or "materialized view"; None when it does not exist yet.
    kind: str | None
    #: Up to where the aggregate is materialized (continuous aggregates only).
    watermark: datetime | None
    #: The newest bucket it holds.
    latest_bucket: datetime | None


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    server: ServerInfo
    phases: tuple[PhaseStatus, ...]
    features: tuple[Feature, ...]
    hypertable: HypertableStatus | None
    jobs: tuple[JobStatus, ...]
    aggregates: tuple[AggregateStatus, ...]

    @property
    def pending(self) -> tuple[str, ...]:
        return tuple(mid for phase in self.phases for mid in phase.pending)

    @property
    def drifted(self) -> tuple[str, ...]:
        return tuple(m.id for phase in self.phases for m in phase.applied if m.drifted)

    @property
    def up_to_date(self) -> bool:
        return not self.pending and not self.drifted

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601 strings)."""
        document: dict[str, Any] = _jsonable(dataclasses.asdict(self))
        return document | {
            "pending": list(self.pending),
            "drifted": list(self.drifted),
            "up_to_date": self.up_to_date,
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def read_status(
    conn: psycopg.Connection[Any],
    migrations: dict[Phase, list[MigrationFile]] | None = None,
) -> SchemaStatus:
    """Collect the schema's status. Changes nothing."""
    files = migrations or load_migrations()
    server = inspect_server(conn)
    ledger = read_ledger(conn)
    phases = []
    for phase in Phase:
        applied, pending = [], []
        for migration in files[phase]:
            if migration.id in ledger.applied:
                recorded = ledger.checksums.get(migration.id)
                applied.append(
                    AppliedMigration(
                        migration.id,
                        ledger.applied[migration.id],
                        drifted=recorded is not None and recorded != migration.checksum,
                    )
                )
            else:
                pending.append(migration.id)
        phases.append(PhaseStatus(phase, tuple(applied), tuple(pending)))
    installed = server.timescaledb_installed is not None
    hypertable = _hypertable(conn) if installed else None
    return SchemaStatus(
        server=server,
        phases=tuple(phases),
        features=_features(server),
        hypertable=hypertable,
        jobs=_jobs(conn) if installed and server.edition is Edition.COMMUNITY else (),
        aggregates=_aggregates(conn, server) if hypertable is not None else (),
    )


def _features(server: ServerInfo) -> tuple[Feature, ...]:
    if server.edition is Edition.COMMUNITY:
        return (
            Feature("compression", "native", "compression policy after 7 days"),
            Feature("retention", "native", "retention policy drops chunks after 90 days"),
            Feature("aggregates", "native", "continuous aggregates, hourly refresh policies"),
        )
    return (
        Feature("compression", "unavailable", "not in the Apache edition of TimescaleDB"),
        Feature("retention", "fallback", "`analytics-migrate maintain` drops chunks > 90 days"),
        Feature("aggregates", "fallback", "materialized views refreshed by `maintain`"),
    )


def _hypertable(conn: psycopg.Connection[Any]) -> HypertableStatus | None:
    cur = conn.cursor(row_factory=dict_row)
    exists = cur.execute(
        "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = %s",
        (EVENTS_TABLE,),
    ).fetchone()
    if exists is None:
        return None
    row = cur.execute(
        """
        SELECT count(*) AS chunks,
               count(*) FILTER (WHERE is_compressed) AS compressed,
               hypertable_size(%s::regclass) AS total_bytes
        FROM timescaledb_information.chunks WHERE hypertable_name = %s
        """,
        (EVENTS_TABLE, EVENTS_TABLE),
    ).fetchone()
    assert row is not None
    before = after = None
    if row["compressed"]:
        stats = cur.execute(
            "SELECT sum(before_compression_total_bytes) AS before,"
            " sum(after_compression_total_bytes) AS after"
            " FROM hypertable_compression_stats(%s::regclass)",
            (EVENTS_TABLE,),
        ).fetchone()
        if stats is not None:
            before, after = stats["before"], stats["after"]
    return HypertableStatus(
        chunks=int(row["chunks"]),
        compressed_chunks=int(row["compressed"]),
        total_bytes=int(row["total_bytes"] or 0),
        before_compression_bytes=None if before is None else int(before),
        after_compression_bytes=None if after is None else int(after),
    )


def _jobs(conn: psycopg.Connection[Any]) -> tuple[JobStatus, ...]:
    cur = conn.cursor(row_factory=dict_row)
    rows = cur.execute(
        """
        SELECT j.job_id, j.proc_name, j.hypertable_name, j.schedule_interval::text AS schedule,
               s.last_run_started_at, s.last_run_status, s.next_start,
               (SELECT e.err_message FROM timescaledb_information.job_errors e
                 WHERE e.job_id = j.job_id ORDER BY e.finish_time DESC LIMIT 1) AS last_error
        FROM timescaledb_information.jobs j
        LEFT JOIN timescaledb_information.job_stats s USING (job_id)
        WHERE j.job_id >= 1000
        ORDER BY j.job_id
        """
    ).fetchall()
    names = _materialization_names(conn)
    return tuple(
        JobStatus(
            job_id=row["job_id"],
            kind=str(row["proc_name"]).removeprefix("policy_"),
            relation=names.get(str(row["hypertable_name"]), str(row["hypertable_name"])),
            schedule_interval=row["schedule"],
            last_run_at=row["last_run_started_at"],
            last_run_status=row["last_run_status"],
            next_start=row["next_start"],
            last_error=row["last_error"],
        )
        for row in rows
    )


def _materialization_names(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """Internal materialization hypertable name -> continuous aggregate name."""
    rows = conn.execute(
        "SELECT materialization_hypertable_name, view_name"
        " FROM timescaledb_information.continuous_aggregates"
    ).fetchall()
    return {str(internal): str(view) for internal, view in rows}


def _aggregates(conn: psycopg.Connection[Any], server: ServerInfo) -> tuple[AggregateStatus, ...]:
    continuous: set[str] = set()
    if server.edition is Edition.COMMUNITY:
        continuous = set(_materialization_names(conn).values())
    matviews = {
        str(name) for (name,) in conn.execute("SELECT matviewname FROM pg_matviews").fetchall()
    }
    result = []
    for aggregate in AGGREGATES:
        kind: str | None = None
        watermark = latest = None
        if aggregate.name in continuous:
            kind = "continuous aggregate"
            row = conn.execute(
                """
                SELECT CASE WHEN isfinite(w) THEN w END
                FROM _timescaledb_catalog.continuous_agg h,
                     _timescaledb_functions.to_timestamp(
                         _timescaledb_functions.cagg_watermark(h.mat_hypertable_id)) AS w
                WHERE h.user_view_name = %s
                """,
                (aggregate.name,),
            ).fetchone()
            watermark = row[0] if row else None
        elif aggregate.name in matviews:
            kind = "materialized view"
        if kind is not None and _is_populated(conn, aggregate.name):
            row = conn.execute(
                sql.SQL("SELECT max({}) FROM {}").format(
                    sql.Identifier(aggregate.time_column),
                    sql.Identifier(aggregate.name),
                )
            ).fetchone()
            latest = row[0] if row else None
        result.append(AggregateStatus(aggregate.name, kind, watermark, latest))
    return tuple(result)


def _is_populated(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute(
        "SELECT coalesce((SELECT ispopulated FROM pg_matviews WHERE matviewname = %s), true)",
        (name,),
    ).fetchone()
    return bool(row and row[0])
