"""Moved to ``devtools`` (development engines and fixtures have one home there).

Kept only for ``from tests.engines import server`` in tests/test_client_failures.py; delete it
once that module imports ``devtools.server_engine``.
"""

from devtools import server_engine as server

__all__ = ["server"]
