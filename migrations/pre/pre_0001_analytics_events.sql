-- The table every service writes to. Applied before new application code starts.
--
-- Columns follow the reference design, plus `event_id`: the client stamps each event with a
-- time-ordered UUID so that, after a connection drops between COMMIT and its acknowledgement,
-- it can ask which events of the in-doubt batch already landed and never write one twice.
-- Being time-ordered (UUIDv7 layout), new ids land at the right edge of the index, which keeps
-- the unique index cheap on a high-ingest table.

CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE IF NOT EXISTS analytics_events (
    id          BIGSERIAL,
    "timestamp" TIMESTAMPTZ  NOT NULL DEFAULT now(),
    event_type  VARCHAR(100) NOT NULL,
    service     VARCHAR(100) NOT NULL,
    user_id     UUID,
    data        JSONB        NOT NULL,
    event_id    UUID         NOT NULL DEFAULT gen_random_uuid(),
    PRIMARY KEY ("timestamp", id)
);

-- One-day chunks: a day of events fits comfortably in memory, and compression and retention
-- then work on whole days. The primary key already leads with time, so the default time index
-- would be a duplicate.
SELECT create_hypertable(
    'analytics_events', 'timestamp',
    chunk_time_interval => INTERVAL '1 day',
    create_default_indexes => false,
    if_not_exists => true
);

-- Unique indexes on a hypertable must contain the partitioning column.
CREATE UNIQUE INDEX IF NOT EXISTS analytics_events_event_id_idx
    ON analytics_events (event_id, "timestamp");

-- The aggregates filter by event type; dashboards and per-service views by service; per-user
-- lookups (activity logs, "first/last seen") by user. Each index leads with the filter and
-- ends with time so a range scan comes back already ordered.
CREATE INDEX IF NOT EXISTS analytics_events_event_type_time_idx
    ON analytics_events (event_type, "timestamp" DESC);
CREATE INDEX IF NOT EXISTS analytics_events_service_time_idx
    ON analytics_events (service, "timestamp" DESC);
CREATE INDEX IF NOT EXISTS analytics_events_user_time_idx
    ON analytics_events (user_id, "timestamp" DESC) WHERE user_id IS NOT NULL;

-- Per-project and per-cocoon activity reads these ids out of the payload. Partial indexes
-- cost nothing for the many events that carry neither (payloads hold absent optional fields
-- as null, hence IS NOT NULL rather than the ? operator). A query's `data ->> 'x' = $1`
-- implies the predicate, so the planner can use them.
CREATE INDEX IF NOT EXISTS analytics_events_project_time_idx
    ON analytics_events ((data ->> 'project_id'), "timestamp" DESC)
    WHERE data ->> 'project_id' IS NOT NULL;
CREATE INDEX IF NOT EXISTS analytics_events_cocoon_time_idx
    ON analytics_events ((data ->> 'cocoon_id'), "timestamp" DESC)
    WHERE data ->> 'cocoon_id' IS NOT NULL;
