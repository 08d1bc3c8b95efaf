"""Resolving, masking and opening connections (analytics_core.connection)."""

from __future__ import annotations

import time

import psycopg
import pytest
from typer.testing import CliRunner

from analytics_core.cli.migrate import app
from analytics_core.connection import (
    connect,
    mask_password,
    read_transaction,
    resolve_database_url,
    scrub,
)
from analytics_core.errors import DatabaseUrlError
from analytics_core.migrate import Phase, apply
from analytics_core.migrate import connect as migrate_connect


def test_keyword_dsns_are_accepted_and_masked() -> None:
    dsn = "host=db.internal password=SECRETPW dbname=analytics"
    assert resolve_database_url(dsn, {}) == dsn
    assert mask_password(dsn) == "host=db.internal password=*** dbname=analytics"
    quoted = r"host=db password='se cr\'et pw' dbname=analytics"
    assert mask_password(quoted) == "host=db password=*** dbname=analytics"
    assert "cr" not in scrub(f"connection to {quoted} failed: se cr'et pw", quoted)


def test_a_wrong_scheme_is_refused_without_its_password() -> None:
    with pytest.raises(DatabaseUrlError) as caught:
        resolve_database_url("mysql://root:hunter2@localhost/db?password=SECRETPW", {})
    assert "hunter2" not in str(caught.value) and "SECRETPW" not in str(caught.value)
    assert "mysql://root:***@localhost/db?password=***" in str(caught.value)


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("postgresql://app:SECRETPW@db:notaport/analytics", "port 'notaport'"),
        ("postgresql://app:SECRETPW@db/analytics?sslmode=bogus", "sslmode 'bogus'"),
        ("host=db port=5432,x password=SECRETPW", "port 'x'"),
        ("postgresql://app:SECRETPW@db/analytics?connect_timeout=soon", "connect_timeout"),
        ("postgresql://app:SECRETPW@db/analytics?gssencmode=always", "gssencmode 'always'"),
        (
            "postgresql://app:SECRETPW@db/analytics?target_session_attrs=primary-ish",
            "target_session_attrs 'primary-ish'",
        ),
    ],
)
def test_settings_that_could_never_connect_are_refused_up_front(dsn: str, message: str) -> None:
    with pytest.raises(DatabaseUrlError, match=message) as caught:
        resolve_database_url(dsn, {})
    assert "SECRETPW" not in str(caught.value)


def test_only_the_password_field_is_masked_in_messages() -> None:
    # A one-letter password would otherwise turn every "e" of the message into ***.
    url = "postgresql://app:e@db/analytics"
    assert scrub(f"cannot connect: {url} refused", url) == (
        "cannot connect: postgresql://app:***@db/analytics refused"
    )
    long_url = "postgresql://app:Sup3r%25ZZSecret@db/analytics"
    assert scrub('invalid percent-encoded token: "Sup3r%ZZSecret"', long_url) == (
        'invalid percent-encoded token: "***"'
    )


@pytest.mark.server
def test_connect_timeout_in_the_url_is_honoured(database_url: str) -> None:
    separator = "&" if "?" in database_url else "?"
    with connect(f"{database_url}{separator}connect_timeout=3", application_name="t") as conn:
        assert "connect_timeout=3" in conn.info.dsn
    with connect(database_url, application_name="t") as conn:
        assert "connect_timeout=10" in conn.info.dsn


@pytest.mark.server
def test_status_sessions_are_bounded_and_give_up_behind_a_lock(database_url: str) -> None:
    apply(database_url, (Phase.PRE,))
    settings = (
        "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'),"
        " current_setting('transaction_read_only')"
    )
    with migrate_connect(database_url) as conn:
        with read_transaction(conn):
            assert conn.execute(settings).fetchone() == ("1min", "5s", "on")
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("CREATE TABLE nope (x int)")
        # Nothing outlasts the transaction: a pooler's next user gets the session as it was.
        assert conn.execute(settings).fetchone() == ("0", "0", "off")
        for _ in range(10):  # psycopg would prepare a statement run this often
            conn.execute("SELECT count(*) FROM analytics_events WHERE event_type = %s", ("x",))
        assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)

    with psycopg.connect(database_url) as holder:
        holder.execute("LOCK TABLE analytics_events IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        result = CliRunner().invoke(app, ["status", "--database-url", database_url])
        waited = time.monotonic() - started
    assert result.exit_code == 2
    assert "55P03" in result.stderr
    assert waited < 30
