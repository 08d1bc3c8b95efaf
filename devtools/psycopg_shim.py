"""Just enough of psycopg's Connection over a `SqlSession` to run our read-and-manage code
(`read_status`, `maintain`) on PGlite, whose only interface is the JSON-lines driver.

It covers what those functions use: `execute(query, params)` returning a cursor with
`fetchone`/`fetchall`/`description`, `cursor(row_factory=dict_row)`, `autocommit`, `broken`,
`closed`; database errors come out as the psycopg exception class of their SQLSTATE.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from devtools.sql_session import SqlError, SqlSession


class _Cursor:
    def __init__(self, session: SqlSession, row_factory: Callable[..., Any] | None) -> None:
        self._session = session
        self._dicts = row_factory is dict_row
        self._rows: list[Any] = []
        self.description: Sequence[str] | None = None
        self.rowcount = -1

    def execute(self, query: str | sql.Composable, params: Any = None) -> _Cursor:
        text = query if isinstance(query, str) else query.as_string(None)
        try:
            if params is None:
                # Several statements run as one implicit transaction; psycopg's cursor then
                # shows the first one's result.
                result = self._session.fetch_all_results(text)[0]
            else:
                result = self._session.fetch_result(text, params)
        except SqlError as error:
            raise psycopg.errors.lookup(error.sqlstate or "XX000")(error.message) from error
        self.description = result.columns or None
        # As psycopg: rows changed by INSERT/UPDATE/DELETE, else rows returned.
        self.rowcount = result.affected if not result.columns else len(result.rows)
        self._rows = result.dicts() if self._dicts else list(result.rows)
        return self

    def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows


class PsycopgShim:
    """Looks enough like an autocommit `psycopg.Connection` for `read_status` and `maintain`."""

    autocommit = True
    broken = False
    closed = False

    def __init__(self, session: SqlSession) -> None:
        self._session = session

    def cursor(self, row_factory: Callable[..., Any] | None = None) -> _Cursor:
        return _Cursor(self._session, row_factory)

    def execute(self, query: str | sql.Composable, params: Any = None) -> _Cursor:
        return _Cursor(self._session, None).execute(query, params)
