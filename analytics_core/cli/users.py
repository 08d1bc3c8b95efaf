"""``analytics-users``: a person's events on request: export them, or erase them.

The database comes from ``--database-url``, else ``ANALYTICS_MIGRATE_DATABASE_URL``, else
``DATABASE_URL``, else ``PLATFORM_DATABASE_URL``: erasing deletes and refreshes aggregates,
which the deploy role may do and the application's role may not.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer

from analytics_core.cli._command_line import (
    AsJson,
    MigrateDatabaseUrl,
    err,
    fail,
    out,
    print_json,
    program,
    resolve_url,
)
from analytics_core.connection import connect, read_transaction, scrub
from analytics_core.errors import AnalyticsCoreError
from analytics_core.migrate.dsn import MIGRATE_ENV_VARS
from analytics_core.migrate.personal_data import (
    erase_user,
    export_user_events,
    subject_hash,
    user_footprint,
)

EXIT_OK = 0
EXIT_NOT_CONFIRMED = 1

app = program(
    "analytics-users",
    "A person's analytics events, on request: export them (JSON lines) or erase them.\n\n"
    "The database comes from --database-url, else ANALYTICS_MIGRATE_DATABASE_URL, else "
    "DATABASE_URL, else PLATFORM_DATABASE_URL.\n\n"
    f"Exit codes: {EXIT_OK} done; {EXIT_NOT_CONFIRMED} erase without --yes (nothing changed); "
    "2 bad input, no database URL, cannot connect, or the database refused.",
)
UserId = Annotated[str, typer.Argument(help="The user id (a UUID).", show_default=False)]


def _user_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        fail(f"{text!r} is not a user id: expected a UUID such as {uuid.UUID(int=0)}")


@contextmanager
def _connection(explicit_url: str | None) -> Iterator[psycopg.Connection[Any]]:
    url = resolve_url(explicit_url, MIGRATE_ENV_VARS)
    try:
        with connect(url, application_name="analytics-users") as conn:
            yield conn
    except (AnalyticsCoreError, ValueError) as error:
        fail(scrub(str(error), url))
    except psycopg.Error as error:
        fail(f"the database refused: [{error.sqlstate or '?????'}] {scrub(str(error), url)}")


@app.command()
def export(
    user_id: UserId,
    database_url: MigrateDatabaseUrl = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write to this file (default: stdout).", dir_okay=False
        ),
    ] = None,
) -> None:
    """Every stored event of USER_ID as JSON lines, oldest first (an access request)."""
    subject = _user_id(user_id)
    with _connection(database_url) as conn:
        if output is None:
            count = export_user_events(conn, subject, sys.stdout.write)
        else:
            try:
                with output.open("w", encoding="utf-8") as file:
                    count = export_user_events(conn, subject, file.write)
            except OSError as error:
                fail(f"cannot write {output}: {error.strerror}")
    err.print(f"exported {count} events of user {subject}", highlight=False)


@app.command()
def erase(
    user_id: UserId,
    database_url: MigrateDatabaseUrl = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Erase; without it, only say what would go.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Erase USER_ID: raw events, their share of the aggregates, their daily-active rows.

    Without --yes it says what it would remove and exits 1. An audit row (time, SHA-256 of
    the id, row counts) is kept in analytics_erasures. Safe to run again.
    """
    subject = _user_id(user_id)
    with _connection(database_url) as conn:
        if not yes:
            with read_transaction(conn):
                footprint = user_footprint(conn, subject)
            out.print(
                f"would erase user {subject}: {footprint.raw_rows} raw events and "
                f"{footprint.active_user_rows} daily-active-user rows"
                + (
                    f", from {footprint.first:%Y-%m-%d} to {footprint.last:%Y-%m-%d}"
                    if footprint.first and footprint.last
                    else ""
                )
                + ". Run again with --yes to erase.",
                highlight=False,
            )
            raise typer.Exit(EXIT_NOT_CONFIRMED)
        report = erase_user(conn, subject, lambda step: err.print(step, highlight=False))
    if as_json:
        print_json(report.to_json())
        return
    out.print(
        f"erased user {subject} (audit: sha256 {subject_hash(subject)[:16]}...): "
        f"{report.raw_rows} raw events, {report.aggregate_rows} daily-active-user rows older "
        f"than the raw data; recomputed {len(report.recomputed)} aggregates",
        highlight=False,
    )


def main() -> None:
    app()
