"""Where the database is, and how to talk about it without leaking its password."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

__all__ = [
    "ENV_VARS",
    "MissingDatabaseUrl",
    "libpq_url",
    "mask_password",
    "resolve_database_url",
    "scrub",
    "yoyo_url",
]

#: Environment variables consulted, in order, when no URL is given explicitly.
ENV_VARS = ("DATABASE_URL", "PLATFORM_DATABASE_URL")

_SCHEMES = {"postgres", "postgresql", "postgresql+psycopg"}


class MissingDatabaseUrl(ValueError):
    """No database URL was given and none is set in the environment."""


def resolve_database_url(explicit: str | None, environ: Mapping[str, str] | None = None) -> str:
    """Return the URL from ``explicit``, else ``DATABASE_URL``, else ``PLATFORM_DATABASE_URL``.

    Raises MissingDatabaseUrl when none is set and ValueError for a URL that is not a
    PostgreSQL URL (the message shows it with the password masked).
    """
    env = os.environ if environ is None else environ
    url = explicit or next((env[name] for name in ENV_VARS if env.get(name)), None)
    if not url:
        raise MissingDatabaseUrl(
            "no database URL: pass --database-url or set DATABASE_URL (or PLATFORM_DATABASE_URL)"
        )
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _SCHEMES:
        raise ValueError(
            f"not a PostgreSQL URL: {mask_password(url)} "
            "(expected postgresql://user:password@host:port/database)"
        )
    return url


def libpq_url(url: str) -> str:
    """The URL as libpq (psycopg) accepts it: without SQLAlchemy-style driver suffixes."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql"))


def yoyo_url(url: str, lock_timeout: timedelta | None = None) -> str:
    """The URL as yoyo accepts it (its psycopg 3 backend), optionally with a lock_timeout.

    yoyo passes query parameters to the driver, and libpq applies ``options`` to every
    session opened from the URL.
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    if lock_timeout is not None:
        millis = max(1, round(lock_timeout.total_seconds() * 1000))
        options = [value for key, value in query if key == "options"]
        query = [(key, value) for key, value in query if key != "options"]
        query.append(("options", " ".join([*options, f"-c lock_timeout={millis}"])))
    return urlunsplit(parts._replace(scheme="postgresql+psycopg", query=urlencode(query)))


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
