"""Moved: seeding to ``devtools.seeding`` (``Row`` is ``EventRow`` there), the expected answers
to ``tests.expected``, the recording connection to ``tests.recording``.

Kept for the test modules that import these names from here until they switch to the
fixture factories of ``devtools.pytest_plugin``; delete it then.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from devtools.databases import ThrowawayDatabases
from devtools.seeding import EventRow as Row
from devtools.seeding import hold_the_scheduler, insert, refresh
from devtools.seeding import migrated_database as _migrated_database
from tests.expected import assert_same, field_of, json_int, json_ms, json_text, json_uuid
from tests.recording import Executed, recording_connection

__all__ = [
    "Executed",
    "Row",
    "assert_same",
    "field_of",
    "hold_the_scheduler",
    "insert",
    "json_int",
    "json_ms",
    "json_text",
    "json_uuid",
    "migrated_database",
    "recording_connection",
    "refresh",
]


@contextmanager
def migrated_database(server_url: str, server_admin_url: str) -> Iterator[str]:
    """A fresh database on ``server_admin_url``'s server with every migration applied;
    dropped afterwards. (``server_url`` is the same server; it is not needed any more.)"""
    del server_url
    with (
        ThrowawayDatabases(server_admin_url, "analytics_test_q") as databases,
        _migrated_database(databases) as url,
    ):
        yield url
