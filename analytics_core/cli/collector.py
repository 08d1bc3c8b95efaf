"""``analytics-collector``: the HTTP collector and dashboard (``analytics_core.collector``).

Thin: parse options (each also from an ``ANALYTICS_COLLECTOR_*`` environment variable),
build the configuration, serve the app with uvicorn. Needs the ``server`` extra; without it
``serve`` exits 2 saying what to install. Exit codes: 2 for bad options, a bad key file, a
missing extra or a port that cannot be bound. On SIGTERM or SIGINT the server shuts down
gracefully and then, as uvicorn does, ends by that signal (status 143 or 130 in a shell),
so that a supervisor sees why it stopped.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from analytics_core.cli._command_line import EXIT_ERROR, fail, out, resolve_url
from analytics_core.collector.config import (
    CollectorConfig,
    KeyFileError,
    hash_key,
    load_keys,
    new_key,
)

#: Where the database URL comes from, in order, after --database-url.
ENV_VARS = ("ANALYTICS_COLLECTOR_DATABASE_URL", "DATABASE_URL", "PLATFORM_DATABASE_URL")

app = typer.Typer(
    name="analytics-collector",
    help="Collect analytics events over HTTP, serve the read side as JSON, a live stream and "
    "a dashboard.\n\nEvery option can also be set by the environment variable shown with "
    f"it. Exit code {EXIT_ERROR} for bad input or when the server cannot start; after a "
    "graceful shutdown on SIGTERM or SIGINT it ends by that signal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _env(name: str) -> str:
    return f"ANALYTICS_COLLECTOR_{name}"


@app.command()
def serve(
    *,
    keys_file: Annotated[
        Path,
        typer.Option(help="The TOML file of API keys (hashed).", envvar=_env("KEYS_FILE")),
    ],
    database_url: Annotated[
        str | None,
        typer.Option(
            help="PostgreSQL URL (default: $ANALYTICS_COLLECTOR_DATABASE_URL, $DATABASE_URL, "
            "then $PLATFORM_DATABASE_URL).",
            show_default=False,
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.", envvar=_env("HOST"))] = (
        "127.0.0.1"
    ),
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port to listen on.", envvar=_env("PORT"))
    ] = 8080,
    max_body_bytes: Annotated[
        int, typer.Option(help="Largest request body (413 beyond).", envvar=_env("MAX_BODY_BYTES"))
    ] = 1_000_000,
    max_batch_events: Annotated[
        int,
        typer.Option(help="Most items in a batch (413 beyond).", envvar=_env("MAX_BATCH_EVENTS")),
    ] = 1_000,
    batch_size: Annotated[
        int, typer.Option(help="Events per COPY.", envvar=_env("BATCH_SIZE"))
    ] = 500,
    flush_interval: Annotated[
        float,
        typer.Option(
            help="Longest wait (s) of an event for its COPY.", envvar=_env("FLUSH_INTERVAL")
        ),
    ] = 1.0,
    max_queue_size: Annotated[
        int,
        typer.Option(help="Most events queued (503 beyond).", envvar=_env("MAX_QUEUE_SIZE")),
    ] = 50_000,
    retry_after: Annotated[
        int, typer.Option(help="Retry-After (s) of a 503.", envvar=_env("RETRY_AFTER"))
    ] = 2,
    live_interval: Annotated[
        float,
        typer.Option(help="Seconds between live snapshots.", envvar=_env("LIVE_INTERVAL")),
    ] = 2.0,
    heartbeat_interval: Annotated[
        float,
        typer.Option(
            help="Longest silence (s) of the live stream.", envvar=_env("HEARTBEAT_INTERVAL")
        ),
    ] = 15.0,
    shutdown_timeout: Annotated[
        float,
        typer.Option(
            help="How long (s) shutdown waits for queued events to be written.",
            envvar=_env("SHUTDOWN_TIMEOUT"),
        ),
    ] = 10.0,
    graceful_timeout: Annotated[
        int,
        typer.Option(
            help="How long (s) shutdown waits for open requests and streams first.",
            envvar=_env("GRACEFUL_TIMEOUT"),
        ),
    ] = 3,
    read_connections: Annotated[
        int,
        typer.Option(
            help="Most database connections the read side keeps.",
            envvar=_env("READ_CONNECTIONS"),
        ),
    ] = 4,
    log_level: Annotated[
        str, typer.Option(help="debug, info, warning or error.", envvar=_env("LOG_LEVEL"))
    ] = "info",
) -> None:
    """Serve the collector until SIGTERM or Ctrl-C, then drain within the two timeouts."""
    url = resolve_url(database_url, ENV_VARS)
    try:
        import uvicorn  # noqa: PLC0415 - the server extra

        from analytics_core.collector import create_app  # noqa: PLC0415 - the server extra
    except ImportError as error:
        fail(escape(str(error)))
    level = logging.getLevelNamesMapping().get(log_level.upper())
    if level is None:
        fail(f"--log-level {log_level!r} is not one of debug, info, warning, error")
    try:
        config = CollectorConfig(
            url,
            load_keys(keys_file),
            max_body_bytes=max_body_bytes,
            max_batch_events=max_batch_events,
            batch_size=batch_size,
            flush_interval=flush_interval,
            max_queue_size=max_queue_size,
            retry_after=retry_after,
            live_interval=live_interval,
            heartbeat_interval=heartbeat_interval,
            shutdown_timeout=shutdown_timeout,
            read_connections=read_connections,
        )
        application = create_app(config)
    except (KeyFileError, TypeError, ValueError) as error:
        fail(escape(str(error)))
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    server = uvicorn.Server(
        uvicorn.Config(
            application,
            host=host,
            port=port,
            access_log=False,  # ours (analytics_core.collector.access) logs without queries
            log_config=None,
            log_level=level,
            timeout_graceful_shutdown=max(1, graceful_timeout),
            lifespan="on",
        )
    )
    server.run()
    if not server.started:
        raise typer.Exit(EXIT_ERROR)


@app.command("new-key")
def new_key_command(
    name: Annotated[str, typer.Argument(help="The key's name in the key file.")] = "my-key",
) -> None:
    """Print a new random key and the [[keys]] lines to add to the key file (kind and
    service still to fill in). Only the hash goes in the file; hand the key to its producer."""
    key = new_key()
    out.print(f"key (not stored anywhere; give it to the producer): {key}", highlight=False)
    out.print(
        f'\n[[keys]]\nname = "{name}"\nkind = "server"   # or "browser" or "read"\n'
        f'service = "{name}"\nsha256 = "{hash_key(key)}"',
        highlight=False,
        markup=False,
    )


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
