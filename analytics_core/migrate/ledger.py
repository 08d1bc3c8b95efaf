"""Which migrations a database has applied, when, and from which file content.

Read-only, so that ``status`` and ``dry-run`` work on a read-only connection. yoyo writes the
ledger (``_yoyo_migration``); the runner writes our checksum table beside it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from analytics_core.migrate.sources import MigrationFile

__all__ = ["CHECKSUM_TABLE", "LEDGER_TABLE", "Ledger", "read_ledger"]

LEDGER_TABLE = "_yoyo_migration"
CHECKSUM_TABLE = "analytics_migration_checksums"


@dataclass(frozen=True, slots=True)
class Ledger:
    """Applied migration ids with their time (UTC), and the checksum recorded for each."""

    applied: dict[str, datetime] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)

    def edited(self, files: Iterable[MigrationFile]) -> tuple[str, ...]:
        """Applied migrations whose file changed since it was applied."""
        return tuple(
            m.id
            for m in files
            if m.id in self.applied and self.checksums.get(m.id, m.checksum) != m.checksum
        )

    def unknown(self, files: Iterable[MigrationFile]) -> tuple[str, ...]:
        """Applied migrations with no file here: deleted, renamed, or from a newer release."""
        known = {m.id for m in files}
        return tuple(sorted(mid for mid in self.applied if mid not in known))


def _table_exists(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def read_ledger(conn: psycopg.Connection[Any]) -> Ledger:
    """Read the ledger; an empty one when nothing was ever applied."""
    ledger = Ledger()
    if _table_exists(conn, LEDGER_TABLE):
        rows = conn.execute(
            sql.SQL("SELECT migration_id, applied_at_utc FROM {}").format(
                sql.Identifier(LEDGER_TABLE)
            )
        ).fetchall()
        for migration_id, applied_at in rows:
            # yoyo stores naive UTC timestamps.
            ledger.applied[str(migration_id)] = applied_at.replace(tzinfo=UTC)
    if _table_exists(conn, CHECKSUM_TABLE):
        rows = conn.execute(
            sql.SQL("SELECT migration_id, sha256 FROM {}").format(sql.Identifier(CHECKSUM_TABLE))
        ).fetchall()
        ledger.checksums.update({str(mid): str(sha) for mid, sha in rows})
    return ledger
