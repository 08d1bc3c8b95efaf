"""A connection that records the statements our code sends, to check what it reads and how."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg


@contextmanager
def recording_connection(url: str) -> Iterator[tuple[psycopg.Connection[Any], list[Executed]]]:
    """An autocommit connection that records every statement its cursors execute."""
    executed: list[Executed] = []

    class Recording(psycopg.Cursor[Any]):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            text = query if isinstance(query, str) else query.as_string(self.connection)
            executed.append(Executed(text, params))
            return super().execute(query, params, **kwargs)

    with psycopg.connect(url, autocommit=True, cursor_factory=Recording) as conn:
        yield conn, executed


@dataclass(frozen=True)
class Executed:
    """A statement as sent, with its parameters."""

    sql: str
    params: Any

    def plan(self, conn: psycopg.Connection[Any]) -> str:
        """The statement's EXPLAIN output, one line per plan node."""
        rows = conn.execute("EXPLAIN " + self.sql, self.params).fetchall()
        return "\n".join(row[0] for row in rows)
