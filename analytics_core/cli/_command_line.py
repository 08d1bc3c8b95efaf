"""What both command-line programs share: the database and output options, the consoles,
and how an error becomes a message on stderr and an exit code."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from analytics_core.connection import ENV_VARS, resolve_database_url

EXIT_ERROR = 2

out = Console()
err = Console(stderr=True)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="PostgreSQL URL (default: $DATABASE_URL, then $PLATFORM_DATABASE_URL).",
        show_default=False,
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
#: The URL option of the commands that change the schema or its data (deploy-role work).
MigrateDatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="PostgreSQL URL (default: $ANALYTICS_MIGRATE_DATABASE_URL, then $DATABASE_URL, "
        "then $PLATFORM_DATABASE_URL).",
        show_default=False,
    ),
]


def program(name: str, description: str) -> typer.Typer:
    """A command-line program as all of ours are: help when run bare, no shell-completion
    commands, and errors as messages rather than rich tracebacks."""
    return typer.Typer(
        name=name,
        help=description,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print ``message`` as an error on stderr and exit with ``code``."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def resolve_url(explicit: str | None, names: Sequence[str] = ENV_VARS) -> str:
    """The URL from the option, else from the first of the environment variables ``names``
    that is set; exits 2 with the reason when there is none."""
    try:
        return resolve_database_url(explicit, names=names)
    except ValueError as error:
        fail(str(error))


def print_json(document: Any) -> None:
    """``document`` as indented JSON on stdout (values JSON cannot hold as their ``str``)."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
