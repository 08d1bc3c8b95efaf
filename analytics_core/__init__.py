"""analytics-core: typed product-analytics events, a non-blocking writer and their schema.

The client is re-exported here; the event models live in ``analytics_core.events``, test
doubles in ``analytics_core.testing`` and the schema tooling in ``analytics_core.migrate``.
"""

from __future__ import annotations

from analytics_core.client import AnalyticsClient, ClientStats, OnError, Tracker

__all__ = ["AnalyticsClient", "ClientStats", "OnError", "Tracker"]
