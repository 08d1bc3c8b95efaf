"""Database engines for the test suite, and the SQL surface tests share between them.

- `server`: local PostgreSQL 15 + TimescaleDB Apache edition clusters (scripts/server-engine).
- `pglite`: PGlite with TimescaleDB Community edition, for the features Apache lacks.
- `session`: `SqlSession`, the protocol a test uses to run on either engine.
"""

from .pglite import PGliteEngineError, PGliteError, PGliteSession, PGliteTimeoutError
from .psycopg_session import PsycopgSession
from .server import ServerEngineError, ensure_server, stop_server
from .session import SqlError, SqlSession, StatementResult

__all__ = [
    "PGliteEngineError",
    "PGliteError",
    "PGliteSession",
    "PGliteTimeoutError",
    "PsycopgSession",
    "ServerEngineError",
    "SqlError",
    "SqlSession",
    "StatementResult",
    "ensure_server",
    "stop_server",
]
