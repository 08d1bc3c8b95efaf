"""The schema's tunable settings, and how a deploy makes the database follow them.

Retention, the compression delay, the refresh window and schedule, and the chunk interval
were literals in applied migration files; changing one meant editing an applied file, which
``status`` then called drift. Now each is a setting:

- its **default** is today's value (``analytics_core.schema``);
- a deploy may **request** another: ``post --retention 365d`` (an option) or
  ``ANALYTICS_RETENTION=365d`` (an environment variable; the option wins);
- a requested value is **stored** in ``analytics_settings`` and stays the effective value for
  later deploys that request nothing: a deploy without options never resets a setting;
- ``post`` (and ``all``) **reconcile**: on the Community edition the policy jobs are made to
  match the effective values; on both editions the chunk interval of new chunks. On the
  Apache edition ``maintain``, the incremental refresh and the pg_cron jobs read the table
  (``analytics_setting()``), so there is nothing else to change.

The drift check compares the database with the effective values, so a changed setting is not
drift. Lowering retention drops data at the next retention run: it is refused unless the
deploy confirms it, and the refusal says how many chunks and rows would go.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import psycopg
from psycopg import sql

from analytics_core.migrate.edition import Edition
from analytics_core.migrate.errors import MigrateError
from analytics_core.schema import (
    AGGREGATES,
    CHUNK_INTERVAL,
    COMPRESS_AFTER,
    EVENTS_TABLE,
    REFRESH_END_OFFSET,
    REFRESH_SCHEDULE,
    REFRESH_START_OFFSET,
    RETENTION,
    SETTINGS_TABLE,
)

__all__ = [
    "DEFAULTS",
    "ENV_VARS",
    "RetentionDropRefused",
    "Setting",
    "SettingChange",
    "SettingValue",
    "effective_settings",
    "parse_interval",
    "plan_settings",
    "reconcile_settings",
    "refuse_retention_drop",
    "requested_settings",
    "setting_text",
]


class Setting(enum.StrEnum):
    """A tunable setting, named as ``analytics_settings`` and ``analytics_setting()`` name it."""

    RETENTION = "retention"
    COMPRESS_AFTER = "compress_after"
    REFRESH_START_OFFSET = "refresh_start_offset"
    REFRESH_END_OFFSET = "refresh_end_offset"
    REFRESH_SCHEDULE = "refresh_schedule"
    CHUNK_INTERVAL = "chunk_interval"

    @property
    def option(self) -> str:
        return "--" + self.value.replace("_", "-")


DEFAULTS: Final[Mapping[Setting, timedelta]] = {
    Setting.RETENTION: RETENTION,
    Setting.COMPRESS_AFTER: COMPRESS_AFTER,
    Setting.REFRESH_START_OFFSET: REFRESH_START_OFFSET,
    Setting.REFRESH_END_OFFSET: REFRESH_END_OFFSET,
    Setting.REFRESH_SCHEDULE: REFRESH_SCHEDULE,
    Setting.CHUNK_INTERVAL: CHUNK_INTERVAL,
}
ENV_VARS: Final[Mapping[Setting, str]] = {s: f"ANALYTICS_{s.value.upper()}" for s in Setting}

_UNITS: Final = {
    "s": 1, "sec": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "minute": 60, "minutes": 60,
    "h": 3_600, "hour": 3_600, "hours": 3_600,
    "d": 86_400, "day": 86_400, "days": 86_400,
    "w": 604_800, "week": 604_800, "weeks": 604_800,
}  # fmt: skip
_INTERVAL: Final = re.compile(r"^\s*(\d+)\s*([a-z]+)\s*$")
#: Sanity bounds: anything outside is a typo (a retention of 90 seconds, of 900 years).
_SHORTEST: Final = timedelta(minutes=1)
_LONGEST: Final = timedelta(days=36_600)


@dataclass(frozen=True, slots=True)
class SettingValue:
    value: timedelta
    #: ``default``, the option or variable that requested it, or ``stored`` (with when and
    #: how it was set).
    source: str


@dataclass(frozen=True, slots=True)
class SettingChange:
    """A setting whose effective value a deploy changes."""

    setting: Setting
    current: SettingValue
    wanted: SettingValue
    #: What the change destroys, in words (lowering retention); None when nothing.
    loses: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "setting": self.setting.value,
            "current": setting_text(self.current.value),
            "current_source": self.current.source,
            "wanted": setting_text(self.wanted.value),
            "wanted_source": self.wanted.source,
            "loses": self.loses,
        }


class RetentionDropRefused(MigrateError):
    """A deploy would lower retention, dropping data, without being told it may."""


def parse_interval(text: str, name: str) -> timedelta:
    """``text`` (``90d``, ``12h``, ``2w``, ``30 minutes``) as a duration; ValueError naming
    ``name`` otherwise."""
    match = _INTERVAL.match(text.lower())
    if match is None or match.group(2) not in _UNITS:
        raise ValueError(
            f"{name}: {text!r} is not a duration; write a whole number and a unit, such as "
            "90d, 12h, 30m or 2w"
        )
    value = timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    if not _SHORTEST <= value <= _LONGEST:
        raise ValueError(f"{name}: {text!r} is outside 1 minute to 100 years")
    return value


def requested_settings(
    options: Mapping[Setting, str | None], environ: Mapping[str, str] | None = None
) -> dict[Setting, SettingValue]:
    """The settings a deploy asks for: each option given, else its environment variable."""
    env = os.environ if environ is None else environ
    requested = {}
    for setting in Setting:
        text = options.get(setting)
        source = setting.option
        if text is None and env.get(ENV_VARS[setting]):
            text, source = env[ENV_VARS[setting]], f"${ENV_VARS[setting]}"
        if text is not None:
            requested[setting] = SettingValue(parse_interval(text, source), source)
    return requested


def effective_settings(conn: psycopg.Connection[Any]) -> dict[Setting, SettingValue]:
    """Every setting's effective value: stored by a deploy, else its default."""
    effective = {s: SettingValue(DEFAULTS[s], "default") for s in Setting}
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (SETTINGS_TABLE,)).fetchone()
    if not (row and row[0]):
        return effective
    for name, value, source, updated_at in conn.execute(
        sql.SQL("SELECT name, value, source, updated_at FROM {}").format(
            sql.Identifier(SETTINGS_TABLE)
        )
    ).fetchall():
        if name in Setting.__members__.values():
            when = f"{updated_at:%Y-%m-%d}" if isinstance(updated_at, datetime) else "?"
            effective[Setting(name)] = SettingValue(value, f"stored ({source}, {when})")
    return effective


def plan_settings(
    conn: psycopg.Connection[Any], requested: Mapping[Setting, SettingValue]
) -> list[SettingChange]:
    """What ``requested`` changes against the effective settings (read-only)."""
    effective = effective_settings(conn)
    changes = []
    for setting, wanted in requested.items():
        current = effective[setting]
        if wanted.value == current.value:
            continue
        loses = None
        if setting is Setting.RETENTION and wanted.value < current.value:
            loses = _retention_loss(conn, wanted.value, current.value)
        changes.append(SettingChange(setting, current, wanted, loses))
    return changes


def reconcile_settings(
    conn: psycopg.Connection[Any],
    edition: Edition,
    requested: Mapping[Setting, SettingValue],
    *,
    allow_retention_drop: bool = False,
) -> list[SettingChange]:
    """Store ``requested`` and make the database follow every effective setting.

    On an autocommit connection under the deploy lock, after the post-deploy migrations.
    Raises RetentionDropRefused (before changing anything) when retention would go down
    without ``allow_retention_drop``. Idempotent: a second call changes nothing.
    """
    changes = plan_settings(conn, requested)
    refuse_retention_drop(changes, allowed=allow_retention_drop)
    for change in changes:
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (name, value, source) VALUES (%s, %s, %s)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value,"
                " source = excluded.source, updated_at = now()"
            ).format(sql.Identifier(SETTINGS_TABLE)),
            (change.setting.value, change.wanted.value, change.wanted.source),
        )
    effective = {s: v.value for s, v in effective_settings(conn).items()}
    _follow_chunk_interval(conn, effective[Setting.CHUNK_INTERVAL])
    if edition is Edition.COMMUNITY:
        _follow_policies(conn, effective)
    return changes


def refuse_retention_drop(changes: list[SettingChange], *, allowed: bool) -> None:
    """Raise RetentionDropRefused when ``changes`` lower retention over data and that was
    not ``allowed``."""
    for change in changes:
        if change.loses is not None and not allowed:
            raise RetentionDropRefused(
                f"lowering retention from {setting_text(change.current.value)} to "
                f"{setting_text(change.wanted.value)} drops {change.loses} at the next retention "
                "run. Pass --allow-retention-drop to do it; nothing was changed"
            )


def _follow_chunk_interval(conn: psycopg.Connection[Any], interval: timedelta) -> None:
    row = conn.execute(
        "SELECT time_interval FROM timescaledb_information.dimensions"
        " WHERE hypertable_name = %s AND dimension_number = 1",
        (EVENTS_TABLE,),
    ).fetchone()
    if row is not None and row[0] != interval:
        conn.execute("SELECT set_chunk_time_interval(%s, %s::interval)", (EVENTS_TABLE, interval))


def _follow_policies(conn: psycopg.Connection[Any], effective: Mapping[Setting, timedelta]) -> None:
    """Community edition: each policy job with the effective values (replaced where not)."""
    jobs = {
        (str(proc), str(relation)): (config or {}, schedule)
        for proc, relation, config, schedule in conn.execute(
            "SELECT j.proc_name, coalesce(c.view_name, j.hypertable_name), j.config,"
            " j.schedule_interval FROM timescaledb_information.jobs j"
            " LEFT JOIN timescaledb_information.continuous_aggregates c"
            "   ON c.materialization_hypertable_name = j.hypertable_name"
            " WHERE j.proc_name IN ('policy_compression', 'policy_retention',"
            "                       'policy_refresh_continuous_aggregate')"
        ).fetchall()
    }
    for policy, key, setting in (
        ("compression", "compress_after", Setting.COMPRESS_AFTER),
        ("retention", "drop_after", Setting.RETENTION),
    ):
        job = jobs.get((f"policy_{policy}", EVENTS_TABLE))
        if job is None or _config_interval(conn, job[0], key) == effective[setting]:
            continue
        # One transaction: the table is never without its policy.
        conn.execute(
            sql.SQL("SELECT {remove}({t}); SELECT {add}({t}, {v})").format(
                remove=sql.Identifier(f"remove_{policy}_policy"),
                add=sql.Identifier(f"add_{policy}_policy"),
                t=sql.Literal(EVENTS_TABLE),
                v=sql.Literal(effective[setting]),
            )
        )
    window = (
        effective[Setting.REFRESH_START_OFFSET],
        effective[Setting.REFRESH_END_OFFSET],
        effective[Setting.REFRESH_SCHEDULE],
    )
    for aggregate in AGGREGATES:
        job = jobs.get(("policy_refresh_continuous_aggregate", aggregate.name))
        if job is None:
            continue
        config, schedule = job
        found = (
            _config_interval(conn, config, "start_offset"),
            _config_interval(conn, config, "end_offset"),
            schedule,
        )
        if found == window:
            continue
        name = sql.Literal(aggregate.name)
        conn.execute(
            sql.SQL(
                "SELECT remove_continuous_aggregate_policy({name});"
                " SELECT add_continuous_aggregate_policy({name}, start_offset => {start},"
                " end_offset => {end}, schedule_interval => {every})"
            ).format(
                name=name,
                start=sql.Literal(window[0]),
                end=sql.Literal(window[1]),
                every=sql.Literal(window[2]),
            )
        )


def _config_interval(
    conn: psycopg.Connection[Any], config: Mapping[str, Any], key: str
) -> timedelta | None:
    text = config.get(key)
    if text is None:
        return None
    row = conn.execute("SELECT %s::interval", (str(text),)).fetchone()
    return row[0] if row else None


def _retention_loss(
    conn: psycopg.Connection[Any], wanted: timedelta, current: timedelta
) -> str | None:
    """The chunks and rows kept by ``current`` retention that ``wanted`` would drop; None
    when there are none (or no table yet)."""
    table = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (EVENTS_TABLE,)).fetchone()
    if not (table and table[0]):
        return None
    now = datetime.now(UTC)
    row = conn.execute(
        "SELECT count(*) FROM timescaledb_information.chunks"
        " WHERE hypertable_name = %s AND range_end <= %s AND range_end > %s",
        (EVENTS_TABLE, now - wanted, now - current),
    ).fetchone()
    chunks = int(row[0]) if row else 0
    rows = conn.execute(
        sql.SQL('SELECT count(*) FROM {} WHERE "timestamp" < %s').format(
            sql.Identifier(EVENTS_TABLE)
        ),
        (now - wanted,),
    ).fetchone()
    count = int(rows[0]) if rows else 0
    if not (chunks or count):
        return None
    return f"{chunks} chunk(s) holding {count:,} row(s)"


def setting_text(value: timedelta) -> str:
    """A duration as the options take it: ``90d``, ``12h``, ``2w``."""
    seconds = int(value.total_seconds())
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
