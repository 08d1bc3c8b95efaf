"""`SqlSession` over a psycopg 3 connection to a real server."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import psycopg

from .sql_session import Params, Row, SqlError, StatementResult, affected_from_tag


def _sql_error(error: psycopg.Error) -> SqlError:
    diag = error.diag
    return SqlError(
        diag.message_primary or str(error),
        error.sqlstate,
        detail=diag.message_detail,
        hint=diag.message_hint,
    )


def _result(cursor: psycopg.Cursor[Any]) -> StatementResult:
    """The result of the statement `cursor` is on."""
    columns = tuple(c.name for c in cursor.description or ())
    rows = cursor.fetchall() if cursor.description is not None else []
    return StatementResult(
        columns=columns,
        rows=[tuple(row) for row in rows],
        affected=affected_from_tag(cursor.statusmessage),
    )


class PsycopgSession:
    """A `SqlSession` on an autocommit psycopg connection.

    Built from a DSN (`PsycopgSession.connect`), it owns the connection and closes it on
    `close()`; built from a connection, it only borrows it.
    """

    def __init__(self, connection: psycopg.Connection[Any], *, owned: bool = False) -> None:
        if not connection.autocommit:
            raise ValueError("PsycopgSession needs an autocommit connection, like PGlite's")
        self._connection = connection
        self._owned = owned

    @classmethod
    def connect(cls, dsn: str, *, connect_timeout_s: int = 10) -> PsycopgSession:
        """Connect to `dsn` in autocommit mode with the session time zone set to UTC."""
        connection = psycopg.connect(
            dsn, autocommit=True, connect_timeout=connect_timeout_s, options="-c TimeZone=UTC"
        )
        return cls(connection, owned=True)

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """The underlying connection, for what the protocol does not cover (COPY, pipelines)."""
        return self._connection

    def execute(self, sql: str) -> None:
        # No parameters: psycopg sends a simple query, so several statements are allowed and
        # run as one implicit transaction, as in PGlite's exec.
        try:
            self._connection.execute(sql)
        except psycopg.Error as error:
            raise _sql_error(error) from error

    def fetch(self, sql: str, params: Params | None = None) -> list[Row]:
        return self.fetch_result(sql, params).dicts()

    def fetch_result(self, sql: str, params: Params | None = None) -> StatementResult:
        try:
            with self._connection.cursor() as cursor:
                cursor.execute(sql, params)
                return _result(cursor)
        except psycopg.Error as error:
            raise _sql_error(error) from error

    def fetch_all_results(self, sql: str) -> list[StatementResult]:
        results: list[StatementResult] = []
        try:
            with self._connection.cursor() as cursor:
                cursor.execute(sql)
                while True:
                    results.append(_result(cursor))
                    if not cursor.nextset():
                        break
        except psycopg.Error as error:
            raise _sql_error(error) from error
        return results

    def close(self) -> None:
        """Close the connection if this session opened it."""
        if self._owned:
            self._connection.close()

    def __enter__(self) -> PsycopgSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
