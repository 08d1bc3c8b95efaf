-- analytics_reader (pre_0003_roles.sql) reads the seven aggregates. `repair` runs this again
-- after rebuilding one, so an aggregate that does not exist (yet) is skipped.

DO $grants$
DECLARE
    aggregate text;
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'analytics_reader') THEN
        FOREACH aggregate IN ARRAY ARRAY[
            'analytics_daily_active_users', 'analytics_task_stats_daily',
            'analytics_api_latency_hourly', 'analytics_integration_health_daily',
            'analytics_auth_events_daily', 'analytics_cocoon_activity_daily',
            'analytics_errors_hourly'
        ] LOOP
            IF to_regclass(aggregate) IS NOT NULL THEN
                EXECUTE format('GRANT SELECT ON %I TO analytics_reader', aggregate);
            END IF;
        END LOOP;
    END IF;
END
$grants$;
