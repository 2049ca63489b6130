-- reader_roles --
-- Roles as `syncd db reader` judges them: the one named $1, or (NULL) every member of syncd_report.
SELECT r.rolname AS name,
       r.rolcanlogin AS can_login,
       r.rolname IN (current_user, session_user) AS is_syncd,
       array_remove(ARRAY[
           CASE WHEN r.rolsuper THEN 'SUPERUSER' END,
           CASE WHEN r.rolcreaterole THEN 'CREATEROLE' END,
           CASE WHEN r.rolcreatedb THEN 'CREATEDB' END,
           CASE WHEN r.rolreplication THEN 'REPLICATION' END,
           CASE WHEN r.rolbypassrls THEN 'BYPASSRLS' END], NULL)::text[] AS attributes,
       EXISTS (SELECT FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
               WHERE m.member = r.oid AND g.rolname = 'syncd_report') AS in_group,
       ARRAY(SELECT DISTINCT g.rolname || CASE WHEN m.admin_option THEN ' (with admin option)'
                                               ELSE '' END
             FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
             WHERE m.member = r.oid AND (g.rolname <> 'syncd_report' OR m.admin_option)
             ORDER BY 1)::text[] AS other_groups,
       -- syncd's own login may hold the role: PostgreSQL 16 grants a role's creator ADMIN on it
       ARRAY(SELECT DISTINCT u.rolname FROM pg_auth_members m JOIN pg_roles u ON u.oid = m.member
             WHERE m.roleid = r.oid AND u.rolname NOT IN (current_user, session_user)
             ORDER BY 1)::text[] AS members,
       -- ownership, privileges granted to the role itself, policies: in any database of the cluster
       (SELECT count(*) FROM pg_shdepend d
        WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = r.oid)::int AS holdings
FROM pg_roles r
WHERE CASE WHEN $1::text IS NULL
           THEN r.oid IN (SELECT m.member FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                          WHERE g.rolname = 'syncd_report')
           ELSE r.rolname = $1::text END
ORDER BY r.rolname

-- reader_create_statement --
-- The CREATE ROLE statement for a new reporting login, $2 a SCRAM verifier (DDL takes no parameters).
SELECT format('CREATE ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION '
              'NOBYPASSRLS INHERIT PASSWORD %L IN ROLE syncd_report', $1::text, $2::text)

-- reader_password_statement --
-- The statement that gives an existing reporting login a new password ($2 a SCRAM verifier).
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', $1::text, $2::text)

-- reader_nologin_statement --
-- The statement that stops new logins of a reporting login that is about to be dropped.
SELECT format('ALTER ROLE %I WITH NOLOGIN', $1::text)

-- reader_sessions_end --
-- End the open sessions of login $1 where syncd's user may (superuser, pg_signal_backend): open, ended.
WITH me AS (
    SELECT rolsuper OR pg_has_role(current_user, 'pg_signal_backend', 'MEMBER') AS may
    FROM pg_roles WHERE rolname = current_user
)
SELECT count(*)::int AS open,
       count(*) FILTER (WHERE CASE WHEN me.may THEN pg_terminate_backend(a.pid) ELSE false END
                       )::int AS ended
FROM pg_stat_activity a CROSS JOIN me
WHERE a.usename = $1::text AND a.pid <> pg_backend_pid()

-- reader_drop_statement --
-- The DROP ROLE statement for a reporting login.
SELECT format('DROP ROLE %I', $1::text)

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
