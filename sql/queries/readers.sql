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
