"""Development-only code: database engines, throwaway databases, seeded data, pytest fixtures.

Used by the tests, the benchmarks and the demo; not part of analytics-core (the wheel packages
only ``analytics_core``; the sdist carries this for running the tests). Import the modules:

- ``server_engine``: local PostgreSQL 15 + TimescaleDB Apache-edition clusters
  (``scripts/server-engine``), with bounded waits and one error type.
- ``pglite``: PGlite with TimescaleDB Community edition, a Node subprocess (``pglite/``).
- ``sql_session``: ``SqlSession``, the SQL surface a test runs on either engine;
  ``psycopg_session`` implements it on a real server, ``psycopg_shim`` turns it back into
  enough of a psycopg connection for ``read_status`` and ``maintain``; ``text_format`` is
  PGlite's side of psycopg's value rules.
- ``databases``: throwaway databases on a server.
- ``seeding``: migrated databases loaded with hand-made events.
- ``pytest_plugin``: the fixtures that route tests to these engines (tests/conftest.py).
"""
