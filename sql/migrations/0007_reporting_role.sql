-- A read-only reporting role, syncd_report, that sees the report.* views and nothing else.
--
-- It is a NOLOGIN group: give people and tools their own login role IN ROLE syncd_report
-- (`syncd db reader NAME` does this). Roles belong to the whole PostgreSQL cluster, so the role
-- is created only when missing. On a managed database where syncd's user may not create roles,
-- this migration only warns: have the DBA create the role, then run the three statements after
-- the role check by hand (README, "Reporting").
--
-- The views run with their owner's rights, so SELECT on report.* is all a reader needs; it has
-- no USAGE on vendor, local or ops. ALTER DEFAULT PRIVILEGES covers every view that later
-- migrations add to report.* (they are created by the same user that runs this one).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'syncd_report') THEN
        BEGIN
            CREATE ROLE syncd_report NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created meanwhile by a migration of another database on this cluster
        WHEN insufficient_privilege THEN
            RAISE WARNING 'syncd: cannot create role syncd_report (needs CREATEROLE); create it '
                          'and run the GRANTs of migration 0007 by hand';
            RETURN;
        END;
    END IF;
    GRANT USAGE ON SCHEMA report TO syncd_report;
    GRANT SELECT ON ALL TABLES IN SCHEMA report TO syncd_report;
    ALTER DEFAULT PRIVILEGES IN SCHEMA report GRANT SELECT ON TABLES TO syncd_report;
END
$$;
