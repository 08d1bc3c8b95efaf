"""Where the database is, how to open a connection to it, and how to talk about it without
leaking its password. The one place that turns a URL into a connection for the CLIs and the
read side; the client builds its own long-lived connection from :func:`conninfo`.

Imports psycopg and nothing heavier: ``analytics-report`` loads this, not the migrations.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Final
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from analytics_core.errors import ConnectionFailed, DatabaseUrlError, MissingDatabaseUrl

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "ENV_VARS",
    "READ_LOCK_TIMEOUT",
    "READ_STATEMENT_TIMEOUT",
    "connect",
    "conninfo",
    "libpq_url",
    "mask_password",
    "read_transaction",
    "resolve_database_url",
    "scrub",
    "with_database",
]

#: Environment variables consulted, in order, when no URL is given explicitly.
ENV_VARS = ("DATABASE_URL", "PLATFORM_DATABASE_URL")
#: Seconds a CLI waits for a connection (libpq counts whole seconds, at least 2).
DEFAULT_CONNECT_TIMEOUT = 10.0
#: Bounds of every statement of a read-only CLI session (``status``, ``dry-run``, the
#: reports): how long it may run, and wait for a lock, so that none hangs behind a long
#: transaction on the events table.
READ_STATEMENT_TIMEOUT = timedelta(seconds=60)
READ_LOCK_TIMEOUT = timedelta(seconds=5)

_SCHEMES = {"postgres", "postgresql", "postgresql+psycopg"}


def resolve_database_url(
    explicit: str | None,
    environ: Mapping[str, str] | None = None,
    names: Sequence[str] = ENV_VARS,
) -> str:
    """Return the URL from ``explicit``, else from the first of the environment variables
    ``names`` that is set (by default ``DATABASE_URL``, then ``PLATFORM_DATABASE_URL``).

    Raises MissingDatabaseUrl when none is set and DatabaseUrlError (a ValueError) for a URL
    that is not a PostgreSQL URL; the message shows it with the password masked.
    """
    env = os.environ if environ is None else environ
    url = explicit or next((env[name] for name in names if env.get(name)), None)
    if not url:
        raise MissingDatabaseUrl(f"no database URL: pass --database-url or set {_either(names)}")
    if not _is_keyword_dsn(url) and urlsplit(url).scheme.lower() not in _SCHEMES:
        raise DatabaseUrlError(
            f"not a PostgreSQL URL: {mask_password(url)} "
            "(expected postgresql://user:password@host:port/database or "
            "'host=... dbname=...')"
        )
    conninfo(url)  # DatabaseUrlError, without echoing the URL, when it could never connect
    return url


def _either(names: Sequence[str]) -> str:
    """``A`` / ``A (or B)`` / ``A (or B, or C)``: the variables in the order they are read."""
    first, *rest = names
    return first + (f" (or {', or '.join(rest)})" if rest else "")


def _is_keyword_dsn(dsn: str) -> bool:
    """``host=... dbname=...`` (libpq's keyword form) rather than a URL."""
    return "://" not in dsn and "=" in dsn


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

    Raises DatabaseUrlError, without libpq's message (it can quote the password), for a
    string libpq cannot parse and for settings that could never connect (a port that is not
    a number, an unknown sslmode): retrying those would only waste the caller's time.
    """
    try:
        settings = conninfo_to_dict(libpq_url(url))
    except psycopg.ProgrammingError:
        raise DatabaseUrlError(
            "not a valid PostgreSQL connection string; expected "
            "postgresql://user:password@host:5432/dbname or 'host=... dbname=...'"
        ) from None
    settings.update(params)
    _check_settings(settings)
    return make_conninfo("", **{key: value for key, value in settings.items() if value is not None})


# Where libpq refuses anything else, a value outside these could never connect.
_CHOICES: Final = {
    "sslmode": frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}),
    "gssencmode": frozenset({"disable", "prefer", "require"}),
    "target_session_attrs": frozenset(
        {"any", "read-write", "read-only", "primary", "standby", "prefer-standby"}
    ),
}


def _check_settings(settings: Mapping[str, Any]) -> None:
    for port in str(settings.get("port") or "").split(","):
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise DatabaseUrlError(f"port {port!r} in the database URL is not a port number")
    for name, choices in _CHOICES.items():
        value = settings.get(name)
        if value is not None and value not in choices:
            raise DatabaseUrlError(
                f"{name} {value!r} in the database URL is not one of {', '.join(sorted(choices))}"
            )
    timeout = settings.get("connect_timeout")
    if timeout is not None and not str(timeout).lstrip("-").isdigit():
        raise DatabaseUrlError(
            f"connect_timeout {timeout!r} in the database URL is not a whole number of seconds"
        )


def connect(
    url: str,
    *,
    application_name: str,
    autocommit: bool = True,
    timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> psycopg.Connection[Any]:
    """Open a connection, autocommit by default, that is safe behind a transaction pooler.

    It sets no session state (read-only mode and timeouts are set per transaction by
    :func:`read_transaction`) and prepares no statements on the server (a pooler such as
    PgBouncer in transaction mode hands each transaction to another server session).
    ``timeout`` bounds the connection attempt unless the URL sets ``connect_timeout``.
    Raises ConnectionFailed (password scrubbed, and not chained: a driver error can quote
    it) when the server cannot be reached or refuses the login.
    """
    params: dict[str, str] = {"application_name": application_name}
    if "connect_timeout" not in _settings(url):
        params["connect_timeout"] = str(max(2, round(timeout)))
    try:
        return psycopg.connect(
            conninfo(url, **params), autocommit=autocommit, prepare_threshold=None
        )
    except psycopg.Error as error:
        raise ConnectionFailed(
            f"cannot connect to the database: {scrub(str(error).strip(), url)}"
        ) from None


@contextmanager
def read_transaction(
    conn: psycopg.Connection[Any],
    *,
    statement_timeout: timedelta = READ_STATEMENT_TIMEOUT,
    lock_timeout: timedelta = READ_LOCK_TIMEOUT,
) -> Iterator[psycopg.Connection[Any]]:
    """One read-only transaction on ``conn`` (autocommit, outside a transaction) with its
    statements and lock waits bounded; everything it sets ends with it, so nothing changes
    the session a pooler hands to its next user. Its reads see one snapshot."""
    with conn.transaction():
        conn.execute("SET TRANSACTION READ ONLY")
        conn.execute(
            "SELECT set_config('statement_timeout', %s, true),"
            " set_config('lock_timeout', %s, true)",
            (_milliseconds(statement_timeout), _milliseconds(lock_timeout)),
        )
        yield conn


def _milliseconds(duration: timedelta) -> str:
    return f"{max(1, round(duration.total_seconds() * 1000))}ms"


def _settings(url: str) -> dict[str, Any]:
    try:
        return conninfo_to_dict(libpq_url(url))
    except psycopg.ProgrammingError:
        return {}


def _password(dsn: str) -> str | None:
    """The password a DSN carries: in a URL's user info or query, or a keyword DSN's field."""
    if _is_keyword_dsn(dsn):
        match = _KEYWORD_PASSWORD.search(dsn)
        return _unquote_keyword(match.group(1)) if match else None
    try:
        parts = urlsplit(dsn)
        password = parts.password
    except ValueError:
        return None
    if password:
        return password
    query = dict(parse_qsl(parts.query))
    return query.get("password") or None


def mask_password(dsn: str) -> str:
    """The DSN with its password field replaced by ``***`` (unchanged when it has none):
    a URL's user info and ``password=`` query parameter, or a keyword DSN's ``password``."""
    if _is_keyword_dsn(dsn):
        return _KEYWORD_PASSWORD.sub("password=***", dsn)
    try:
        parts = urlsplit(dsn)
        has_password = parts.password is not None
    except ValueError:
        return dsn
    if has_password:
        userinfo, _, hostinfo = parts.netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        parts = parts._replace(netloc=f"{user}:***@{hostinfo}")
    if "password=" in parts.query:
        parts = parts._replace(query=_QUERY_PASSWORD.sub(r"\1***", parts.query))
    return urlunsplit(parts)


def scrub(text: str, url: str | None) -> str:
    """``text`` (a driver's error message) without the password of ``url``.

    The DSN itself is masked wherever it appears, and so is the password's own text where a
    driver quotes it; a password shorter than 4 characters is masked only inside the DSN,
    as masking every occurrence of, say, ``e`` would garble the message and protect nothing.
    """
    if url is None:
        return text
    password = _password(url)
    if not password:
        return text
    text = text.replace(url, mask_password(url))
    if len(password) >= _MIN_BARE_PASSWORD:
        for form in {password, unquote(password), quote(password, safe="")}:
            text = text.replace(form, "***")
    return text


_MIN_BARE_PASSWORD = 4
# password=value or password='quoted value' in a keyword DSN; \' escapes a quote inside.
_KEYWORD_PASSWORD = re.compile(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")
_QUERY_PASSWORD = re.compile(r"((?:^|&)password=)[^&]*")


def _unquote_keyword(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value
