-- Compression after 7 days and retention of 90 days for the raw events.
--
-- Community edition only: the Apache edition (distribution packages, Azure Database for
-- PostgreSQL) has neither, so there this migration applies nothing, `status` reports
-- compression as unavailable and `analytics-migrate maintain` drops expired chunks instead.
--
-- segmentby event_type: every aggregate and most ad-hoc questions filter on the event type, so
-- a query decompresses only the segments it asks for, and rows of one type share a JSON shape,
-- which compresses well. Service or user would make segments too small to compress
-- (many users, few events each). orderby "timestamp" DESC, id: newest-first matches how the
-- recent past is read and keeps the primary key's order inside a segment.

--@community
ALTER TABLE analytics_events SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'event_type',
    timescaledb.compress_orderby = '"timestamp" DESC, id DESC'
);
--@end

--@community
SELECT add_compression_policy('analytics_events', INTERVAL '7 days', if_not_exists => true);
--@end

--@community
SELECT add_retention_policy('analytics_events', INTERVAL '90 days', if_not_exists => true);
--@end
