-- NeoLock / Knox Guard phones, the push inbox and quarantine, the subscription state, and views.

CREATE TABLE vendor.phones (
    provider           text NOT NULL CHECK (provider IN ('neolock', 'knoxguard')),
    device_uid         text NOT NULL,
    object_id          text,
    imei               text,
    imei2              text,
    vendor_state       text,
    license_expiry     timestamptz,
    vendor_modified_at timestamptz,
    raw                jsonb NOT NULL,
    first_seen_at      timestamptz NOT NULL,
    last_seen_at       timestamptz NOT NULL,
    last_changed_at    timestamptz NOT NULL,
    gone_at            timestamptz,
    PRIMARY KEY (provider, device_uid)
);
COMMENT ON COLUMN vendor.phones.vendor_state IS 'Knox Guard API device state (Enrolled, Locked, …)';
COMMENT ON COLUMN vendor.phones.gone_at IS 'Set when the vendor answered 404 for the device';

CREATE TABLE vendor.phone_uploads (
    provider        text NOT NULL CHECK (provider IN ('neolock', 'knoxguard')),
    device_uid      text NOT NULL,
    upload_id       text NOT NULL DEFAULT '',
    row_id          bigint,
    imei            text,
    imei2           text,
    serial          text,
    model           text,
    upload_status   text,
    status          text,
    raw             jsonb NOT NULL,
    first_seen_at   timestamptz NOT NULL,
    last_seen_at    timestamptz NOT NULL,
    last_changed_at timestamptz NOT NULL,
    gone_at         timestamptz,
    PRIMARY KEY (provider, device_uid, upload_id)
);

-- Pushed events, persisted before they are acknowledged. Dedupe by (source, dedupe_key): the
-- event's id when it has one, else 'sha256:' of the body. Housekeeping keeps 7 days (≥ 72 h).
CREATE TABLE ops.inbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source          text NOT NULL,
    dedupe_key      text NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    event_type      text,
    subject         text,
    body            jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'processed', 'unparsed', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    processed_at    timestamptz,
    error           text
);
CREATE UNIQUE INDEX inbox_dedupe ON ops.inbox (source, dedupe_key);
CREATE INDEX inbox_pending ON ops.inbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX inbox_received ON ops.inbox (received_at);

-- Pushes that could not be accepted (invalid JSON, …), kept raw for inspection.
CREATE TABLE ops.quarantine (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source       text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    reason       text NOT NULL,
    content_type text,
    body         bytea NOT NULL
);

-- The vendor subscription syncd registered. The URL embeds the secret, so only the public base
-- and a SHA-256 of the secret are stored.
CREATE TABLE ops.subscriptions (
    provider      text PRIMARY KEY,
    public_url    text NOT NULL,
    secret_sha256 text NOT NULL,
    secret_source text NOT NULL CHECK (secret_source IN ('configured', 'generated')),
    registered_at timestamptz NOT NULL DEFAULT now(),
    checked_at    timestamptz NOT NULL DEFAULT now(),
    status        text NOT NULL DEFAULT 'registered' CHECK (status IN ('registered', 'failed', 'deleted')),
    last_error    text
);

-- Knox Guard API state → what the Knox Guard console shows (FIELD-NOTES).
CREATE FUNCTION vendor.console_state(api_state text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE api_state
        WHEN 'Accepted' THEN 'Activating'
        WHEN 'Enrolled' THEN 'Active'
        WHEN 'Blinked' THEN 'Reminder On'
        WHEN 'StartingReminder' THEN 'Starting Reminder'
        WHEN 'StoppingReminder' THEN 'Stopping Reminder'
        ELSE api_state
    END
$$;

-- Does the vendor's state disagree with what the contract wants? In-flight states count as
-- agreeing (Locking for locked), so a command that is being carried out is not drift.
CREATE FUNCTION vendor.phone_in_drift(desired text, api_state text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE desired
        WHEN 'locked' THEN api_state IS DISTINCT FROM 'Locked' AND api_state IS DISTINCT FROM 'Locking'
        WHEN 'active' THEN api_state IS NULL OR api_state NOT IN
            ('Accepted', 'Enrolled', 'Blinked', 'StartingReminder', 'StoppingReminder', 'Unlocking')
        WHEN 'completed' THEN api_state IS NULL OR api_state NOT IN ('Completed', 'Completing')
        ELSE false
    END
$$;

CREATE VIEW report.phones AS
SELECT p.provider, p.device_uid, p.imei, p.imei2, p.vendor_state,
       vendor.console_state(p.vendor_state) AS console_state,
       p.license_expiry, c.desired_state,
       (c.desired_state IS NOT NULL AND p.gone_at IS NULL
        AND vendor.phone_in_drift(c.desired_state, p.vendor_state)) AS in_drift,
       p.last_seen_at, p.gone_at, p.last_changed_at
FROM vendor.phones p
LEFT JOIN local.phone_contracts c ON c.device_uid = p.device_uid;

CREATE VIEW report.events AS
SELECT id, source, received_at, event_type, subject, status
FROM ops.inbox;
