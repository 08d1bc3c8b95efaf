"""What kind of TimescaleDB a database runs, and whether we can migrate it."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

import psycopg

from analytics_core.migrate.errors import MigrateError, PreflightError

__all__ = [
    "MINIMUM_TIMESCALEDB",
    "Edition",
    "EditionChoice",
    "ServerInfo",
    "check_preflight",
    "check_writable",
    "choose_edition",
    "edition_to_maintain",
    "inspect_server",
    "preflight_problems",
]

#: Oldest TimescaleDB we support: finalized continuous aggregates with FILTER and ordered-set
#: aggregates, real-time aggregation switches and `if_not_exists` on every policy function.
MINIMUM_TIMESCALEDB = (2, 13, 0)


class Edition(enum.StrEnum):
    """The TimescaleDB licence a server runs under, which decides what post-deploy builds."""

    #: Timescale License: continuous aggregates, compression, policies and jobs.
    COMMUNITY = "community"
    #: Apache 2 only (distribution packages, Azure Database for PostgreSQL): hypertables and
    #: time_bucket, but none of the above; we fall back to incrementally refreshed tables
    #: under views, and `maintain` (or pg_cron).
    APACHE = "apache"


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """Facts about a server, read without changing anything."""

    #: ``server_version`` as PostgreSQL reports it, e.g. "15.20 (Debian 15.20-0+deb12u1)".
    postgres_version: str
    #: Available (installable) TimescaleDB version, or None when the extension is absent.
    timescaledb_available: str | None
    #: Installed version in this database, or None before the first migration.
    timescaledb_installed: str | None
    #: ``timescaledb.license`` as this database reports it. NULL (None) until
    #: ``CREATE EXTENSION timescaledb`` has run in this database: with only the loader in
    #: ``shared_preload_libraries``, the licensed library is not loaded yet.
    license: str | None
    #: Whether timescaledb is in ``shared_preload_libraries`` (or linked into the server);
    #: None when this role can tell neither way (it may not read the setting and the loader
    #: left no trace it can see).
    preloaded: bool | None
    #: True on a hot standby (``pg_is_in_recovery()``): it can be read, never migrated.
    standby: bool = False

    @property
    def edition(self) -> Edition | None:
        """The edition this database runs, or None while it cannot be known (no extension)."""
        if self.license is None:
            return None
        return Edition.COMMUNITY if self.license == "timescale" else Edition.APACHE

    @property
    def timescaledb_version(self) -> str | None:
        """The installed version, else the one ``CREATE EXTENSION`` would install."""
        return self.timescaledb_installed or self.timescaledb_available


def _parse_version(text: str) -> tuple[int, int, int]:
    numbers = [int(part) for part in re.findall(r"\d+", text)[:3]]
    while len(numbers) < 3:
        numbers.append(0)
    return numbers[0], numbers[1], numbers[2]


def inspect_server(conn: psycopg.Connection[tuple[object, ...]]) -> ServerInfo:
    """Read the PostgreSQL and TimescaleDB facts a migration depends on.

    Read-only: works on a connection with ``default_transaction_read_only=on``.
    """
    # shared_preload_libraries is readable only by superusers and pg_read_all_settings
    # (pg_settings then simply has no row for it): without it, the settings only the loader
    # defines tell that timescaledb is preloaded.
    row = conn.execute(
        """
        SELECT current_setting('server_version') AS server_version,
               (SELECT default_version FROM pg_available_extensions
                 WHERE name = 'timescaledb') AS available,
               (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb') AS installed,
               current_setting('timescaledb.license', true) AS license,
               (SELECT setting FROM pg_settings
                 WHERE name = 'shared_preload_libraries') AS preload,
               EXISTS (SELECT FROM pg_settings WHERE name IN (
                 'timescaledb.bgw_launcher_poll_time', 'timescaledb.disable_load')) AS loader,
               pg_is_in_recovery() AS standby
        """
    ).fetchone()
    assert row is not None
    version, available, installed, license_name, preload, loader, standby = row
    preloaded: bool | None
    if preload is not None:
        libraries = {lib.strip() for lib in str(preload).split(",")}
        preloaded = any(lib.startswith("timescaledb") for lib in libraries)
    else:
        preloaded = True if loader else None
    # Builds that link TimescaleDB into the server (PGlite) load it without either.
    if license_name is not None:
        preloaded = True
    return ServerInfo(
        postgres_version=str(version),
        timescaledb_available=None if available is None else str(available),
        timescaledb_installed=None if installed is None else str(installed),
        license=None if license_name is None else str(license_name),
        preloaded=preloaded,
        standby=bool(standby),
    )


def preflight_problems(info: ServerInfo) -> tuple[str, ...]:
    """Why migrating this server could not succeed, in words; empty when it can.

    A preload that cannot be read (``preloaded is None``) is not a problem here: the role may
    simply not see the setting, and the migration itself will say if it is really missing.
    """
    version = info.timescaledb_version
    if version is None:
        return (
            "TimescaleDB is not available on this server. Install the timescaledb extension "
            f"(version {'.'.join(map(str, MINIMUM_TIMESCALEDB))} or newer) and add it to "
            "shared_preload_libraries.",
        )
    problems = []
    if info.preloaded is False:
        problems.append(
            "timescaledb is not in shared_preload_libraries. Add it to postgresql.conf "
            "(shared_preload_libraries = 'timescaledb') and restart PostgreSQL."
        )
    if _parse_version(version) < MINIMUM_TIMESCALEDB:
        minimum = ".".join(map(str, MINIMUM_TIMESCALEDB))
        problems.append(
            f"TimescaleDB {version} is older than {minimum}, the oldest version analytics-core "
            f"supports. Upgrade the extension (ALTER EXTENSION timescaledb UPDATE) first."
        )
    return tuple(problems)


def check_preflight(info: ServerInfo) -> None:
    """Raise PreflightError when migrating this server could not succeed."""
    problems = preflight_problems(info)
    if problems:
        raise PreflightError(" ".join(problems))
    check_writable(info)


def edition_to_maintain(info: ServerInfo) -> Edition:
    """The edition of a database that ``maintain`` or ``repair`` may change.

    Raises PreflightError on a standby and MigrateError before the extension exists.
    """
    check_writable(info)
    if info.edition is None:
        raise MigrateError(
            "the timescaledb extension is not created in this database: run "
            "`analytics-migrate all` first"
        )
    return info.edition


def check_writable(info: ServerInfo) -> None:
    """Raise PreflightError on a hot standby: nothing can be written there."""
    if info.standby:
        raise PreflightError(
            "this server is a hot standby (read-only, in recovery): run analytics-migrate "
            "against the primary; status works on a standby"
        )


@dataclass(frozen=True, slots=True)
class EditionChoice:
    """The edition to render migrations for, and why: read from the database or assumed."""

    edition: Edition
    #: True when the database could not say (no extension yet, or no database given).
    assumed: bool
    #: Why this edition, in words, e.g. "timescaledb.license is 'timescale'".
    reason: str


def choose_edition(info: ServerInfo | None, requested: Edition | None = None) -> EditionChoice:
    """The edition to show or plan for: ``requested`` if given, else the database's own.

    Before the extension exists in a database its licence cannot be read, so the edition is
    then *assumed* to be Community (what Timescale's packages, images and cloud run) and the
    reason says so; ``analytics-migrate all`` never relies on this: it reads the edition again
    once ``pre`` has created the extension.
    """
    if requested is not None:
        return EditionChoice(requested, assumed=False, reason="chosen with --edition")
    if info is not None and info.edition is not None:
        return EditionChoice(
            info.edition, assumed=False, reason=f"timescaledb.license is '{info.license}'"
        )
    return EditionChoice(
        Edition.COMMUNITY,
        assumed=True,
        reason="assumed"
        + (
            ": the timescaledb extension is not created in this database yet, so its licence "
            "cannot be read; `pre` creates it, and the edition read then decides what `post` "
            "builds"
            if info is not None
            else ": no database given"
        )
        + ". Pass --edition apache for the Apache edition's SQL",
    )
