"""Why a migration command could not do what it was asked.

Each class maps to one exit code of ``analytics-migrate`` so that callers of the library and
of the command line see the same distinctions.
"""

from __future__ import annotations

from analytics_core.errors import AnalyticsCoreError, ConnectionFailed

__all__ = [
    "ConnectionFailed",
    "DriftDetected",
    "LockTimeout",
    "MigrateError",
    "MigrationFailed",
    "PendingPreDeploy",
    "PreflightError",
]


class MigrateError(AnalyticsCoreError):
    """Base class: the command could not complete; nothing after the failure was applied."""


class PreflightError(MigrateError):
    """The server cannot run our schema (TimescaleDB missing, not preloaded, too old)."""


class PendingPreDeploy(MigrateError):
    """`post` was asked for while pre-deploy migrations are still pending."""

    def __init__(self, pending: list[str]) -> None:
        self.pending = pending
        super().__init__(
            "pre-deploy migrations are pending: "
            + ", ".join(pending)
            + ". Run `analytics-migrate pre` (or `all`) before `post`."
        )


class DriftDetected(MigrateError):
    """The database is not what the migrations say they built: refused unless allowed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "the schema has drifted: "
            + "; ".join(problems)
            + ". Run `analytics-migrate status` for details and `analytics-migrate repair` for "
            "schema objects; restore edited or missing migration files from the release that "
            "applied them; or pass --allow-drift to apply anyway."
        )


class LockTimeout(MigrateError):
    """Another deploy held the migration lock for longer than we were willing to wait."""


class MigrationFailed(MigrateError):
    """A migration's SQL failed. Earlier migrations stay applied; this one was not recorded."""

    def __init__(self, migration_id: str, sqlstate: str | None, message: str) -> None:
        self.migration_id = migration_id
        self.sqlstate = sqlstate
        self.database_message = message
        super().__init__(f"migration {migration_id} failed: [{sqlstate or '?????'}] {message}")
