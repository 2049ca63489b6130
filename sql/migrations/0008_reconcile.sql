-- Reconcile: drift cases (ops.drift, report.drift), the per-hook alert delivery state, and an
-- optional provider pin on phone contracts.

-- A contract may name the provider that holds its device; NULL matches the device at any provider.
ALTER TABLE local.phone_contracts
    ADD COLUMN provider text CHECK (provider IN ('neolock', 'knoxguard'));

-- One row per drift case. A case is open while its condition holds; when it clears the case is
-- resolved and stays as history; if the condition comes back, a NEW case opens (new id).
-- Suppression is a property of an open case (until an expiry, with a reason): the case stays
-- open underneath, so (kind, subject) keeps its single open case and no alert is sent for it.
CREATE TABLE ops.drift (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind              text NOT NULL,
    subject           text NOT NULL,
    provider          text,
    severity          text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    expected          text,
    actual            text,
    detail            jsonb NOT NULL DEFAULT '{}'::jsonb,
    plan              jsonb,
    status            text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    first_seen_at     timestamptz NOT NULL,
    last_seen_at      timestamptz NOT NULL,
    resolved_at       timestamptz,
    suppressed_until  timestamptz,
    suppressed_reason text,
    suppressed_by     text
);
CREATE UNIQUE INDEX drift_one_open ON ops.drift (kind, subject) WHERE status = 'open';
CREATE INDEX drift_subject ON ops.drift (subject, id DESC);
CREATE INDEX drift_resolved_at ON ops.drift (resolved_at) WHERE status = 'resolved';
COMMENT ON TABLE ops.drift IS 'Drift cases: one open case per (kind, subject); resolved cases kept.';
COMMENT ON COLUMN ops.drift.plan IS 'The remediation planned for the case (action, allowed, reason)';

CREATE VIEW report.drift AS
SELECT id, kind, subject, expected, actual, severity,
       CASE WHEN status = 'open' AND suppressed_until > now() THEN 'suppressed' ELSE status END
           AS status,
       first_seen_at, last_seen_at, resolved_at,
       provider, detail, plan, suppressed_until, suppressed_reason, suppressed_by
FROM ops.drift;

-- Alerts are fanned out once per outbox row to the hooks configured at that moment.
ALTER TABLE ops.outbox ADD COLUMN fanned_out_at timestamptz;
CREATE INDEX outbox_not_fanned_out ON ops.outbox (id) WHERE fanned_out_at IS NULL;

-- One delivery per (alert, hook). A deliverer claims due rows with FOR UPDATE SKIP LOCKED and a
-- lease; a deliverer that dies after claiming leaves the lease to expire, and the row is sent
-- again with the same webhook-id (at least once; receivers dedupe on webhook-id).
CREATE TABLE ops.alert_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id       bigint NOT NULL REFERENCES ops.outbox (id) ON DELETE CASCADE,
    hook            text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'stopped', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    UNIQUE (outbox_id, hook)
);
CREATE INDEX alert_deliveries_due ON ops.alert_deliveries (next_attempt_at) WHERE status = 'pending';
COMMENT ON COLUMN ops.alert_deliveries.status IS
    'pending (to send or retry), delivered (2xx), stopped (410 Gone), dead (gave up: kept for review)';

CREATE VIEW report.alert_deliveries AS
SELECT d.id, o.event_id, o.type, d.hook, d.status, d.attempts, d.next_attempt_at, d.last_status,
       d.last_error, o.created_at, d.finished_at
FROM ops.alert_deliveries d
JOIN ops.outbox o ON o.id = d.outbox_id;

CREATE FUNCTION ops.severity_rank(severity text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE severity WHEN 'critical' THEN 2 WHEN 'warning' THEN 1 ELSE 0 END
$$;

-- The alert type of a case transition ('opened' | 'resolved'): sync health has its own names.
CREATE FUNCTION ops.drift_alert_type(kind text, transition text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN kind = 'job_failing' THEN
            CASE transition WHEN 'opened' THEN 'job.failing' ELSE 'job.recovered' END
        WHEN kind = 'subscription_lost' THEN
            CASE transition WHEN 'opened' THEN 'subscription.lost' ELSE 'subscription.restored' END
        ELSE 'drift.' || transition
    END
$$;

-- The alert body of a case transition: everything a receiver needs without querying syncd.
CREATE FUNCTION ops.drift_alert(d ops.drift, transition text) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT jsonb_build_object(
        'type', ops.drift_alert_type(d.kind, transition),
        'case_id', d.id, 'kind', d.kind, 'subject', d.subject, 'provider', d.provider,
        'severity', d.severity, 'expected', d.expected, 'actual', d.actual,
        'status', d.status, 'detail', d.detail, 'plan', d.plan,
        'first_seen_at', d.first_seen_at, 'last_seen_at', d.last_seen_at,
        'resolved_at', d.resolved_at,
        'timestamp', CASE transition WHEN 'opened' THEN d.first_seen_at ELSE d.resolved_at END)
$$;
