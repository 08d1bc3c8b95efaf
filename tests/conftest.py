"""Fixtures that route tests to real database engines, from `devtools.pytest_plugin`.

Engines are found in this order, once per test session:
1. `ANALYTICS_TEST_DATABASE_URL`: one full TimescaleDB (Community edition) for everything.
2. Docker, if `docker info` answers within 5 s: a `timescale/timescaledb:latest-pg17`
   container (testcontainers) for everything. If it fails to start: a warning, then step 3.
3. Local engines: PostgreSQL 15 + TimescaleDB Apache edition from `scripts/server-engine`
   (needs root) for server tests, and PGlite (needs Node.js) for Community features.
A fixture whose engine cannot exist here (no root, no Node.js) skips its tests and says why; an
engine that should work but fails (a broken install, a crashed process) errors them instead.

Fixtures:
- `server_url` (session): DSN of a multi-connection server, any edition.
- `server_admin_url` (session): DSN of that server's `postgres` database.
- `throwaway_databases` (session): creates and drops the session's databases on that server.
- `database_url` (function): DSN of a fresh, empty database, dropped after the test.
- `events_url` (function): the same with the pre-deploy schema applied (the client's table).
- `password_url` (function): `database_url` as a throwaway role that has a password.
- `community_session` (function): a `SqlSession` on a fresh database where the timescaledb
  extension (Community edition) is already created: psycopg on a full TimescaleDB, else PGlite.
- `pglite_session` (function): always PGlite (needs Node.js), on a fresh database.
- `no_preload_server_url` (session): DSN of a local cluster without timescaledb preloaded;
  skipped when the engines come from the environment or Docker.
- `full_timescaledb` (session): the full TimescaleDB of steps 1-2, or None.
- `topology_database_url` (function): a fresh database on the local cluster `topology`;
  `pgbouncer_transaction_url`, `pgbouncer_session_url` and `standby_url` reach the same
  database through PgBouncer (transaction / session pool mode) and a streaming hot standby.
  Local engines only: skipped when the engines come from the environment or Docker.

A test module that reads a database it loads once makes its fixtures with the plugin's
factories: `url = seeded_database_fixture(ROWS, refresh=True)` and
`conn = autocommit_connection_fixture("url")`.
"""

pytest_plugins = ["devtools.pytest_plugin"]
