"""Throwaway databases on a development server: created empty, dropped with their sessions.

The tests, the benchmarks and the demo all make their databases here, so that one statement
creates them, one drops them, and one function (``analytics_core.connection.with_database``)
turns the server's DSN into theirs.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import psycopg
from psycopg import sql

from analytics_core.connection import ENV_VARS, with_database

__all__ = ["APP_DATABASE_URL_ENV", "ThrowawayDatabases"]

#: The application's own DSN variable (the first of ``analytics_core.connection.ENV_VARS``).
#: The demo and the benchmarks honour it and no other: the demo writes sample events into the
#: database it names, so it takes only the variable its documentation names.
APP_DATABASE_URL_ENV: Final = ENV_VARS[0]
#: Seconds to wait for the connection that creates and drops databases.
CONNECT_TIMEOUT_S: Final = 10


class ThrowawayDatabases:
    """Creates and drops databases named ``<prefix>_<purpose>`` on the server of ``admin_url``.

    ``admin_url`` is a DSN of that server whose role may create databases (and roles, for
    callers that make them through ``admin()``); the databases' DSNs are ``admin_url`` pointing
    at them. One autocommit connection does the work, opened on first use and reopened when it
    broke. Every call blocks for at most the connect timeout plus the statement's own time;
    database errors are psycopg's.
    """

    def __init__(self, admin_url: str, prefix: str) -> None:
        self.admin_url = admin_url
        self.prefix = prefix
        self._admin: psycopg.Connection[Any] | None = None

    def __enter__(self) -> ThrowawayDatabases:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def admin(self) -> psycopg.Connection[Any]:
        """The autocommit connection to ``admin_url``'s database, opened on first use."""
        if self._admin is None or self._admin.closed or self._admin.broken:
            self._admin = psycopg.connect(
                self.admin_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
            )
        return self._admin

    def create(self, purpose: str) -> str:
        """A new, empty database ``<prefix>_<purpose>`` (dropped first if it exists); its DSN."""
        name = f"{self.prefix}_{purpose}"
        self.drop(purpose)
        self.admin().execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return with_database(self.admin_url, name)

    def drop(self, purpose: str) -> None:
        """Drop ``<prefix>_<purpose>`` if it exists, ending its sessions."""
        name = sql.Identifier(f"{self.prefix}_{purpose}")
        self.admin().execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))

    @contextmanager
    def database(self, purpose: str | None = None, *, keep: bool = False) -> Iterator[str]:
        """A fresh database for the block, dropped afterwards unless ``keep``.

        Without ``purpose`` the name ends in 12 random hex digits, so that concurrent users of
        one server never meet.
        """
        purpose = secrets.token_hex(6) if purpose is None else purpose
        url = self.create(purpose)
        try:
            yield url
        finally:
            if not keep:
                self.drop(purpose)

    def close(self) -> None:
        """Close the admin connection (the databases stay); idempotent."""
        if self._admin is not None:
            self._admin.close()
            self._admin = None
