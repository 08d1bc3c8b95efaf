-- transactional: false
-- Materialize the history that existed before the aggregates did. A refresh of a continuous
-- aggregate cannot run inside a transaction block, so this migration runs without one, one
-- aggregate per step; a failed step leaves the earlier ones refreshed and the migration
-- unapplied, and a rerun refreshes again (refreshing is idempotent).

CALL refresh_continuous_aggregate('analytics_daily_active_users', NULL, NULL); --@community
REFRESH MATERIALIZED VIEW analytics_daily_active_users; --@apache
CALL refresh_continuous_aggregate('analytics_task_stats_daily', NULL, NULL); --@community
REFRESH MATERIALIZED VIEW analytics_task_stats_daily; --@apache
CALL refresh_continuous_aggregate('analytics_api_latency_hourly', NULL, NULL); --@community
REFRESH MATERIALIZED VIEW analytics_api_latency_hourly; --@apache
CALL refresh_continuous_aggregate('analytics_integration_health_daily', NULL, NULL); --@community
REFRESH MATERIALIZED VIEW analytics_integration_health_daily; --@apache
CALL refresh_continuous_aggregate('analytics_auth_events_daily', NULL, NULL); --@community
REFRESH MATERIALIZED VIEW analytics_auth_events_daily; --@apache
CALL refresh_continuous_aggregate('analytics_cocoon_activity_daily', NULL, NULL); --@community
REFRESH MATERIALIZED VIEW analytics_cocoon_activity_daily; --@apache
CALL refresh_continuous_aggregate('analytics_errors_hourly', NULL, NULL); --@community
REFRESH MATERIALIZED VIEW analytics_errors_hourly; --@apache
