"""The client's configuration: keyword arguments validated once, at construction.

Each check raises ``ValueError`` (or ``TypeError`` for a wrong type) naming the argument, the
value and what to pass instead, so a misconfiguration fails at start-up rather than at the
first write. A database URL that could never connect raises ``DatabaseUrlError`` (a
``ValueError``) without a chained driver error: libpq's messages can quote the password.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Final

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from analytics_core._checks import bounded_int, seconds
from analytics_core.connection import conninfo
from analytics_core.errors import DatabaseUrlError
from analytics_core.tracker import OnError

__all__ = ["ClientConfig"]

# The ``service`` column is VARCHAR(100).
_MAX_SERVICE_LENGTH: Final = 100
_MAX_BATCH_SIZE: Final = 100_000
# libpq counts connect_timeout in whole seconds and treats anything below 2 as 2.
_MIN_CONNECT_TIMEOUT_S: Final = 2
# Detect a peer that vanished without closing the connection (keepalives while waiting for
# the server, tcp_user_timeout while our data stays unacknowledged).
_TCP_DEFAULTS: Final = {
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
}


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """The validated settings of one ``AnalyticsClient``; see its docstring for each."""

    # Carries the password: kept out of repr().
    conninfo: str = field(repr=False)
    service: str
    batch_size: int
    flush_interval: float
    max_queue_size: int
    on_error: OnError | None
    shutdown_timeout: float
    connect_timeout: float
    statement_timeout: float
    max_backoff: float

    @classmethod
    def create(
        cls,
        database_url: object,
        *,
        service: object,
        batch_size: object,
        flush_interval: object,
        max_queue_size: object,
        on_error: object,
        shutdown_timeout: object,
        connect_timeout: object,
        statement_timeout: object,
        max_backoff: object,
        connect: bool,
    ) -> ClientConfig:
        """Validate every argument; ``connect=False`` (a disabled client) skips the DSN."""
        service = check_service(service)
        batch = bounded_int(batch_size, "batch_size", minimum=1, maximum=_MAX_BATCH_SIZE)
        queue_size = bounded_int(max_queue_size, "max_queue_size", minimum=1, maximum=2**31 - 1)
        if queue_size < batch:
            raise ValueError(
                f"max_queue_size ({queue_size}) must be at least batch_size ({batch}), "
                "or no batch could ever fill; raise max_queue_size or lower batch_size"
            )
        if on_error is not None and not callable(on_error):
            raise TypeError(
                f"on_error must be a callable(events, exception) or None, not "
                f"{type(on_error).__name__}"
            )
        connect_s = seconds(connect_timeout, "connect_timeout", allow_zero=False)
        statement_s = seconds(statement_timeout, "statement_timeout", allow_zero=False)
        config = cls(
            conninfo="",
            service=service,
            batch_size=batch,
            flush_interval=seconds(flush_interval, "flush_interval", allow_zero=False),
            max_queue_size=queue_size,
            on_error=on_error,  # checked callable above
            shutdown_timeout=seconds(shutdown_timeout, "shutdown_timeout"),
            connect_timeout=connect_s,
            statement_timeout=statement_s,
            max_backoff=seconds(max_backoff, "max_backoff", allow_zero=False),
        )
        if not connect:
            return config
        return _with_conninfo(config, database_url)

    @property
    def statement_timeout_ms(self) -> int:
        """``statement_timeout`` in the milliseconds PostgreSQL counts in (at least 1)."""
        return max(1, math.ceil(self.statement_timeout * 1000))


def _with_conninfo(config: ClientConfig, database_url: object) -> ClientConfig:
    if not isinstance(database_url, str):
        raise TypeError(f"database_url must be a str, not {type(database_url).__name__}")
    if not database_url.strip():
        raise DatabaseUrlError(
            "database_url is empty; pass a DSN such as "
            "postgresql://user:password@host:5432/dbname, or enabled=False to disable the client"
        )
    params = conninfo_to_dict(_checked(database_url))
    # Ours, whatever the DSN says: the encoded rows are UTF-8, and every wait is bounded.
    params["client_encoding"] = "UTF8"
    params["connect_timeout"] = str(max(_MIN_CONNECT_TIMEOUT_S, math.ceil(config.connect_timeout)))
    # The DSN's own choices win for these.
    params.setdefault("application_name", f"analytics-core ({config.service})"[:63])
    for key, value in _TCP_DEFAULTS.items():
        params.setdefault(key, value)
    params.setdefault("tcp_user_timeout", str(config.statement_timeout_ms))
    return replace(config, conninfo=make_conninfo("", **params))


def _checked(database_url: str) -> str:
    """``database_url`` as a libpq connection string, refused if it could never connect.

    A string libpq cannot parse, a port that is not a number, an unknown sslmode or a
    connect_timeout that is not a whole number raise ``DatabaseUrlError`` at once, rather than
    being retried as if the database were away until every event is dropped.
    """
    refused: str | None = None
    try:
        checked = conninfo(database_url)
    except DatabaseUrlError as exc:
        refused = str(exc)
    if refused is not None:
        # Raised anew outside the except block, so the error carries no __context__: the
        # parser's exception behind it can quote the password, and tracebacks and error
        # trackers print every exception of the chain.
        raise DatabaseUrlError(f"database_url: {refused}")
    return checked


def check_service(service: object) -> str:
    """``service`` if it fits the ``service`` column; else ``TypeError`` or ``ValueError``."""
    if not isinstance(service, str):
        raise TypeError(f"service must be a str, not {type(service).__name__}")
    if not 1 <= len(service) <= _MAX_SERVICE_LENGTH or "\x00" in service:
        raise ValueError(
            f"service must be 1 to {_MAX_SERVICE_LENGTH} characters without NUL, "
            f"got {len(service)} characters; use a short name such as 'platform'"
        )
    return service
