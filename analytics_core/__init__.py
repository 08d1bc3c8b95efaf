"""analytics-core: typed product-analytics events, a non-blocking client and their schema.

The client, its public types and the root exception are re-exported here; the event models
live in ``analytics_core.events``, test doubles in ``analytics_core.testing``, the read side
in ``analytics_core.queries`` and the schema tooling in ``analytics_core.migrate``.
"""

from __future__ import annotations

from analytics_core.client import AnalyticsClient
from analytics_core.errors import AnalyticsCoreError
from analytics_core.tracker import ClientStats, OnError, Tracker

__all__ = ["AnalyticsClient", "AnalyticsCoreError", "ClientStats", "OnError", "Tracker"]
