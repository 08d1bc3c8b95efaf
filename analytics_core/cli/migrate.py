"""``analytics-migrate``: apply and inspect the analytics schema from a deploy pipeline.

Thin: parse options, call :mod:`analytics_core.migrate`, render. Exit codes are part of the
interface (see ``EXIT_CODES``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Annotated, Any

import psycopg
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.syntax import Syntax
from rich.table import Table

from analytics_core import migrate
from analytics_core._json import jsonable
from analytics_core.cli._command_line import (
    EXIT_ERROR,
    AsJson,
    err,
    fail,
    out,
    print_json,
    resolve_url,
)
from analytics_core.connection import read_transaction, scrub
from analytics_core.errors import AnalyticsCoreError
from analytics_core.migrate import (
    AdoptionRefused,
    DriftDetected,
    Edition,
    ForeignAggregates,
    PendingPreDeploy,
    Phase,
)
from analytics_core.migrate.dsn import MIGRATE_ENV_VARS
from analytics_core.migrate.runner import DEFAULT_DDL_LOCK_TIMEOUT, DEFAULT_LOCK_WAIT
from analytics_core.migrate.settings import (
    DEFAULTS,
    ENV_VARS,
    RetentionDropRefused,
    Setting,
    requested_settings,
    setting_text,
)

_LOCK_WAIT_SECONDS = DEFAULT_LOCK_WAIT.total_seconds()
_DDL_LOCK_TIMEOUT_SECONDS = DEFAULT_DDL_LOCK_TIMEOUT.total_seconds()
_JOB_WAIT_SECONDS = migrate.DEFAULT_JOB_WAIT.total_seconds()

EXIT_OK = 0
EXIT_PENDING = 1
EXIT_JOBS_UNHEALTHY = 3

EXIT_CODES = f"""
Exit codes: {EXIT_OK} success (for status: up to date);
{EXIT_PENDING} migrations pending, a migration file edited after it was applied or missing, or
the schema not what the migrations build on this edition (status), or a deploy refused for
the same reasons or because pre-deploy migrations are pending (post); {EXIT_ERROR} cannot
connect, preflight failed (status too), a migration or repair
step failed, the migration lock was not obtained in time, a maintenance task failed, --pg-cron
where pg_cron is not loaded, or bad input; {EXIT_JOBS_UNHEALTHY} status --check-jobs: up to
date, but a policy job's work is not getting done (failing, overdue or paused without
`maintain`).
"""

app = typer.Typer(
    name="analytics-migrate",
    help="Apply and inspect the analytics-core TimescaleDB schema.\n\n"
    "The database comes from --database-url, else ANALYTICS_MIGRATE_DATABASE_URL, else "
    "DATABASE_URL, else PLATFORM_DATABASE_URL. Migrations need one server session: behind "
    "PgBouncer, give them a direct or session-pooled URL (ANALYTICS_MIGRATE_DATABASE_URL); "
    "through transaction pooling they are refused (exit 2). status and dry-run work through "
    "any pool mode and on a hot standby.\n" + EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


MigrateDatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="PostgreSQL URL (default: $ANALYTICS_MIGRATE_DATABASE_URL, then $DATABASE_URL, "
        "then $PLATFORM_DATABASE_URL). Direct or session-pooled for all, pre, post and repair.",
        show_default=False,
    ),
]

LockWait = Annotated[
    float,
    typer.Option(
        "--lock-wait",
        min=0.0,
        max=86_400.0,
        help="Seconds to wait for another deploy's migration lock before failing.",
    ),
]
DdlLockTimeout = Annotated[
    float,
    typer.Option(
        "--ddl-lock-timeout",
        min=0.001,
        max=3_600.0,
        help="Seconds one DDL statement may wait for a table lock (keeps ingestion flowing).",
    ),
]

PgCron = Annotated[
    bool,
    typer.Option(
        "--pg-cron",
        help="Apache edition: also schedule the upkeep with pg_cron (the incremental refresh "
        "hourly, retention daily), creating the extension in cron.database_name. Refused "
        "(exit 2, before anything is applied) where pg_cron is not loaded. Off by default: "
        "pg_cron is cluster-wide and needs a superuser or the platform's admin role.",
    ),
]

AllowDrift = Annotated[
    bool,
    typer.Option(
        "--allow-drift",
        help="Apply even when an applied migration file was edited or is missing, or the "
        "schema differs from what the migrations build (default: refuse, exit 1).",
    ),
]


def _setting_option(setting: Setting, what: str) -> Any:
    return typer.Option(
        setting.option,
        help=f"{what} (e.g. 90d, 12h, 2w; default: ${ENV_VARS[setting]}, else the stored "
        f"value, else {setting_text(DEFAULTS[setting])}).",
        show_default=False,
    )


Retention = Annotated[str | None, _setting_option(Setting.RETENTION, "Keep raw events this long")]
CompressAfter = Annotated[
    str | None,
    _setting_option(Setting.COMPRESS_AFTER, "Compress chunks this old (Community edition)"),
]
RefreshStart = Annotated[
    str | None,
    _setting_option(Setting.REFRESH_START_OFFSET, "Aggregate refreshes reach this far back"),
]
RefreshEnd = Annotated[
    str | None,
    _setting_option(Setting.REFRESH_END_OFFSET, "Aggregate refreshes stop this long before now"),
]
RefreshSchedule = Annotated[
    str | None,
    _setting_option(
        Setting.REFRESH_SCHEDULE, "Refresh policies run this often (Community edition)"
    ),
]
ChunkInterval = Annotated[
    str | None, _setting_option(Setting.CHUNK_INTERVAL, "Each new chunk spans this long")
]
AllowRetentionDrop = Annotated[
    bool,
    typer.Option(
        "--allow-retention-drop",
        help="Lower retention even though the next retention run drops data it kept "
        "(default: refuse, say how much, exit 1).",
    ),
]


def _settings(
    retention: str | None,
    *,
    compress_after: str | None,
    refresh_start_offset: str | None,
    refresh_end_offset: str | None,
    refresh_schedule: str | None,
    chunk_interval: str | None,
) -> dict[Setting, str | None]:
    return {
        Setting.RETENTION: retention,
        Setting.COMPRESS_AFTER: compress_after,
        Setting.REFRESH_START_OFFSET: refresh_start_offset,
        Setting.REFRESH_END_OFFSET: refresh_end_offset,
        Setting.REFRESH_SCHEDULE: refresh_schedule,
        Setting.CHUNK_INTERVAL: chunk_interval,
    }


ReplaceAggregates = Annotated[
    bool,
    typer.Option(
        "--replace-aggregates",
        help="Rename relations that hold our aggregates' names but were not created by "
        "analytics-migrate to <name>_before_adoption (rows kept), then create ours "
        "(default: refuse, naming them, exit 1).",
    ),
]


Adopt = Annotated[
    bool,
    typer.Option(
        "--adopt",
        help="Bring an analytics_events table that analytics-migrate did not create to its "
        "shape, keeping every row (default: refuse and say what differs, exit 1).",
    ),
]


@contextmanager
def _errors(url: str | None) -> Iterator[None]:
    """Turn library errors into a message on stderr and the documented exit code."""
    try:
        yield
    except (
        PendingPreDeploy,
        DriftDetected,
        AdoptionRefused,
        ForeignAggregates,
        RetentionDropRefused,
    ) as error:
        fail(str(error), EXIT_PENDING)
    except (AnalyticsCoreError, ValueError) as error:
        fail(scrub(str(error), url))
    except psycopg.Error as error:
        # Anything the library did not anticipate still gets the documented exit code.
        fail(scrub(f"database error [{error.sqlstate or '?'}]: {error}".strip(), url))


def _apply(
    url_option: str | None,
    phases: tuple[Phase, ...],
    *,
    lock_wait: float,
    ddl_lock_timeout: float,
    allow_drift: bool,
    as_json: bool,
    adopt: bool = False,
    pg_cron: bool = False,
    settings: dict[Setting, str | None] | None = None,
    allow_retention_drop: bool = False,
    replace_aggregates: bool = False,
) -> None:
    url = resolve_url(url_option, MIGRATE_ENV_VARS)
    try:
        requested = requested_settings(settings or {})
    except ValueError as error:
        fail(str(error))
    cron_jobs: tuple[migrate.CronJob, ...] = ()
    with _errors(url):
        if pg_cron:
            with migrate.connect(url) as conn, read_transaction(conn):
                if migrate.scheduling.cron_database(conn) is None:
                    raise migrate.PgCronUnavailable(
                        "--pg-cron: pg_cron is not loaded on this server (add it to "
                        "shared_preload_libraries and restart); nothing was applied"
                    )
        with _progress(enabled=not as_json) as report:
            result = migrate.apply(
                url,
                phases,
                lock_wait=timedelta(seconds=lock_wait),
                ddl_lock_timeout=timedelta(seconds=ddl_lock_timeout),
                progress=report,
                allow_drift=allow_drift,
                adopt=adopt,
                settings=requested,
                allow_retention_drop=allow_retention_drop,
                replace_aggregates=replace_aggregates,
            )
        if pg_cron and result.server.edition is Edition.APACHE:
            cron_jobs = migrate.schedule_upkeep(url)
    if as_json:
        document = result.to_json()
        if pg_cron:
            document["cron_jobs"] = [jsonable(job) for job in cron_jobs]
        print_json(document)
        return
    if result.applied:
        out.print(f"applied {len(result.applied)} migration(s): {', '.join(result.applied)}")
    else:
        out.print("nothing to apply: the schema is up to date")
    for change in result.settings:
        out.print(
            f"{change.setting.option}: {setting_text(change.current.value)} -> "
            f"{setting_text(change.wanted.value)} ({change.wanted.source})",
            highlight=False,
        )
    if pg_cron and result.server.edition is not Edition.APACHE:
        out.print("--pg-cron: nothing scheduled; the Community edition's own jobs do the upkeep")
    for job in cron_jobs:
        out.print(f"scheduled with pg_cron: {job.name} at '{job.schedule}': {job.command}")


@contextmanager
def _progress(enabled: bool) -> Iterator[migrate.runner.Progress | None]:
    if not enabled:
        yield None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as bar:
        tasks: dict[str, Any] = {}

        def report(migration_id: str, done: int, total: int) -> None:
            if migration_id not in tasks:
                tasks[migration_id] = bar.add_task(migration_id, total=max(total, 1))
            bar.update(tasks[migration_id], completed=done if total else 1)

        yield report


@app.command("all")
def all_(
    database_url: MigrateDatabaseUrl = None,
    *,
    lock_wait: LockWait = _LOCK_WAIT_SECONDS,
    ddl_lock_timeout: DdlLockTimeout = _DDL_LOCK_TIMEOUT_SECONDS,
    allow_drift: AllowDrift = False,
    adopt: Adopt = False,
    pg_cron: PgCron = False,
    retention: Retention = None,
    compress_after: CompressAfter = None,
    refresh_start_offset: RefreshStart = None,
    refresh_end_offset: RefreshEnd = None,
    refresh_schedule: RefreshSchedule = None,
    chunk_interval: ChunkInterval = None,
    allow_retention_drop: AllowRetentionDrop = False,
    replace_aggregates: ReplaceAggregates = False,
    as_json: AsJson = False,
) -> None:
    """Apply pre-deploy then post-deploy migrations, then make the database follow the
    settings. A no-op when up to date."""
    _apply(
        database_url,
        (Phase.PRE, Phase.POST),
        lock_wait=lock_wait,
        ddl_lock_timeout=ddl_lock_timeout,
        allow_drift=allow_drift,
        as_json=as_json,
        adopt=adopt,
        pg_cron=pg_cron,
        settings=_settings(
            retention,
            compress_after=compress_after,
            refresh_start_offset=refresh_start_offset,
            refresh_end_offset=refresh_end_offset,
            refresh_schedule=refresh_schedule,
            chunk_interval=chunk_interval,
        ),
        allow_retention_drop=allow_retention_drop,
        replace_aggregates=replace_aggregates,
    )


@app.command()
def pre(
    database_url: MigrateDatabaseUrl = None,
    *,
    lock_wait: LockWait = _LOCK_WAIT_SECONDS,
    ddl_lock_timeout: DdlLockTimeout = _DDL_LOCK_TIMEOUT_SECONDS,
    allow_drift: AllowDrift = False,
    adopt: Adopt = False,
    as_json: AsJson = False,
) -> None:
    """Apply pre-deploy migrations: what new application code writes to."""
    _apply(
        database_url,
        (Phase.PRE,),
        lock_wait=lock_wait,
        ddl_lock_timeout=ddl_lock_timeout,
        allow_drift=allow_drift,
        as_json=as_json,
        adopt=adopt,
    )


@app.command()
def post(
    database_url: MigrateDatabaseUrl = None,
    *,
    lock_wait: LockWait = _LOCK_WAIT_SECONDS,
    ddl_lock_timeout: DdlLockTimeout = _DDL_LOCK_TIMEOUT_SECONDS,
    allow_drift: AllowDrift = False,
    pg_cron: PgCron = False,
    retention: Retention = None,
    compress_after: CompressAfter = None,
    refresh_start_offset: RefreshStart = None,
    refresh_end_offset: RefreshEnd = None,
    refresh_schedule: RefreshSchedule = None,
    chunk_interval: ChunkInterval = None,
    allow_retention_drop: AllowRetentionDrop = False,
    replace_aggregates: ReplaceAggregates = False,
    as_json: AsJson = False,
) -> None:
    """Apply post-deploy migrations (compression, retention, aggregates, backfill), then
    make the database follow the settings (the options below, stored for later deploys).

    Refuses (exit 1) while any pre-deploy migration is pending. With --pg-cron (Apache
    edition), also schedules the upkeep with pg_cron.
    """
    _apply(
        database_url,
        (Phase.POST,),
        lock_wait=lock_wait,
        ddl_lock_timeout=ddl_lock_timeout,
        allow_drift=allow_drift,
        as_json=as_json,
        pg_cron=pg_cron,
        settings=_settings(
            retention,
            compress_after=compress_after,
            refresh_start_offset=refresh_start_offset,
            refresh_end_offset=refresh_end_offset,
            refresh_schedule=refresh_schedule,
            chunk_interval=chunk_interval,
        ),
        allow_retention_drop=allow_retention_drop,
        replace_aggregates=replace_aggregates,
    )


@app.command()
def status(
    database_url: MigrateDatabaseUrl = None,
    as_json: AsJson = False,
    check_jobs: Annotated[
        bool,
        typer.Option(
            "--check-jobs",
            help=f"Also exit {EXIT_JOBS_UNHEALTHY} when a policy job's work is not getting "
            "done, for cron and alerting.",
        ),
    ] = False,
) -> None:
    """Applied and pending migrations, edition, features, schema drift, chunks, job health and
    aggregate watermarks. Read-only. Exit 0 up to date, 1 pending or drifted, 2 error or a
    server a deploy would refuse (3 with --check-jobs: jobs unhealthy)."""
    url = resolve_url(database_url, MIGRATE_ENV_VARS)
    with _errors(url):
        with migrate.connect(url) as conn, read_transaction(conn):
            report = migrate.read_status(conn)
        report = migrate.with_cron_jobs(report, url)
    if as_json:
        print_json(report.to_json())
    else:
        render_status(report)
    if report.preflight:
        fail(" ".join(report.preflight))
    if not report.up_to_date:
        raise typer.Exit(EXIT_PENDING)
    if check_jobs and report.unhealthy_jobs:
        raise typer.Exit(EXIT_JOBS_UNHEALTHY)
    raise typer.Exit(EXIT_OK)


@app.command("dry-run")
def dry_run(
    database_url: MigrateDatabaseUrl = None,
    edition: Annotated[
        Edition | None,
        typer.Option(
            help="Render for this edition. Without a database URL, show every migration "
            "as pending on an empty database. With one, overrides the edition the database "
            "reports (or, before the extension exists, the one assumed).",
        ),
    ] = None,
    *,
    retention: Retention = None,
    compress_after: CompressAfter = None,
    refresh_start_offset: RefreshStart = None,
    refresh_end_offset: RefreshEnd = None,
    refresh_schedule: RefreshSchedule = None,
    chunk_interval: ChunkInterval = None,
    as_json: AsJson = False,
) -> None:
    """Show the pending migrations in order, with their SQL and whether each runs in a
    transaction. Changes nothing; works on a read-only connection."""
    url = None
    if edition is None or database_url or _env_has_url():
        url = resolve_url(database_url, MIGRATE_ENV_VARS)
    try:
        requested = requested_settings(
            _settings(
                retention,
                compress_after=compress_after,
                refresh_start_offset=refresh_start_offset,
                refresh_end_offset=refresh_end_offset,
                refresh_schedule=refresh_schedule,
                chunk_interval=chunk_interval,
            )
        )
    except ValueError as error:
        fail(str(error))
    with _errors(url):
        result = migrate.dry_run(url, edition, settings=requested)
    if as_json:
        print_json(result.to_json())
        return
    choice = result.edition
    err.print(f"{choice.edition} edition: {choice.reason}", highlight=False)
    for problem in result.preflight:
        err.print(f"[yellow]warning:[/] a deploy would refuse this server: {problem}")
    for change in result.settings:
        out.print(
            f"would change {change.setting.option}: {setting_text(change.current.value)} -> "
            f"{setting_text(change.wanted.value)} ({change.wanted.source})"
            + (f"; drops {change.loses} (needs --allow-retention-drop)" if change.loses else ""),
            highlight=False,
        )
    if result.adoption is not None:
        err.print(
            f"[yellow]warning:[/] {AdoptionRefused(result.adoption, asked=False)}",
            highlight=False,
        )
    if not result.pending:
        out.print(f"nothing pending ({choice.edition} edition)")
        return
    for m in result.pending:
        mode = "in one transaction" if m.transactional else "without a transaction, step by step"
        out.rule(f"[bold]{m.id}[/] · {m.phase} · {mode} · {len(m.statements)} statement(s)")
        out.print(
            Syntax(";\n\n".join(s.rstrip(";") for s in m.statements) + ";", "sql", word_wrap=True)
        )


def _env_has_url() -> bool:
    try:
        migrate.resolve_database_url(None, names=MIGRATE_ENV_VARS)
    except ValueError:
        return False
    return True


JobWait = Annotated[
    float,
    typer.Option(
        "--job-wait",
        min=0.0,
        max=3_600.0,
        help="Seconds to wait for a job the scheduler is running before leaving it to it.",
    ),
]


@app.command()
def maintain(
    database_url: MigrateDatabaseUrl = None,
    job_wait: JobWait = _JOB_WAIT_SECONDS,
    as_json: AsJson = False,
) -> None:
    """Run one round of upkeep. Community edition: run every policy job once now (waiting
    for, or leaving, a job the scheduler is running). Apache edition: refresh each aggregate
    incrementally (its last 3 days and late events, one short transaction each) and drop
    chunks past retention. Exit 2 when any task failed (the others still ran)."""
    url = resolve_url(database_url, MIGRATE_ENV_VARS)
    with _errors(url), migrate.connect(url) as conn:
        result = migrate.maintain(
            conn,
            progress=None if as_json else lambda name: err.print(f"· {name}"),
            job_wait=timedelta(seconds=job_wait),
        )
    if as_json:
        print_json(result.to_json())
    else:
        table = Table(title=f"maintenance ({result.edition} edition)")
        for column in ("task", "outcome", "detail"):
            table.add_column(column)
        for task in result.tasks:
            colour = "green" if task.outcome == "done" else "yellow" if task.ok else "red"
            table.add_row(task.name, f"[{colour}]{task.outcome}[/]", task.detail)
        out.print(table)
    raise typer.Exit(EXIT_OK if result.ok else EXIT_ERROR)


@app.command()
def repair(
    database_url: MigrateDatabaseUrl = None,
    lock_wait: LockWait = _LOCK_WAIT_SECONDS,
    ddl_lock_timeout: DdlLockTimeout = _DDL_LOCK_TIMEOUT_SECONDS,
    as_json: AsJson = False,
) -> None:
    """Make the schema what the migrations build on this server's edition: rebuild
    aggregates of the wrong kind (and backfill them), set missing or altered compression and
    policies. A no-op without drift; safe to rerun. Exit 1 when drift remains that it cannot
    fix, 2 when a step failed."""
    url = resolve_url(database_url, MIGRATE_ENV_VARS)
    with _errors(url), _progress(enabled=not as_json) as report:
        result = migrate.repair(
            url,
            lock_wait=timedelta(seconds=lock_wait),
            ddl_lock_timeout=timedelta(seconds=ddl_lock_timeout),
            progress=None
            if report is None
            else lambda name, done, total: report("repair", done, total),
        )
    if as_json:
        print_json(result.to_json())
    elif not result.found:
        out.print(f"nothing to repair: the schema is what the {result.edition} edition builds")
    else:
        for step in result.steps:
            out.print(f"[green]✓[/] {step.name}")
        for drift in result.remaining:
            out.print(f"[red]✗[/] cannot repair: {drift}")
    raise typer.Exit(EXIT_PENDING if result.remaining else EXIT_OK)


def render_status(report: migrate.SchemaStatus) -> None:
    """``status`` for people: Rich tables on stdout, warnings and job problems on stderr."""
    server = report.server
    edition = f"{server.edition} edition" if server.edition else "edition unknown until `pre`"
    out.print(
        f"PostgreSQL {server.postgres_version} · TimescaleDB "
        f"{server.timescaledb_version or 'not installed'} ({edition})"
    )
    features = Table(title="features")
    for column in ("feature", "mode", "detail"):
        features.add_column(column)
    for feature in report.features:
        colour = {"native": "green", "fallback": "yellow"}.get(feature.mode, "red")
        features.add_row(feature.name, f"[{colour}]{feature.mode}[/]", feature.detail)
    out.print(features)

    migrations = Table(title="migrations")
    migrations.add_column("phase")
    migrations.add_column("migration", no_wrap=True)
    migrations.add_column("state")
    migrations.add_column("applied at (UTC)")
    for phase in report.phases:
        for applied in phase.applied:
            state = "[red]drifted[/]" if applied.drifted else "[green]applied[/]"
            when = f"{applied.applied_at:%Y-%m-%d %H:%M:%S}"
            migrations.add_row(phase.phase, applied.id, state, when)
        for pending in phase.pending:
            migrations.add_row(phase.phase, pending, "[yellow]pending[/]", "")
    for unknown in report.unknown_migrations:
        migrations.add_row("?", unknown, "[red]no file[/]", "")
    out.print(migrations)

    if report.schema_drift:
        drift = Table(title="[red]schema drift[/] (`analytics-migrate repair` fixes it)")
        for column in ("object", "of", "expected", "found"):
            drift.add_column(column)
        for item in report.schema_drift:
            drift.add_row(item.kind, item.relation, item.expected, f"[red]{item.found}[/]")
        out.print(drift)

    if report.hypertable is not None:
        ht = report.hypertable
        ratio = f"{ht.compression_ratio:.1f}x" if ht.compression_ratio else "n/a"
        out.print(
            f"analytics_events: {ht.chunks} chunk(s), {ht.compressed_chunks} compressed, "
            f"{ht.total_bytes / 1_048_576:.1f} MiB, compression ratio {ratio}"
        )
    if report.settings:
        _render_settings(report)
    if report.jobs:
        _render_jobs(report)
    if report.cron_jobs:
        _render_cron_jobs(report.cron_jobs)
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if report.aggregates:
        aggregates = Table(title="aggregates")
        aggregates.add_column("aggregate", no_wrap=True)
        for column in ("kind", "materialized up to", "latest bucket", "last refreshed"):
            aggregates.add_column(column)
        for agg in report.aggregates:
            if agg.watermark is not None:
                materialized = f"{agg.watermark:%Y-%m-%d %H:%M}"
            elif agg.kind in ("continuous aggregate", "incremental aggregate"):
                materialized = "nothing yet"
            else:
                materialized = ""
            aggregates.add_row(
                agg.name,
                agg.kind or "[yellow]missing[/]",
                materialized,
                _when(agg.latest_bucket, ""),
                _when(agg.last_refreshed_at, ""),
            )
        out.print(aggregates)


def _render_settings(report: migrate.SchemaStatus) -> None:
    settings = Table(title="settings (`post --retention 365d` and the like change them)")
    for column in ("setting", "value", "from"):
        settings.add_column(column)
    for setting, value in report.settings.items():
        settings.add_row(setting.option, setting_text(value.value), value.source)
    out.print(settings)


def _render_jobs(report: migrate.SchemaStatus) -> None:
    jobs = Table(title="jobs")
    for column in ("job", "kind", "relation", "every", "last run", "by", "health"):
        jobs.add_column(column)
    for job in report.jobs:
        # The newer of the scheduler's run and maintain's.
        runs: list[tuple[datetime, str, bool]] = []
        if job.last_run_at is not None:
            runs.append((job.last_run_at, "scheduler", job.last_run_status == "Success"))
        if job.maintenance is not None:
            runs.append((job.maintenance.finished_at, "maintain", job.maintenance.ok))
        last, by = "never", ""
        if runs:
            when, by, ok = max(runs)
            last = f"{when:%Y-%m-%d %H:%M} {'ok' if ok else 'failed'}"
        colour = "green" if job.healthy else "red"
        jobs.add_row(
            str(job.job_id),
            job.kind.removesuffix("_continuous_aggregate"),
            job.relation.removeprefix("analytics_"),
            job.schedule_interval,
            last,
            by,
            f"[{colour}]{job.health}[/]" + ("" if job.scheduled else " (paused)"),
        )
    out.print(jobs)
    for job in report.unhealthy_jobs:
        err.print(
            f"[red]job {job.job_id}[/] ({job.kind} {job.relation}): {job.problem}",
            highlight=False,
        )


def _render_cron_jobs(cron_jobs: tuple[migrate.CronJob, ...]) -> None:
    table = Table(title="pg_cron jobs")
    for column in ("job", "name", "schedule", "active", "last run", "result"):
        table.add_column(column)
    for job in cron_jobs:
        colour = {"succeeded": "green", "failed": "red"}.get(job.last_status or "", "yellow")
        result = f"[{colour}]{job.last_status}[/]" if job.last_status else ""
        if job.last_message:
            result += f" {job.last_message}"
        table.add_row(
            str(job.job_id),
            job.name,
            job.schedule,
            "yes" if job.active else "[yellow]no[/]",
            _when(job.last_run_at, "never"),
            result,
        )
    out.print(table)


def _when(moment: datetime | None, default: str) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment is not None else default


def main() -> None:
    """Console-script entry point."""
    app()
