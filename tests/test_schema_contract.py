"""The migrations, the schema names, and the event models agree; no database needed."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from analytics_core.events import EVENT_TYPES
from analytics_core.migrate.edition import Edition
from analytics_core.migrate.render import render
from analytics_core.migrate.sources import Phase, load_migrations
from analytics_core.schema import (
    AGGREGATES,
    CHUNK_INTERVAL,
    COMPRESS_AFTER,
    COMPRESS_ORDER_BY,
    COMPRESS_SEGMENT_BY,
    EVENT_COPY_COLUMNS,
    EVENTS_TABLE,
    LATE_EVENTS_LOOKBACK,
    REFRESH_END_OFFSET,
    REFRESH_SCHEDULE,
    REFRESH_START_OFFSET,
    RETENTION,
)

MIGRATIONS = load_migrations()
_VIEW = re.compile(r"CREATE MATERIALIZED VIEW (\w+)")
_FIELD = re.compile(r"data\s*->>?\s*'(\w+)'")
_TYPE_EQUALS = re.compile(r"event_type\s*=\s*'(\w+)'")
_TYPE_IN = re.compile(r"event_type\s+IN\s*\(([^)]*)\)")
_TYPE_CASE = re.compile(r"CASE event_type(.*?)\bEND\b", re.DOTALL)
_QUOTED = re.compile(r"'(\w+)'")
_CASE_WHEN = re.compile(r"WHEN\s+'(\w+)'")


def _event_types_named(statement: str) -> set[str]:
    """Every literal the SQL compares event_type with."""
    named = set(_TYPE_EQUALS.findall(statement))
    for group in _TYPE_IN.findall(statement):
        named |= set(_QUOTED.findall(group))
    for group in _TYPE_CASE.findall(statement):
        named |= set(_CASE_WHEN.findall(group))
    return named


def _statements(phase: Phase, edition: Edition) -> list[str]:
    return [s for m in MIGRATIONS[phase] for s in m.statements(edition)[1]]


def _view_definitions(edition: Edition) -> dict[str, str]:
    return {
        match.group(1): statement
        for statement in _statements(Phase.POST, edition)
        if (match := _VIEW.search(statement))
    }


@pytest.mark.parametrize("edition", list(Edition))
def test_post_migrations_create_exactly_the_named_aggregates(edition: Edition) -> None:
    assert list(_view_definitions(edition)) == [a.name for a in AGGREGATES]


def test_both_editions_define_each_aggregate_with_the_same_query() -> None:
    community, apache = _view_definitions(Edition.COMMUNITY), _view_definitions(Edition.APACHE)
    for name in community:
        assert "timescaledb.continuous" in community[name]
        assert "timescaledb.continuous" not in apache[name]
        strip = re.compile(r"WITH \(timescaledb[^)]*\)\s*")
        assert strip.sub("", community[name]) == apache[name]


def test_aggregates_read_only_fields_of_the_event_types_they_select() -> None:
    """A renamed or mistyped event field or event type fails here, not in a dashboard."""
    fields_of = {name: set(model.model_fields) for name, model in EVENT_TYPES.items()}
    every_field = set().union(*fields_of.values())
    for name, statement in _view_definitions(Edition.COMMUNITY).items():
        selected = _event_types_named(statement)
        assert selected <= set(EVENT_TYPES), f"{name}: unknown {selected - set(EVENT_TYPES)}"
        for field in _FIELD.findall(statement):
            allowed = set().union(*(fields_of[t] for t in selected)) if selected else every_field
            assert field in allowed, f"{name} reads data->'{field}', no selected event has it"


def test_copy_columns_are_columns_of_the_events_table() -> None:
    table = f"CREATE TABLE IF NOT EXISTS {EVENTS_TABLE} "
    (create,) = [s for s in _statements(Phase.PRE, Edition.APACHE) if table in s]
    assert EVENTS_TABLE in create
    for column in EVENT_COPY_COLUMNS:
        assert re.search(rf'^\s*"?{column}"?\s', create, re.MULTILINE), column


def test_migration_ids_are_unique_and_phase_prefixed() -> None:
    for phase, files in MIGRATIONS.items():
        for migration in files:
            assert migration.id.startswith(f"{phase.value}_")


def test_the_backfill_runs_outside_a_transaction_one_aggregate_per_step() -> None:
    (backfill,) = [m for m in MIGRATIONS[Phase.POST] if m.id == "post_0004_backfill"]
    for edition in Edition:
        transactional, statements = backfill.statements(edition)
        assert transactional is False
        assert len(statements) == len(AGGREGATES)


class TestRender:
    TEMPLATE = (
        "common;\n"
        "only community; --@community\n"
        "only apache; --@apache\n"
        "--@community\n"
        "block line 1;\n"
        "block line 2;\n"
        "--@end\n"
        "tail;\n"
    )

    def test_keeps_common_and_own_edition_lines(self) -> None:
        assert render(self.TEMPLATE, Edition.COMMUNITY) == (
            "common;\nonly community;\nblock line 1;\nblock line 2;\ntail;\n"
        )
        assert render(self.TEMPLATE, Edition.APACHE) == "common;\nonly apache;\ntail;\n"

    @pytest.mark.parametrize(
        ("template", "message"),
        [
            ("--@enterprise\nx;\n--@end\n", "line 1: unknown edition tag --@enterprise"),
            ("--@community\nx;\n", "unterminated --@community block"),
            ("x;\n--@end\n", "line 2: --@end without an open block"),
            ("--@apache\n--@community\n--@end\n", "line 2: --@community inside an open"),
            ("--@apache\nx; --@apache\n--@end\n", "line 2: tagged line inside a --@apache"),
        ],
    )
    def test_rejects_malformed_tags_naming_the_line(self, template: str, message: str) -> None:
        with pytest.raises(ValueError, match=re.escape(message)):
            render(template, Edition.COMMUNITY)


# --- The SQL's policy literals are the settings in schema.py --------------------------------

_INTERVAL = r"INTERVAL '([^']+)'"


def _interval(text: str) -> timedelta:
    """A PostgreSQL interval literal of the forms the migrations use ('7 days', '1 hour')."""
    count, unit = text.split()
    return timedelta(**{unit.rstrip("s") + "s": int(count)})


def _community_sql(phase: Phase) -> str:
    return "\n".join(_statements(phase, Edition.COMMUNITY))


def test_chunk_interval_literal_is_the_setting() -> None:
    (literal,) = re.findall(rf"chunk_time_interval => {_INTERVAL}", _community_sql(Phase.PRE))
    assert _interval(literal) == CHUNK_INTERVAL


def test_compression_and_retention_literals_are_the_settings() -> None:
    text = _community_sql(Phase.POST)
    (compress,) = re.findall(rf"add_compression_policy\('{EVENTS_TABLE}', {_INTERVAL}", text)
    (retain,) = re.findall(rf"add_retention_policy\('{EVENTS_TABLE}', {_INTERVAL}", text)
    assert (_interval(compress), _interval(retain)) == (COMPRESS_AFTER, RETENTION)
    (segment_by,) = re.findall(r"compress_segmentby = '([^']+)'", text)
    (order_by,) = re.findall(r"compress_orderby = '([^']+)'", text)
    assert tuple(column.strip() for column in segment_by.split(",")) == COMPRESS_SEGMENT_BY
    assert [tuple(item.strip().replace('"', "").split()) for item in order_by.split(",")] == [
        tuple(pair) for pair in COMPRESS_ORDER_BY
    ]


def test_every_refresh_policy_literal_is_the_setting() -> None:
    policies = re.findall(
        rf"add_continuous_aggregate_policy\('(\w+)',\s*start_offset => {_INTERVAL},"
        rf"\s*end_offset => {_INTERVAL},\s*schedule_interval => {_INTERVAL}",
        _community_sql(Phase.POST),
    )
    assert [name for name, *_ in policies] == [a.name for a in AGGREGATES]
    for _, start, end, every in policies:
        assert (_interval(start), _interval(end), _interval(every)) == (
            REFRESH_START_OFFSET, REFRESH_END_OFFSET, REFRESH_SCHEDULE
        )


def _apache_sql(migration_id: str) -> str:
    (migration,) = [m for m in MIGRATIONS[Phase.POST] if m.id == migration_id]
    return "\n".join(migration.statements(Edition.APACHE)[1])


def test_the_apache_refresh_literals_are_the_settings() -> None:
    """The incremental refresh's window and late-event lookback, and each aggregate's bucket,
    are those of schema.py (and so of the Community refresh policies)."""
    text = _apache_sql("post_0006_apache_incremental_aggregates")
    bucket_of_now_minus = rf"time_bucket\(state\.bucket_width, now\(\) - {_INTERVAL}\)"
    # The window follows the settings (migrate.settings); their defaults are schema.py's.
    setting_or = r"time_bucket\(state\.bucket_width,\s*now\(\) - analytics_setting\('{}', {}\)\)"
    (end,) = re.findall(
        r"window_end := greatest\(" + setting_or.format("refresh_end_offset", _INTERVAL), text
    )
    (start,) = re.findall(
        r"window_start := least\(" + setting_or.format("refresh_start_offset", _INTERVAL), text
    )
    (lookback,) = re.findall(rf"lookback_start := {bucket_of_now_minus}", text)
    assert (_interval(start), _interval(end), _interval(lookback)) == (
        REFRESH_START_OFFSET, REFRESH_END_OFFSET, LATE_EVENTS_LOOKBACK
    )
    registered = re.findall(r"\('(\w+)',\s*'(\w+)',\s*" + _INTERVAL + r"\)", text)
    assert [(name, column, _interval(width)) for name, column, width in registered] == [
        (a.name, a.time_column, a.bucket) for a in AGGREGATES
    ]


def test_the_apache_incremental_migration_applies_nothing_on_the_community_edition() -> None:
    (migration,) = [
        m for m in MIGRATIONS[Phase.POST] if m.id == "post_0006_apache_incremental_aggregates"
    ]
    assert migration.statements(Edition.COMMUNITY)[1] == ()
