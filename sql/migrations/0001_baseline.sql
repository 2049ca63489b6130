-- Baseline: the four schemas, the business's local records, job runs and cursors.

CREATE SCHEMA IF NOT EXISTS vendor;
COMMENT ON SCHEMA vendor IS 'What vendors say; owned and written by syncd only.';
CREATE SCHEMA IF NOT EXISTS local;
COMMENT ON SCHEMA local IS 'The business''s own records, written by downstream systems.';
CREATE SCHEMA IF NOT EXISTS ops;
COMMENT ON SCHEMA ops IS 'syncd''s operational state: inbox, outbox, cursors, runs, drift.';
CREATE SCHEMA IF NOT EXISTS report;
COMMENT ON SCHEMA report IS 'Stable views for downstream SQL: columns may be added, never renamed or removed.';

CREATE TABLE local.phone_contracts (
    device_uid    text PRIMARY KEY,
    desired_state text NOT NULL CHECK (desired_state IN ('active', 'locked', 'completed')),
    contract_ref  text,
    lock_message  text,
    contact_tel   text,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE local.terminals (
    sn        text PRIMARY KEY,
    alias     text,
    area_code text
);

CREATE TABLE local.k3_clients (
    lock_id     text NOT NULL,
    email       text NOT NULL,
    access_type text,
    enabled     boolean NOT NULL DEFAULT true,
    PRIMARY KEY (lock_id, email)
);

CREATE TABLE ops.sync_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job         text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    status      text NOT NULL CHECK (status IN ('running', 'ok', 'failed')),
    items       integer NOT NULL DEFAULT 0,
    requests    integer NOT NULL DEFAULT 0,
    error       text,
    runner      text NOT NULL
);
CREATE INDEX sync_runs_job_started ON ops.sync_runs (job, started_at DESC);

CREATE TABLE ops.cursors (
    name       text PRIMARY KEY,
    value      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE VIEW report.sync_runs AS
SELECT job, started_at, finished_at, status, items, requests, error
FROM ops.sync_runs;
