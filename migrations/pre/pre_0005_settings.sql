-- The schema's tunable settings (`analytics-migrate post --retention 365d` and the like):
-- one row per setting a deploy changed from its default. `post` makes the policies match
-- them (Community edition); on the Apache edition `maintain` and the incremental refresh
-- read them through analytics_setting(), so a change takes effect at their next run.

CREATE TABLE IF NOT EXISTS analytics_settings (
    name        TEXT        PRIMARY KEY,
    value       INTERVAL    NOT NULL CHECK (value > INTERVAL '0'),
    -- Where the value came from when it was set: an option or an environment variable.
    source      TEXT        NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A setting's value, or `fallback` (its default) while no deploy has set it.
CREATE OR REPLACE FUNCTION analytics_setting(setting TEXT, fallback INTERVAL)
RETURNS INTERVAL
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT coalesce((SELECT s.value FROM analytics_settings s WHERE s.name = setting), fallback)
$$;

-- `status` shows the settings, and reads them as a member of analytics_reader can.
DO $grants$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'analytics_reader') THEN
        GRANT SELECT ON analytics_settings TO analytics_reader;
    END IF;
END
$grants$;
