-- What `analytics-migrate maintain` last did, one row per task. Written by `maintain`, read
-- by `status`: where background jobs cannot run (no scheduler, failing workers, paused jobs),
-- `maintain` on a schedule does their work, and `status --check-jobs` counts a job as healthy
-- while either the scheduler or `maintain` keeps running it successfully.

CREATE TABLE IF NOT EXISTS analytics_maintenance_runs (
    task        TEXT        PRIMARY KEY,
    -- The TimescaleDB job the task ran (Community edition); NULL for the Apache edition's
    -- own upkeep (view refreshes, dropping chunks).
    job_id      INTEGER,
    finished_at TIMESTAMPTZ NOT NULL,
    ok          BOOLEAN     NOT NULL,
    detail      TEXT        NOT NULL,
    -- The last time this task succeeded, kept when a later run fails.
    last_success_at TIMESTAMPTZ
);
