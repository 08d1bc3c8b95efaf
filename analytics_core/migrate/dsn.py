"""The URL as yoyo takes it. Resolving, masking and opening connections live in
:mod:`analytics_core.connection`; their names stay importable from here."""

from __future__ import annotations

from datetime import timedelta
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from analytics_core.connection import (
    ENV_VARS,
    libpq_url,
    mask_password,
    resolve_database_url,
    scrub,
)
from analytics_core.errors import MissingDatabaseUrl

__all__ = [
    "ENV_VARS",
    "MIGRATE_ENV_VARS",
    "MissingDatabaseUrl",
    "libpq_url",
    "mask_password",
    "resolve_database_url",
    "scrub",
    "yoyo_url",
]

#: Where ``analytics-migrate`` looks for its URL when none is given, in order: a URL of its
#: own first, so that migrations can bypass a transaction pooler the application goes through.
MIGRATE_ENV_VARS: Final = ("ANALYTICS_MIGRATE_DATABASE_URL", *ENV_VARS)


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
