-- reader_exists --
-- Whether a role of this name exists in the cluster.
SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)

-- reader_create_statement --
-- The CREATE ROLE statement for a reporting login (quoted by the server: DDL takes no parameters).
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L IN ROLE syncd_report', $1::text, $2::text)

-- reader_password_statement --
-- The statement that sets a reporting login's password and makes sure it is in syncd_report.
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L; GRANT syncd_report TO %I', $1::text, $2::text, $1::text)

-- reader_group_exists --
-- Whether migration 0007 could create the syncd_report group role.
SELECT to_regrole('syncd_report') IS NOT NULL

-- reader_group_ensure --
-- Create the syncd_report group if missing (before restoring a dump into a fresh cluster, whose
-- GRANTs name it); warn instead when syncd's user may not create roles.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'syncd_report') THEN
        CREATE ROLE syncd_report NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
WHEN insufficient_privilege THEN
    RAISE WARNING 'syncd: cannot create role syncd_report (needs CREATEROLE)';
END
$$
