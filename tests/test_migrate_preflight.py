"""Preflight and URL handling of the migration library; no database needed."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from analytics_core.migrate import Edition, PreflightError, ServerInfo
from analytics_core.migrate.dsn import (
    MissingDatabaseUrl,
    mask_password,
    resolve_database_url,
    scrub,
    yoyo_url,
)
from analytics_core.migrate.edition import (
    check_preflight,
    check_writable,
    inspect_server,
    preflight_problems,
)


def server(version: str | None = "2.19.3", preloaded: bool = True) -> ServerInfo:
    return ServerInfo("15.8", version, None, Edition.APACHE, preloaded)


def test_a_supported_server_passes() -> None:
    check_preflight(server("2.13.0"))
    check_preflight(server("2.23.0-dev"))


@pytest.mark.parametrize(
    ("info", "message"),
    [
        (server("2.11.2"), "TimescaleDB 2.11.2 is older than 2.13.0"),
        (server(None), "TimescaleDB is not available on this server"),
        (server(preloaded=False), "timescaledb is not in shared_preload_libraries"),
    ],
)
def test_an_unsupported_server_is_refused_with_what_to_do(info: ServerInfo, message: str) -> None:
    with pytest.raises(PreflightError, match=message):
        check_preflight(info)


def test_url_comes_from_option_then_database_url_then_platform_database_url() -> None:
    env = {"DATABASE_URL": "postgresql://a/db", "PLATFORM_DATABASE_URL": "postgresql://b/db"}
    assert resolve_database_url("postgresql://x/db", env) == "postgresql://x/db"
    assert resolve_database_url(None, env) == "postgresql://a/db"
    assert resolve_database_url(None, {"PLATFORM_DATABASE_URL": "postgres://b/db"}) == (
        "postgres://b/db"
    )
    with pytest.raises(MissingDatabaseUrl, match="--database-url or set DATABASE_URL"):
        resolve_database_url(None, {})


def test_passwords_are_masked_and_scrubbed() -> None:
    url = "postgresql://app:p%40ss%3Aword@db.internal:5432/analytics?sslmode=require"
    assert mask_password(url) == "postgresql://app:***@db.internal:5432/analytics?sslmode=require"
    assert mask_password("postgresql://app@db/analytics") == "postgresql://app@db/analytics"
    message = f"failed for {url}: password p@ss:word rejected"
    assert "p@ss" not in scrub(message, url) and "p%40ss" not in scrub(message, url)


def test_yoyo_url_carries_lock_timeout_and_keeps_other_options() -> None:
    url = "postgresql://app:pw@db/analytics?sslmode=require&options=-c%20search_path%3Dapp"
    converted = urlsplit(yoyo_url(url, lock_timeout=timedelta(seconds=2.5)))
    assert converted.scheme == "postgresql+psycopg"
    query = parse_qs(converted.query)
    assert query["sslmode"] == ["require"]
    assert query["options"] == ["-c search_path=app -c lock_timeout=2500"]


def test_a_hot_standby_is_refused_for_writes_with_the_reason() -> None:
    standby = ServerInfo("15.8", "2.19.3", "2.19.3", "apache", True, standby=True)
    assert preflight_problems(standby) == ()  # status still reads it
    with pytest.raises(PreflightError, match=r"hot standby .* against the primary"):
        check_preflight(standby)
    with pytest.raises(PreflightError, match="hot standby"):
        check_writable(standby)


@pytest.mark.server
def test_a_primary_is_not_a_standby(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        assert inspect_server(conn).standby is False
