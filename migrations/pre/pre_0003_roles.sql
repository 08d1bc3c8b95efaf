-- Least-privilege roles: services write events as members of analytics_writer, dashboards,
-- reports and `analytics-migrate status` read as members of analytics_reader, and the role
-- that runs the migrations owns every object. Grant membership to your login roles:
--     CREATE ROLE platform_api LOGIN PASSWORD '...' IN ROLE analytics_writer;
--
-- The roles are cluster-wide and created once (NOLOGIN); creating them needs CREATEROLE. A
-- migrating role without it gets a warning and the grants to whichever roles exist; status
-- then reports what is missing as drift, and `analytics-migrate repair` completes it once
-- the roles exist (or when run by a role that may create them).
--
-- analytics_writer: INSERT into the events table (binary COPY needs it), the id sequence,
-- and SELECT on it: the client reads back event ids to find out which events of a batch
-- landed when a commit's acknowledgement was lost. (SELECT of just those columns would be
-- tighter, but TimescaleDB cannot grant by column once compression is on.) Nothing else:
-- it cannot read the aggregates, delete, alter or drop anything.
-- analytics_reader: SELECT on our relations only (the events, the migration ledger and the
-- maintenance record that status reads; post_0005 adds the aggregates), never on the rest
-- of a schema an application may share.

DO $roles$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['analytics_writer', 'analytics_reader'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
            EXCEPTION
                WHEN duplicate_object OR unique_violation THEN
                    NULL;  -- another database's deploy created it a moment ago
                WHEN insufficient_privilege THEN
                    RAISE WARNING 'cannot create role % (needs CREATEROLE): create it as a '
                        'superuser (CREATE ROLE % NOLOGIN) and run analytics-migrate again',
                        role_name, role_name;
            END;
        END IF;
    END LOOP;

    -- Writers creating a chunk update the catalog rows a GRANT updates ("tuple concurrently
    -- updated"): hold inserts back for this short transaction (lock_timeout bounds the wait).
    LOCK TABLE analytics_events IN SHARE ROW EXCLUSIVE MODE;

    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'analytics_writer') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO analytics_writer', current_schema());
        GRANT INSERT ON analytics_events TO analytics_writer;
        GRANT SELECT ON analytics_events TO analytics_writer;
        GRANT USAGE ON SEQUENCE analytics_events_id_seq TO analytics_writer;
    END IF;

    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'analytics_reader') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO analytics_reader', current_schema());
        FOREACH role_name IN ARRAY ARRAY['analytics_events', 'analytics_maintenance_runs',
                                         '_yoyo_migration', 'analytics_migration_checksums'] LOOP
            -- The ledger tables exist where yoyo applies the migrations.
            IF to_regclass(role_name) IS NOT NULL THEN
                EXECUTE format('GRANT SELECT ON %I TO analytics_reader', role_name);
            END IF;
        END LOOP;
    END IF;
END
$roles$;
