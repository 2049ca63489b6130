-- Codelocks Connect: K3 locks, audit and smartphone clients; the quota ledger; the NetCode ledger.

CREATE TABLE vendor.k3_locks (
    lock_id            text PRIMARY KEY,
    access_key_ref     text NOT NULL,
    lock_name          text,
    battery_status     text,
    battery_updated_at timestamptz,
    manufacturer       text,
    model_name         text,
    firmware_version   text,
    timezone           text,
    timezone_offset    text,
    pairing_date       timestamptz,
    raw                jsonb NOT NULL,
    first_seen_at      timestamptz NOT NULL,
    last_seen_at       timestamptz NOT NULL,
    last_changed_at    timestamptz NOT NULL,
    gone_at            timestamptz
);
COMMENT ON COLUMN vendor.k3_locks.access_key_ref IS
    'HMAC-SHA256 (keyed with the API key) of the K3 Connect access key the lock is listed under; never the key';
COMMENT ON COLUMN vendor.k3_locks.battery_updated_at IS 'BatteryUpdated as sent (no zone), read as UTC';

CREATE TABLE vendor.k3_audit (
    lock_id        text NOT NULL,
    audit_entry_id bigint NOT NULL,
    entered_at     timestamptz NOT NULL,
    entry_type     text NOT NULL,
    entry_text     text NOT NULL,
    first_seen_at  timestamptz NOT NULL,
    raw            jsonb NOT NULL,
    PRIMARY KEY (lock_id, audit_entry_id)
);
CREATE INDEX k3_audit_lock_entered ON vendor.k3_audit (lock_id, entered_at DESC);
COMMENT ON COLUMN vendor.k3_audit.entry_type IS 'EntryType verbatim, as the vendor sent it';
COMMENT ON COLUMN vendor.k3_audit.first_seen_at IS
    'When syncd first read the entry: first_seen_at - entered_at is how late it reached us';

CREATE TABLE vendor.k3_clients (
    lock_id         text NOT NULL,
    email           text NOT NULL,
    status          text,
    access_type     text,
    active_periods  jsonb,
    raw             jsonb NOT NULL,
    first_seen_at   timestamptz NOT NULL,
    last_seen_at    timestamptz NOT NULL,
    last_changed_at timestamptz NOT NULL,
    gone_at         timestamptz,
    PRIMARY KEY (lock_id, email)
);

-- The quota ledger: one row per (vendor, category, period); a call is counted here, in its own
-- committed transaction, before it is sent. calls never exceeds quota (checked by the UPDATE).
CREATE TABLE ops.api_usage (
    vendor         text NOT NULL,
    category       text NOT NULL,
    period         text NOT NULL,
    calls          integer NOT NULL DEFAULT 0 CHECK (calls >= 0),
    quota          integer NOT NULL CHECK (quota >= 0),
    reserve        integer NOT NULL DEFAULT 0 CHECK (reserve >= 0),
    operator_calls integer NOT NULL DEFAULT 0 CHECK (operator_calls >= 0),
    refused        integer NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (vendor, category, period),
    CHECK (calls <= quota)
);
COMMENT ON COLUMN ops.api_usage.calls IS 'Calls reserved (counted before sending; retries included)';
COMMENT ON COLUMN ops.api_usage.reserve IS 'Calls kept for operator actions; scheduled jobs never take them';

CREATE TABLE ops.api_usage_jobs (
    vendor   text NOT NULL,
    category text NOT NULL,
    period   text NOT NULL,
    job      text NOT NULL,
    calls    integer NOT NULL DEFAULT 0,
    PRIMARY KEY (vendor, category, period, job)
);

-- The budget planner's decisions and the reasons jobs skipped.
CREATE TABLE ops.quota_plan (
    vendor           text NOT NULL,
    job              text NOT NULL,
    interval_seconds double precision,
    next_due_at      timestamptz,
    last_run_at      timestamptz,
    last_cost        integer,
    planned_at       timestamptz NOT NULL DEFAULT now(),
    skip_reason      text,
    skipped_at       timestamptz,
    PRIMARY KEY (vendor, job)
);

-- NetCodes issued through syncd. The code opens a door during its window, so it is kept only
-- encrypted (AES-GCM, key derived from codelocks.api_key); parameters are looked up by an HMAC.
CREATE TABLE ops.netcodes (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    params_ref    text NOT NULL UNIQUE,
    lock_id       text NOT NULL,
    lock_model    text NOT NULL,
    start         timestamp NOT NULL,
    duration_id   integer NOT NULL,
    expires_at    timestamp NOT NULL,
    code_sealed   bytea NOT NULL,
    issued_at     timestamptz NOT NULL DEFAULT now(),
    issued_by     text NOT NULL,
    repeats       integer NOT NULL DEFAULT 0,
    last_asked_at timestamptz NOT NULL DEFAULT now(),
    last_asked_by text NOT NULL
);
COMMENT ON COLUMN ops.netcodes.start IS 'Start as given to the vendor (the lock''s local time, no zone)';
COMMENT ON COLUMN ops.netcodes.code_sealed IS 'nonce || AES-GCM(code); never the code in clear';

CREATE VIEW report.k3_locks AS
SELECT l.lock_id, l.lock_name, l.battery_status, l.battery_updated_at, l.firmware_version,
       a.last_audit_at, l.model_name, l.timezone, l.last_seen_at, l.gone_at
FROM vendor.k3_locks l
LEFT JOIN LATERAL (SELECT max(entered_at) AS last_audit_at FROM vendor.k3_audit a
                   WHERE a.lock_id = l.lock_id) a ON true;

CREATE VIEW report.k3_audit AS
SELECT lock_id, audit_entry_id, entered_at, entry_type, entry_text, first_seen_at,
       first_seen_at - entered_at AS lateness
FROM vendor.k3_audit;

CREATE VIEW report.k3_clients AS
SELECT coalesce(c.lock_id, e.lock_id) AS lock_id, coalesce(c.email, e.email) AS email,
       CASE WHEN c.lock_id IS NULL OR c.gone_at IS NOT NULL THEN 'missing' ELSE c.status END
           AS status,
       coalesce(c.access_type, e.access_type) AS access_type,
       coalesce(e.enabled, false) AS expected,
       c.active_periods, c.last_seen_at
FROM (SELECT * FROM vendor.k3_clients WHERE gone_at IS NULL) c
FULL JOIN local.k3_clients e ON e.lock_id = c.lock_id AND lower(e.email) = lower(c.email);

CREATE VIEW report.api_usage AS
SELECT vendor, category, period, calls, quota, reserve, operator_calls, refused, updated_at
FROM ops.api_usage;

CREATE VIEW report.netcodes AS
SELECT lock_id, lock_model, start, duration_id, expires_at, issued_at, issued_by, repeats
FROM ops.netcodes;
