-- transactional: false
-- Apache edition: aggregates that keep their history and refresh incrementally.
--
-- The materialized views of post_0002 were refreshed whole from the raw events, so once
-- retention had dropped raw chunks older than 90 days, the next refresh lost every aggregate
-- row older than that, and each refresh cost the whole history. Each aggregate becomes:
--
--   <name>_materialized   a table of materialized rows, never emptied: rows older than the
--                         raw retention stay forever;
--   <name>_between(a, b)  the aggregate's own query over the events of [a, b), generated
--                         below from the materialized view's definition (post_0002 stays
--                         the one place the query is written);
--   <name>                a view with the same name and columns: the materialized rows
--                         before the aggregate's watermark, and the buckets from it on
--                         computed from the raw events at query time, like real-time
--                         aggregation on the Community edition;
--
-- and analytics_aggregate_refreshes keeps, per aggregate, the watermark and what the last
-- refresh saw. analytics_refresh_aggregate(name) (run by `analytics-migrate maintain`, or by
-- pg_cron through analytics_refresh_aggregates()) recomputes, in one transaction, the
-- buckets of the last 3 days up to 1 hour ago (the Community refresh policy's window), any
-- bucket since the old watermark, and older buckets of the last 14 days that received
-- events since the previous runs (found by the events' ids, which follow insertion order).
-- Readers never see half a refresh: the rows and the watermark change in one transaction.
--
-- Existing rows move over unchanged. Each aggregate converts in a transaction of its own, so
-- a reader waits for at most one conversion (copying its rows), and a failed step leaves the
-- ones before it done; every step is safe to run again. The Community edition keeps its
-- continuous aggregates: this migration applies nothing there.

--@apache
CREATE TABLE IF NOT EXISTS analytics_aggregate_refreshes (
    aggregate          text        PRIMARY KEY,
    bucket_column      text        NOT NULL,
    bucket_width       interval    NOT NULL,
    -- Buckets before it are materialized; from it on the view computes them live. NULL
    -- while nothing is materialized.
    materialized_until timestamptz,
    -- Events with a larger id arrived after the refresh before last: an older bucket
    -- holding one is recomputed. Two runs back, so that a transaction that took its ids
    -- before a run and committed after it is still seen by the next one.
    seen_id            bigint      NOT NULL DEFAULT 0,
    -- The id sequence's value when the last refresh started: seen_id of the next one.
    next_seen_id       bigint      NOT NULL DEFAULT 0,
    refreshed_at       timestamptz,
    detail             text
);

INSERT INTO analytics_aggregate_refreshes (aggregate, bucket_column, bucket_width) VALUES
    ('analytics_daily_active_users',       'day',  INTERVAL '1 day'),
    ('analytics_task_stats_daily',         'day',  INTERVAL '1 day'),
    ('analytics_api_latency_hourly',       'hour', INTERVAL '1 hour'),
    ('analytics_integration_health_daily', 'day',  INTERVAL '1 day'),
    ('analytics_auth_events_daily',        'day',  INTERVAL '1 day'),
    ('analytics_cocoon_activity_daily',    'day',  INTERVAL '1 day'),
    ('analytics_errors_hourly',            'hour', INTERVAL '1 hour')
ON CONFLICT (aggregate) DO NOTHING;

-- What the views read on every query: STABLE, so one query sees one value.
CREATE OR REPLACE FUNCTION analytics_materialized_until(aggregate text)
RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT coalesce(
        (SELECT r.materialized_until FROM analytics_aggregate_refreshes r
          WHERE r.aggregate = analytics_materialized_until.aggregate),
        '-infinity')
$$;

-- The highest id the events table has handed out (NULL before the first).
CREATE OR REPLACE FUNCTION analytics_events_last_id()
RETURNS bigint
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    last_id bigint;
BEGIN
    EXECUTE format('SELECT CASE WHEN is_called THEN last_value END FROM %s',
                   pg_get_serial_sequence('analytics_events', 'id'))
       INTO last_id;
    RETURN last_id;
END
$$;

-- Turn the materialized view `aggregate` (post_0002) into the shape above, keeping its rows;
-- where <aggregate>_materialized exists already (repair after the view was lost), the
-- view's buckets replace the table's and the older rows stay. A no-op for an aggregate that
-- is not a materialized view.
CREATE OR REPLACE FUNCTION analytics_convert_aggregate(aggregate text)
RETURNS void
LANGUAGE plpgsql
AS $convert$
DECLARE
    state       analytics_aggregate_refreshes;
    stored      text := aggregate || '_materialized';
    between_fn  text := aggregate || '_between';
    definition  text;
    index_sql   text;
    index_name  text;
    populated   boolean;
    until       timestamptz;
BEGIN
    SELECT ispopulated INTO populated FROM pg_matviews
     WHERE matviewname = aggregate AND schemaname = current_schema();
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT * INTO STRICT state FROM analytics_aggregate_refreshes r WHERE r.aggregate = analytics_convert_aggregate.aggregate;

    -- The query reads the events once; restricting that read to [since, until) gives the
    -- rows of exactly the buckets in it (bucket bounds are multiples of the width).
    definition := rtrim(rtrim(pg_get_viewdef(aggregate::regclass)), ';');
    IF (length(definition) - length(replace(definition, 'FROM analytics_events', '')))
        <> length('FROM analytics_events') THEN
        RAISE EXCEPTION 'cannot convert %: its query does not read analytics_events once', aggregate;
    END IF;
    definition := replace(definition, 'FROM analytics_events',
        'FROM (SELECT * FROM analytics_events'
        ' WHERE "timestamp" >= since AND "timestamp" < until) analytics_events');

    EXECUTE format('CREATE TABLE IF NOT EXISTS %I (LIKE %I)', stored, aggregate);
    -- LANGUAGE sql and STABLE, so that the planner inlines it: the time range then excludes
    -- chunks and uses the events' indexes.
    EXECUTE format(
        'CREATE OR REPLACE FUNCTION %I(since timestamptz, until timestamptz) RETURNS SETOF %I'
        ' LANGUAGE sql STABLE AS %L', between_fn, stored, definition);

    IF populated THEN
        EXECUTE format('DELETE FROM %1$I WHERE %2$I IN (SELECT DISTINCT %2$I FROM %3$I)',
                       stored, state.bucket_column, aggregate);
        EXECUTE format('INSERT INTO %I SELECT * FROM %I', stored, aggregate);
    END IF;

    -- The view's indexes move to the table, renamed after it.
    FOR index_name, index_sql IN
        SELECT indexname, indexdef FROM pg_indexes
         WHERE tablename = aggregate AND schemaname = current_schema()
    LOOP
        IF to_regclass(stored || substr(index_name, length(aggregate) + 1)) IS NULL THEN
            EXECUTE replace(
                replace(index_sql, 'INDEX ' || index_name || ' ON ',
                        'INDEX ' || stored || substr(index_name, length(aggregate) + 1) || ' ON '),
                ' ON ' || current_schema() || '.' || aggregate || ' USING',
                ' ON ' || current_schema() || '.' || stored || ' USING');
        END IF;
    END LOOP;
    EXECUTE format('DROP MATERIALIZED VIEW %I', aggregate);

    -- Each part reads the watermark once, through a subquery the planner keeps (OFFSET 0):
    -- the materialized part then scans only its rows, and the live part, its function
    -- inlined, only the chunks from the watermark on.
    EXECUTE format(
        'CREATE VIEW %1$I AS'
        ' SELECT m.* FROM (SELECT analytics_materialized_until(%2$L) AS until OFFSET 0) w'
        '   JOIN %3$I m ON m.%4$I < w.until'
        ' UNION ALL'
        ' SELECT live.* FROM (SELECT analytics_materialized_until(%2$L) AS since OFFSET 0) w,'
        '   LATERAL %5$I(w.since, ''infinity'') live',
        aggregate, aggregate, stored, state.bucket_column, between_fn);

    -- The newest bucket may have been partial when the view was refreshed: it is computed
    -- live from now on, and the next refresh materializes it. Unless its events are gone
    -- (retention dropped their chunk; a bucket lies in one chunk): then its row stays.
    EXECUTE format('SELECT max(%I) FROM %I', state.bucket_column, stored) INTO until;
    IF until IS NOT NULL AND NOT EXISTS (
        SELECT FROM analytics_events e
         WHERE e."timestamp" >= until AND e."timestamp" < until + state.bucket_width) THEN
        until := until + state.bucket_width;
    END IF;
    EXECUTE format('DELETE FROM %I WHERE %I >= %L', stored, state.bucket_column, until);
    -- Whatever arrived for older buckets since the view's refresh is unknown: the first
    -- refresh looks at every event of the last 14 days.
    UPDATE analytics_aggregate_refreshes r
       SET materialized_until = until, seen_id = 0,
           next_seen_id = coalesce(analytics_events_last_id(), 0), refreshed_at = NULL,
           detail = 'converted from a materialized view'
     WHERE r.aggregate = analytics_convert_aggregate.aggregate;

    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'analytics_reader') THEN
        EXECUTE format('GRANT SELECT ON %I TO analytics_reader', aggregate);
    END IF;
END
$convert$;

-- One refresh of one aggregate, in the caller's transaction; returns what it did. Concurrent
-- refreshes of one aggregate wait for each other (the row lock on its state).
CREATE OR REPLACE FUNCTION analytics_refresh_aggregate(aggregate text)
RETURNS text
LANGUAGE plpgsql
AS $refresh$
DECLARE
    state          analytics_aggregate_refreshes;
    stored         text := aggregate || '_materialized';
    between_fn     text := aggregate || '_between';
    last_id        bigint := coalesce(analytics_events_last_id(), 0);
    window_start   timestamptz;
    window_end     timestamptz;
    lookback_start timestamptz;
    late           timestamptz[];
    range_start    timestamptz;
    range_end      timestamptz;
    done           text;
BEGIN
    SELECT * INTO state FROM analytics_aggregate_refreshes r
     WHERE r.aggregate = analytics_refresh_aggregate.aggregate FOR UPDATE;
    IF NOT FOUND OR to_regclass(stored) IS NULL THEN
        RAISE EXCEPTION 'no incrementally refreshed aggregate named %', aggregate
            USING HINT = 'Run analytics-migrate all (or repair) first.';
    END IF;
    -- The refresh window (the settings; by default 3 days up to 1 hour ago), and every bucket since the old
    -- watermark (maintain may not have run for longer than that).
    window_end := greatest(time_bucket(state.bucket_width,
                                       now() - analytics_setting('refresh_end_offset', INTERVAL '1 hour')),
                           state.materialized_until);
    window_start := least(time_bucket(state.bucket_width,
                                      now() - analytics_setting('refresh_start_offset', INTERVAL '3 days')),
                          coalesce(state.materialized_until, '-infinity'));

    -- Late events: buckets of the last 14 days before the window that received rows since
    -- the runs before. Older buckets are left as they are (README: "late events").
    lookback_start := time_bucket(state.bucket_width, now() - INTERVAL '14 days');
    IF state.materialized_until IS NOT NULL AND lookback_start < window_start THEN
        -- EXECUTE plans with the values, so only the chunks of the range are opened: with
        -- many chunks, planning over all of them would cost more than the scan.
        EXECUTE 'SELECT array_agg(DISTINCT time_bucket($1, "timestamp")) FROM analytics_events'
                ' WHERE "timestamp" >= $2 AND "timestamp" < $3 AND id > $4'
           INTO late
          USING state.bucket_width, lookback_start, window_start, state.seen_id;
    END IF;

    EXECUTE format('DELETE FROM %I WHERE %I >= $1 AND %I < $2',
                   stored, state.bucket_column, state.bucket_column)
      USING window_start, window_end;
    EXECUTE format('INSERT INTO %I SELECT * FROM %I($1, $2)', stored, between_fn)
      USING window_start, window_end;
    -- Runs of consecutive late buckets are recomputed as one range each.
    FOR range_start, range_end IN
        SELECT min(b), max(b) + state.bucket_width
          FROM (SELECT b, b - state.bucket_width * row_number() OVER (ORDER BY b) AS run
                  FROM unnest(late) AS b) buckets
         GROUP BY run
    LOOP
        EXECUTE format('DELETE FROM %I WHERE %I >= $1 AND %I < $2',
                       stored, state.bucket_column, state.bucket_column)
          USING range_start, range_end;
        EXECUTE format('INSERT INTO %I SELECT * FROM %I($1, $2)', stored, between_fn)
          USING range_start, range_end;
    END LOOP;

    UPDATE analytics_aggregate_refreshes r
       SET materialized_until = window_end, seen_id = state.next_seen_id,
           next_seen_id = greatest(last_id, state.next_seen_id), refreshed_at = now(),
           detail = format('materialized up to %s; %s late bucket(s) recomputed',
                           to_char(window_end AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'),
                           coalesce(cardinality(late), 0))
     WHERE r.aggregate = analytics_refresh_aggregate.aggregate
    RETURNING r.detail INTO STRICT done;
    RETURN done;
END
$refresh$;

-- Every aggregate, one transaction each: what pg_cron runs (CALL commits between them).
CREATE OR REPLACE PROCEDURE analytics_refresh_aggregates()
LANGUAGE plpgsql
AS $$
DECLARE
    name text;
BEGIN
    FOR name IN SELECT aggregate FROM analytics_aggregate_refreshes ORDER BY aggregate LOOP
        PERFORM analytics_refresh_aggregate(name);
        COMMIT;
    END LOOP;
END
$$;

SELECT analytics_convert_aggregate('analytics_daily_active_users');
SELECT analytics_convert_aggregate('analytics_task_stats_daily');
SELECT analytics_convert_aggregate('analytics_api_latency_hourly');
SELECT analytics_convert_aggregate('analytics_integration_health_daily');
SELECT analytics_convert_aggregate('analytics_auth_events_daily');
SELECT analytics_convert_aggregate('analytics_cocoon_activity_daily');
SELECT analytics_convert_aggregate('analytics_errors_hourly');

DO $grants$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'analytics_reader') THEN
        GRANT SELECT ON analytics_aggregate_refreshes TO analytics_reader;
    END IF;
END
$grants$;
--@end
