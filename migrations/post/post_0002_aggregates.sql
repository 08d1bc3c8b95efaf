-- The seven rollups the read side answers from.
--
-- Community edition: continuous aggregates with real-time aggregation
-- (materialized_only = false). A daily bucket is only materialized once the day is over, so
-- without it "today" would be missing from every daily answer until the next morning; the
-- price is that a query also aggregates the raw events newer than the last refresh, at most
-- about one bucket of data behind an hourly policy.
-- Apache edition: the same names, columns and rows as plain materialized views, refreshed by
-- `analytics-migrate maintain`; they are as fresh as its last run. A unique index on each
-- lets `maintain` refresh them CONCURRENTLY, without blocking readers.
--
-- Buckets are UTC: time_bucket() on timestamptz does not depend on the session time zone.
-- Payload fields are read through the functions below so that a malformed value (a string
-- where a number belongs, a number out of range, an id that is not a UUID) becomes NULL
-- instead of failing the refresh, and with it every later refresh.
-- Keys read from the payload are COALESCEd to '(unknown)' so that grouping columns are never
-- NULL, which keeps the unique indexes meaningful.

CREATE OR REPLACE FUNCTION analytics_json_ms(value jsonb)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN jsonb_typeof(value) = 'number' AND value::numeric BETWEEN 0 AND 1e15
        THEN value::numeric::double precision
    END
$$;

CREATE OR REPLACE FUNCTION analytics_json_int(value jsonb)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN jsonb_typeof(value) = 'number' AND value::numeric BETWEEN -2147483648 AND 2147483647
        THEN trunc(value::numeric)::integer
    END
$$;

-- Text keys (route, method, provider, ...) only from JSON strings: `->>` would turn an array
-- or a number into its JSON text and make a new group of it.
CREATE OR REPLACE FUNCTION analytics_json_text(value jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN jsonb_typeof(value) = 'string' THEN value #>> '{}' END
$$;

CREATE OR REPLACE FUNCTION analytics_json_uuid(value jsonb)
RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN jsonb_typeof(value) = 'string'
         AND value #>> '{}' ~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$'
        THEN (value #>> '{}')::uuid
    END
$$;

-- Daily active users: one row per (day, user), so that WAU and MAU are exact counts of
-- distinct users over any window rather than sums of daily counts.
CREATE MATERIALIZED VIEW analytics_daily_active_users
WITH (timescaledb.continuous, timescaledb.materialized_only = false) --@community
AS
SELECT
    time_bucket(INTERVAL '1 day', "timestamp") AS day,
    user_id,
    count(*)                                   AS event_count,
    min("timestamp")                           AS first_event_at,
    max("timestamp")                           AS last_event_at
FROM analytics_events
WHERE user_id IS NOT NULL
GROUP BY day, user_id
WITH NO DATA;

CREATE UNIQUE INDEX analytics_daily_active_users_key ON analytics_daily_active_users (day, user_id); --@apache
CREATE INDEX analytics_daily_active_users_user_idx ON analytics_daily_active_users (user_id, day DESC);

CREATE MATERIALIZED VIEW analytics_task_stats_daily
WITH (timescaledb.continuous, timescaledb.materialized_only = false) --@community
AS
SELECT
    time_bucket(INTERVAL '1 day', "timestamp")                                AS day,
    count(*) FILTER (WHERE event_type = 'task_created')                       AS created_count,
    count(*) FILTER (WHERE event_type = 'task_started')                       AS started_count,
    count(*) FILTER (WHERE event_type = 'task_completed')                     AS completed_count,
    count(*) FILTER (WHERE event_type = 'task_failed')                        AS failed_count,
    count(*) FILTER (WHERE event_type = 'task_cancelled')                     AS cancelled_count,
    count(analytics_json_ms(data -> 'duration_ms'))
        FILTER (WHERE event_type = 'task_completed')                          AS timed_count,
    sum(analytics_json_ms(data -> 'duration_ms'))
        FILTER (WHERE event_type = 'task_completed')                          AS duration_sum_ms,
    max(analytics_json_ms(data -> 'duration_ms'))
        FILTER (WHERE event_type = 'task_completed')                          AS duration_max_ms,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY analytics_json_ms(data -> 'duration_ms'))
        FILTER (WHERE event_type = 'task_completed')                          AS duration_p50_ms,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY analytics_json_ms(data -> 'duration_ms'))
        FILTER (WHERE event_type = 'task_completed')                          AS duration_p95_ms
FROM analytics_events
WHERE event_type IN ('task_created', 'task_started', 'task_completed', 'task_failed', 'task_cancelled')
GROUP BY day
WITH NO DATA;

CREATE UNIQUE INDEX analytics_task_stats_daily_key ON analytics_task_stats_daily (day); --@apache

-- Request counts and latency per (hour, service, method, route). Percentiles are exact within
-- each hour; a wider window is answered from these rows without raw data (see the read side).
CREATE MATERIALIZED VIEW analytics_api_latency_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) --@community
AS
SELECT
    time_bucket(INTERVAL '1 hour', "timestamp")                                 AS hour,
    service,
    COALESCE(analytics_json_text(data -> 'method'), '(unknown)')                 AS method,
    COALESCE(analytics_json_text(data -> 'route'), '(unknown)')                  AS route,
    count(*)                                                                    AS request_count,
    count(*) FILTER (WHERE analytics_json_int(data -> 'status_code') >= 500)    AS server_error_count,
    count(*) FILTER (WHERE analytics_json_int(data -> 'status_code') BETWEEN 400 AND 499)
                                                                                AS client_error_count,
    count(analytics_json_ms(data -> 'latency_ms'))                              AS timed_count,
    sum(analytics_json_ms(data -> 'latency_ms'))                                AS latency_sum_ms,
    max(analytics_json_ms(data -> 'latency_ms'))                                AS latency_max_ms,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY analytics_json_ms(data -> 'latency_ms'))
                                                                                AS latency_p50_ms,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY analytics_json_ms(data -> 'latency_ms'))
                                                                                AS latency_p95_ms,
    percentile_cont(0.99) WITHIN GROUP (ORDER BY analytics_json_ms(data -> 'latency_ms'))
                                                                                AS latency_p99_ms
FROM analytics_events
WHERE event_type = 'api_request'
GROUP BY hour, service, method, route
WITH NO DATA;

CREATE UNIQUE INDEX analytics_api_latency_hourly_key ON analytics_api_latency_hourly (hour, service, method, route); --@apache
CREATE INDEX analytics_api_latency_hourly_route_idx ON analytics_api_latency_hourly (service, route, hour DESC);

CREATE MATERIALIZED VIEW analytics_integration_health_daily
WITH (timescaledb.continuous, timescaledb.materialized_only = false) --@community
AS
SELECT
    time_bucket(INTERVAL '1 day', "timestamp")                                   AS day,
    COALESCE(analytics_json_text(data -> 'provider'), '(unknown)')                AS provider,
    count(*) FILTER (WHERE event_type = 'integration_connected')                 AS connected_count,
    count(*) FILTER (WHERE event_type = 'integration_disconnected')              AS disconnected_count,
    count(*) FILTER (WHERE event_type = 'integration_used')                      AS used_count,
    count(*) FILTER (WHERE event_type = 'integration_error')                     AS error_count,
    count(*) FILTER (WHERE event_type = 'oauth_flow_started')                    AS oauth_started_count,
    count(*) FILTER (WHERE event_type = 'oauth_flow_completed'
                       AND data -> 'success' = 'true'::jsonb)                    AS oauth_succeeded_count,
    count(*) FILTER (WHERE event_type = 'oauth_flow_completed'
                       AND data -> 'success' IS DISTINCT FROM 'true'::jsonb)     AS oauth_failed_count,
    max("timestamp") FILTER (WHERE event_type IN ('integration_connected', 'integration_used')
                                OR (event_type = 'oauth_flow_completed'
                                    AND data -> 'success' = 'true'::jsonb))      AS last_success_at,
    max("timestamp") FILTER (WHERE event_type = 'integration_error'
                                OR (event_type = 'oauth_flow_completed'
                                    AND data -> 'success' IS DISTINCT FROM 'true'::jsonb))
                                                                                 AS last_failure_at
FROM analytics_events
WHERE event_type IN ('integration_connected', 'integration_disconnected', 'integration_used',
                     'integration_error', 'oauth_flow_started', 'oauth_flow_completed')
GROUP BY day, provider
WITH NO DATA;

CREATE UNIQUE INDEX analytics_integration_health_daily_key ON analytics_integration_health_daily (day, provider); --@apache
CREATE INDEX analytics_integration_health_daily_provider_idx ON analytics_integration_health_daily (provider, day DESC);

CREATE MATERIALIZED VIEW analytics_auth_events_daily
WITH (timescaledb.continuous, timescaledb.materialized_only = false) --@community
AS
SELECT
    time_bucket(INTERVAL '1 day', "timestamp")                               AS day,
    event_type,
    COALESCE(analytics_json_text(data -> 'method'), '(none)')                 AS method,
    count(*)                                                                 AS attempt_count,
    count(*) FILTER (WHERE data -> 'success' = 'true'::jsonb)                AS success_count,
    count(*) FILTER (WHERE data -> 'success' IS DISTINCT FROM 'true'::jsonb) AS failure_count
FROM analytics_events
WHERE event_type IN ('auth_login_attempt', 'auth_code_verified', 'auth_token_refresh',
                     'auth_session_validated')
GROUP BY day, event_type, method
WITH NO DATA;

CREATE UNIQUE INDEX analytics_auth_events_daily_key ON analytics_auth_events_daily (day, event_type, method); --@apache

-- Every event that names a cocoon counts as activity of that cocoon; a connection opens a
-- session and its disconnection reports how long it lasted.
CREATE MATERIALIZED VIEW analytics_cocoon_activity_daily
WITH (timescaledb.continuous, timescaledb.materialized_only = false) --@community
AS
SELECT
    time_bucket(INTERVAL '1 day', "timestamp")                                AS day,
    analytics_json_uuid(data -> 'cocoon_id')                                  AS cocoon_id,
    count(*)                                                                  AS event_count,
    count(*) FILTER (WHERE event_type = 'cocoon_connected')                   AS session_count,
    count(*) FILTER (WHERE event_type = 'cocoon_disconnected')                AS disconnect_count,
    sum(analytics_json_ms(data -> 'session_duration_ms'))
        FILTER (WHERE event_type = 'cocoon_disconnected')                     AS connected_ms,
    count(*) FILTER (WHERE event_type LIKE 'task\_%')                         AS task_event_count,
    min("timestamp")                                                          AS first_seen_at,
    max("timestamp")                                                          AS last_seen_at
FROM analytics_events
WHERE analytics_json_uuid(data -> 'cocoon_id') IS NOT NULL
GROUP BY day, cocoon_id
WITH NO DATA;

CREATE UNIQUE INDEX analytics_cocoon_activity_daily_key ON analytics_cocoon_activity_daily (day, cocoon_id); --@apache
CREATE INDEX analytics_cocoon_activity_daily_cocoon_idx ON analytics_cocoon_activity_daily (cocoon_id, day DESC);

-- What counts as an error, and its kind: application errors by their own kind, failed tasks,
-- integration errors by provider, HTTP 5xx by status, and failed webhook deliveries,
-- database queries and OAuth flows.
CREATE MATERIALIZED VIEW analytics_errors_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) --@community
AS
SELECT
    time_bucket(INTERVAL '1 hour', "timestamp") AS hour,
    service,
    event_type,
    COALESCE(
        CASE event_type
            WHEN 'application_error' THEN analytics_json_text(data -> 'error_kind')
            WHEN 'integration_error' THEN analytics_json_text(data -> 'provider')
            WHEN 'api_request'       THEN 'http_' || analytics_json_int(data -> 'status_code')
            ELSE event_type
        END,
        '(unknown)'
    )                                           AS error_kind,
    count(*)                                    AS error_count,
    max("timestamp")                            AS last_seen_at
FROM analytics_events
WHERE event_type IN ('application_error', 'task_failed', 'integration_error')
   OR (event_type = 'api_request' AND analytics_json_int(data -> 'status_code') >= 500)
   OR (event_type IN ('webhook_processed', 'database_query', 'oauth_flow_completed')
       AND data -> 'success' = 'false'::jsonb)
GROUP BY hour, service, event_type, error_kind
WITH NO DATA;

CREATE UNIQUE INDEX analytics_errors_hourly_key ON analytics_errors_hourly (hour, service, event_type, error_kind); --@apache
CREATE INDEX analytics_errors_hourly_service_idx ON analytics_errors_hourly (service, hour DESC);
