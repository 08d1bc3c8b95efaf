"""The exceptions analytics-core raises on purpose, under one root.

Catch :class:`AnalyticsCoreError` to handle everything this package raises by design; the
subclasses say what happened. Bad arguments stay ``TypeError`` and ``ValueError`` (as in the
standard library), and where one of ours is also a ``ValueError`` it derives from both, so
existing ``except ValueError`` handlers keep working.

This module imports nothing of ours, so every other module may import it.
"""

from __future__ import annotations

__all__ = [
    "AnalyticsCoreError",
    "ConnectionFailed",
    "DatabaseUrlError",
    "MissingDatabaseUrl",
    "SchemaNotMigrated",
]


class AnalyticsCoreError(Exception):
    """The root of every exception analytics-core raises on purpose."""


class DatabaseUrlError(AnalyticsCoreError, ValueError):
    """A database URL that is not a PostgreSQL URL. The message masks its password."""


class MissingDatabaseUrl(DatabaseUrlError):
    """No database URL was given and none is set in the environment."""


class ConnectionFailed(AnalyticsCoreError):
    """The database could not be reached. The message never contains a password."""


class SchemaNotMigrated(AnalyticsCoreError):
    """The read side found a table, view or function of the schema missing: the database
    has not been migrated (run ``analytics-migrate all``) or is migrated only in part."""
