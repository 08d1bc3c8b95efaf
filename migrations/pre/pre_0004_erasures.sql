-- One row per erasure of a person's events (`analytics-users erase`): the proof that a
-- request was carried out, kept for as long as the schema lives. It holds no personal data:
-- the user is named by the SHA-256 of their id (random UUIDs cannot be guessed back from it,
-- yet "was this user erased?" can be answered by hashing the id again).

CREATE TABLE IF NOT EXISTS analytics_erasures (
    id              BIGSERIAL   PRIMARY KEY,
    erased_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    subject_sha256  TEXT        NOT NULL,
    -- Rows deleted from analytics_events.
    raw_rows        BIGINT      NOT NULL,
    -- Rows of analytics_daily_active_users deleted where no raw data was left to recompute.
    aggregate_rows  BIGINT      NOT NULL,
    edition         TEXT        NOT NULL,
    erased_by       TEXT        NOT NULL DEFAULT current_user
);

CREATE INDEX IF NOT EXISTS analytics_erasures_subject_idx
    ON analytics_erasures (subject_sha256, erased_at);
