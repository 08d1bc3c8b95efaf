"""Product metrics, answered from the aggregates only: one module per aggregate.

- :mod:`.active_users`: DAU, WAU and MAU, from ``analytics_daily_active_users``.
- :mod:`.api_latency`: requests, error rates and latency per endpoint, from
  ``analytics_api_latency_hourly``.
- :mod:`.tasks`: task outcomes and durations, from ``analytics_task_stats_daily``.
- :mod:`.integrations`: usage and errors per provider, from
  ``analytics_integration_health_daily``.
- :mod:`.auth`: auth attempts and failure rates, from ``analytics_auth_events_daily``.
- :mod:`.cocoons`: connected cocoons and sessions, from ``analytics_cocoon_activity_daily``.
- :mod:`.error_counts`: error counts by service and kind, from ``analytics_errors_hourly``.

Aggregates hold whole UTC buckets, so these answer for every bucket the window overlaps and
return the window they actually cover as ``window``. On both editions they are current to
the last committed event: continuous aggregates with real-time aggregation on the Community
edition; on the Apache edition, views over incrementally refreshed rows that compute the
buckets past the last refresh from the events. The SQL is the same on both.

Import the functions and result types from :mod:`analytics_core.queries`; this package
re-exports nothing, so that ``metrics.active_users`` is always the module, never the function.
"""
