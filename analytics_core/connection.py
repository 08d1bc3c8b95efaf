"""Where the database is, how to open a connection to it, and how to talk about it without
leaking its password. The one place that turns a URL into a connection for the CLIs and the
read side; the client builds its own long-lived connection from :func:`conninfo`.

Imports psycopg and nothing heavier: ``analytics-report`` loads this, not the migrations.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from analytics_core.errors import ConnectionFailed, DatabaseUrlError, MissingDatabaseUrl

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "ENV_VARS",
    "connect",
    "conninfo",
    "libpq_url",
    "mask_password",
    "resolve_database_url",
    "scrub",
    "with_database",
]

#: Environment variables consulted, in order, when no URL is given explicitly.
ENV_VARS = ("DATABASE_URL", "PLATFORM_DATABASE_URL")
#: Seconds a CLI waits for a connection (libpq counts whole seconds, at least 2).
DEFAULT_CONNECT_TIMEOUT = 10.0

_SCHEMES = {"postgres", "postgresql", "postgresql+psycopg"}


def resolve_database_url(explicit: str | None, environ: Mapping[str, str] | None = None) -> str:
    """Return the URL from ``explicit``, else ``DATABASE_URL``, else ``PLATFORM_DATABASE_URL``.

    Raises MissingDatabaseUrl when none is set and DatabaseUrlError (a ValueError) for a URL
    that is not a PostgreSQL URL; the message shows it with the password masked.
    """
    env = os.environ if environ is None else environ
    url = explicit or next((env[name] for name in ENV_VARS if env.get(name)), None)
    if not url:
        raise MissingDatabaseUrl(
            "no database URL: pass --database-url or set DATABASE_URL (or PLATFORM_DATABASE_URL)"
        )
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _SCHEMES:
        raise DatabaseUrlError(
            f"not a PostgreSQL URL: {mask_password(url)} "
            "(expected postgresql://user:password@host:port/database)"
        )
    return url


def libpq_url(url: str) -> str:
    """The URL as libpq (psycopg) accepts it: without SQLAlchemy-style driver suffixes."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in _SCHEMES:
        return url  # a key=value connection string
    return urlunsplit(parts._replace(scheme="postgresql"))


def with_database(dsn: str, dbname: str) -> str:
    """``dsn`` pointing at database ``dbname``; a URL stays a URL (and keeps its password)."""
    parts = urlsplit(dsn)
    if parts.scheme.lower() in _SCHEMES:
        return urlunsplit(parts._replace(path="/" + quote(dbname, safe="")))
    return make_conninfo(dsn, dbname=dbname)


def conninfo(url: str, **params: str) -> str:
    """``url`` as a libpq connection string with ``params`` set (they win over the URL's).

    Raises DatabaseUrlError without libpq's message, which can quote the password.
    """
    try:
        settings = conninfo_to_dict(libpq_url(url))
    except psycopg.ProgrammingError:
        raise DatabaseUrlError(
            "not a valid PostgreSQL connection string; expected "
            "postgresql://user:password@host:5432/dbname or 'host=... dbname=...'"
        ) from None
    settings.update(params)
    return make_conninfo("", **{key: value for key, value in settings.items() if value is not None})


def connect(
    url: str,
    *,
    application_name: str,
    read_only: bool = False,
    autocommit: bool = True,
    timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> psycopg.Connection[Any]:
    """Open a connection, autocommit by default; read-only sessions refuse every write.

    Raises ConnectionFailed (password scrubbed, and not chained: a driver error can quote
    it) when the server cannot be reached or refuses the login.
    """
    try:
        conn = psycopg.connect(
            libpq_url(url),
            autocommit=autocommit,
            connect_timeout=max(2, round(timeout)),
            application_name=application_name,
        )
    except psycopg.Error as error:
        raise ConnectionFailed(
            f"cannot connect to the database: {scrub(str(error).strip(), url)}"
        ) from None
    if read_only:
        conn.execute("SET default_transaction_read_only = on")
    return conn


def _password(url: str) -> str | None:
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return password


def mask_password(url: str) -> str:
    """The URL with its password replaced by ``***`` (unchanged when it has none)."""
    password = _password(url)
    if not password:
        return url
    parts = urlsplit(url)
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))


def scrub(text: str, url: str | None) -> str:
    """Remove the password of ``url`` from ``text`` (for error messages from drivers)."""
    if url is None:
        return text
    password = _password(url)
    if not password:
        return text
    text = text.replace(url, mask_password(url))
    for form in {password, unquote(password)}:
        text = text.replace(form, "***")
    return text
