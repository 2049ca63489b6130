-- ZKTeco BioTime: attendance terminals, the rule that says which are online, the terminal command
-- ledger, punches, and their report views.

-- The server's terminal listing, keyed by serial number (the business's identity for a terminal;
-- BioTime's own id changes when a terminal is deleted and registered again).
CREATE TABLE vendor.terminals (
    sn                text PRIMARY KEY,
    terminal_id       bigint NOT NULL,
    alias             text,
    ip_address        text,
    state             integer,
    terminal_tz       integer,
    area_id           bigint,
    area_code         text,
    area_name         text,
    last_activity     timestamptz,
    terminal_name     text,
    fw_ver            text,
    push_ver          text,
    user_count        integer,
    fp_count          integer,
    face_count        integer,
    palm_count        integer,
    transaction_count integer,
    is_attendance     integer,
    raw               jsonb NOT NULL,
    first_seen_at     timestamptz NOT NULL,
    last_seen_at      timestamptz NOT NULL,
    last_changed_at   timestamptz NOT NULL,
    gone_at           timestamptz
);
COMMENT ON COLUMN vendor.terminals.state IS 'BioTime terminal state: 1 online, other values offline';
COMMENT ON COLUMN vendor.terminals.last_activity IS
    'Server-local time as sent, made aware with biotime.timezone (ambiguous DST times: fold=0)';
COMMENT ON COLUMN vendor.terminals.gone_at IS
    'Set when a complete listing no longer had the terminal and GET by id answered 404';

-- What "online" means, as configured (biotime.online_window_seconds), so that report views can
-- compute it against now() at read time. One row, rewritten by the biotime-terminals job.
CREATE TABLE ops.terminal_rules (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    online_window   interval NOT NULL DEFAULT interval '600 seconds',
    server_timezone text NOT NULL DEFAULT 'UTC',
    updated_at      timestamptz NOT NULL DEFAULT now()
);
INSERT INTO ops.terminal_rules DEFAULT VALUES;

-- The online rule (mirrors syncd.reconcile.terminals.is_online): state 1 and a last activity
-- within the window of `at_time`, either side (a time far in the future means a wrong zone or clock).
CREATE FUNCTION vendor.terminal_online(state integer, last_activity timestamptz,
                                       at_time timestamptz, online_window interval) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(state = 1 AND last_activity BETWEEN at_time - online_window
                                                    AND at_time + online_window, false)
$$;

-- Commands sent to terminals and how they ended ('pending' while the call is in flight, or if
-- syncd stopped before it could record the outcome).
CREATE TABLE ops.terminal_commands (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sn           text NOT NULL,
    terminal_id  bigint,
    command      text NOT NULL
                 CHECK (command IN ('reboot', 'upload_transaction', 'upload_all', 'clear_command')),
    requested_at timestamptz NOT NULL DEFAULT now(),
    requested_by text NOT NULL,
    outcome      text NOT NULL DEFAULT 'pending' CHECK (outcome IN ('pending', 'ok', 'failed')),
    finished_at  timestamptz,
    error        text
);
CREATE INDEX terminal_commands_sn ON ops.terminal_commands (sn, requested_at DESC);

-- Punches, keyed by BioTime's transaction id (which grows in upload order).
CREATE TABLE vendor.punches (
    id              bigint PRIMARY KEY,
    emp_code        text NOT NULL,
    punch_time      timestamptz NOT NULL,
    punch_state     text,
    verify_type     integer,
    work_code       text,
    terminal_sn     text,
    terminal_alias  text,
    area_alias      text,
    upload_time     timestamptz,
    raw             jsonb NOT NULL,
    first_seen_at   timestamptz NOT NULL,
    last_seen_at    timestamptz NOT NULL,
    last_changed_at timestamptz NOT NULL,
    gone_at         timestamptz
);
CREATE INDEX punches_terminal_time ON vendor.punches (terminal_sn, punch_time);
CREATE INDEX punches_emp_time ON vendor.punches (emp_code, punch_time);

-- Every terminal the vendor lists or the business expects (FULL JOIN): vendor columns are NULL
-- for an expected terminal the vendor has never listed.
-- status: 'missing' (expected, not listed now), 'gone' (no longer listed, not expected),
-- 'unknown' (listed, not expected), 'ok' (expected and online), 'offline' (expected, not online).
CREATE VIEW report.terminals AS
SELECT coalesce(t.sn, l.sn) AS sn,
       t.alias, t.area_name, t.ip_address, t.state, o.online, t.last_activity,
       (l.sn IS NOT NULL) AS expected,
       t.last_seen_at, t.gone_at,
       CASE
           WHEN l.sn IS NOT NULL AND (t.sn IS NULL OR t.gone_at IS NOT NULL) THEN 'missing'
           WHEN t.gone_at IS NOT NULL THEN 'gone'
           WHEN l.sn IS NULL THEN 'unknown'
           WHEN o.online THEN 'ok'
           ELSE 'offline'
       END AS status,
       t.area_code, t.terminal_id, t.terminal_name, t.fw_ver, t.terminal_tz,
       t.first_seen_at, t.last_changed_at,
       l.alias AS expected_alias, l.area_code AS expected_area_code
FROM vendor.terminals t
FULL JOIN local.terminals l ON l.sn = t.sn
LEFT JOIN ops.terminal_rules r ON true
CROSS JOIN LATERAL (
    SELECT (t.gone_at IS NULL AND vendor.terminal_online(
                t.state, t.last_activity, now(),
                coalesce(r.online_window, interval '600 seconds'))) AS online
) o;

CREATE VIEW report.terminal_commands AS
SELECT id, sn, terminal_id, command, requested_at, requested_by, outcome, finished_at, error
FROM ops.terminal_commands;

CREATE VIEW report.punches AS
SELECT p.id, p.emp_code, p.punch_time, p.punch_state, p.verify_type, p.work_code,
       p.terminal_sn, p.terminal_alias, p.area_alias, p.upload_time,
       (p.upload_time - p.punch_time) AS upload_delay,
       (l.sn IS NOT NULL) AS expected_terminal,
       p.first_seen_at
FROM vendor.punches p
LEFT JOIN local.terminals l ON l.sn = p.terminal_sn;
