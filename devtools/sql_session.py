"""The SQL surface that tests share between engines: one protocol, one result type, one error.

A test written against `SqlSession` runs unchanged on a real server (`PsycopgSession`) and on
PGlite (`PGliteSession`). Both follow psycopg's rules so results compare equal across engines:

- `execute(sql)` sends `sql` as one simple-protocol query. It may hold several statements,
  which run as one implicit transaction (so `CALL refresh_continuous_aggregate(...)` must be
  sent on its own). No placeholder processing: `%` is literal.
- `fetch(sql, params)` runs one statement and returns rows as dicts, values being the Python
  types psycopg loads. With `params` (even empty), `sql` has psycopg-style placeholders (`%s`,
  `%(name)s`; `%%` for a literal `%`); without, `%` is literal, as in psycopg's `execute(sql)`.
- `fetch_result(sql, params)` is `fetch` returning the statement's `StatementResult`: rows as
  tuples, so columns of the same name each keep their value, as in a psycopg cursor.
- `fetch_all_results(sql)` is `execute` that also returns every statement's result.
- Database errors raise `SqlError` carrying the SQLSTATE.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias

Params: TypeAlias = Sequence[object] | Mapping[str, object]
Row: TypeAlias = dict[str, object]


class SqlError(Exception):
    """The database rejected a statement.

    `sqlstate` is the five-character SQLSTATE (e.g. "42P01"), or None when the engine gave none.
    """

    def __init__(
        self,
        message: str,
        sqlstate: str | None,
        *,
        detail: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message if sqlstate is None else f"{message} (SQLSTATE {sqlstate})")
        self.message = message
        self.sqlstate = sqlstate
        self.detail = detail
        self.hint = hint


@dataclass(frozen=True)
class StatementResult:
    """One statement's outcome.

    `columns` is empty for statements that return no rows. `affected` is the row count from the
    command tag of INSERT, UPDATE, DELETE, MERGE and COPY, and 0 for every other statement
    (SELECT included): that is what both engines can report identically.
    """

    columns: tuple[str, ...]
    rows: list[tuple[object, ...]]
    affected: int

    def dicts(self) -> list[Row]:
        """The rows as dicts keyed by column name (a later duplicate name wins)."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


class SqlSession(Protocol):
    """A connection-like handle on one database, in autocommit mode."""

    def execute(self, sql: str) -> None:
        """Run `sql` (one or more statements); raise `SqlError` if the database rejects it."""
        ...

    def fetch(self, sql: str, params: Params | None = None) -> list[Row]:
        """Run one statement (placeholders only with `params`); return its rows as dicts."""
        ...

    def fetch_result(self, sql: str, params: Params | None = None) -> StatementResult:
        """Run one statement like `fetch`; return its result, rows as tuples."""
        ...

    def fetch_all_results(self, sql: str) -> list[StatementResult]:
        """Run `sql` like `execute` and return one result per statement, in order."""
        ...


_TAG_COUNT_POSITION = {"INSERT": 2, "UPDATE": 1, "DELETE": 1, "MERGE": 1, "COPY": 1}


def affected_from_tag(tag: str | None) -> int:
    """Rows affected according to a command tag such as "INSERT 0 3"; 0 for other commands."""
    if not tag:
        return 0
    words = tag.split()
    position = _TAG_COUNT_POSITION.get(words[0])
    if position is None or len(words) <= position:
        return 0
    return int(words[position])
