-- The append-only, hash-chained action log (remediation and operator actions) and the alert outbox.

-- Every action syncd takes or refuses on a vendor or registry (remediation, operator commands,
-- bans) is appended here. Rows are chained: `hash` = SHA-256(prev_hash || content), content being
-- the canonical jsonb text of the row's fields, so editing or deleting a row breaks the chain at
-- that row (`syncd audit verify`). `seq` is the chain order, assigned under a lock at insert.
CREATE TABLE ops.remediation_log (
    seq       bigint PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    actor     text NOT NULL,
    action    text NOT NULL,
    subject   text NOT NULL,
    provider  text,
    outcome   text NOT NULL CHECK (outcome IN ('ok', 'failed', 'refused', 'skipped')),
    detail    jsonb NOT NULL DEFAULT '{}'::jsonb,
    prev_hash bytea NOT NULL,
    hash      bytea NOT NULL UNIQUE
);
CREATE INDEX remediation_log_subject ON ops.remediation_log (subject, at DESC);
COMMENT ON TABLE ops.remediation_log IS
    'Append-only, hash-chained log of every action taken or refused (remediation, operators, bans).';

CREATE FUNCTION ops.remediation_content(seq bigint, at timestamptz, actor text, action text,
                                        subject text, provider text, outcome text, detail jsonb)
RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT convert_to(jsonb_build_object(
        'seq', seq, 'at_us', (extract(epoch FROM at) * 1000000)::bigint, 'actor', actor,
        'action', action, 'subject', subject, 'provider', provider, 'outcome', outcome,
        'detail', detail)::text, 'UTF8')
$$;

CREATE FUNCTION ops.remediation_log_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    last record;
BEGIN
    -- One appender at a time, until commit: the next one then sees this row as its predecessor.
    PERFORM pg_advisory_xact_lock(23565, hashtext('ops.remediation_log'));
    SELECT l.seq, l.hash INTO last FROM ops.remediation_log l ORDER BY l.seq DESC LIMIT 1;
    NEW.seq := coalesce(last.seq, 0) + 1;
    NEW.prev_hash := coalesce(last.hash, '\x'::bytea || decode(repeat('00', 32), 'hex'));
    NEW.hash := sha256(NEW.prev_hash || ops.remediation_content(
        NEW.seq, NEW.at, NEW.actor, NEW.action, NEW.subject, NEW.provider, NEW.outcome, NEW.detail));
    RETURN NEW;
END
$$;
CREATE TRIGGER remediation_log_chain BEFORE INSERT ON ops.remediation_log
    FOR EACH ROW EXECUTE FUNCTION ops.remediation_log_chain();

CREATE FUNCTION ops.remediation_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ops.remediation_log is append-only (% refused)', TG_OP;
END
$$;
CREATE TRIGGER remediation_log_append_only BEFORE UPDATE OR DELETE ON ops.remediation_log
    FOR EACH ROW EXECUTE FUNCTION ops.remediation_log_append_only();
CREATE TRIGGER remediation_log_no_truncate BEFORE TRUNCATE ON ops.remediation_log
    FOR EACH STATEMENT EXECUTE FUNCTION ops.remediation_log_append_only();

CREATE VIEW report.actions AS
SELECT seq, at, actor, action, subject, provider, outcome, detail
FROM ops.remediation_log;

-- Alerts waiting to be delivered, written in the same transaction as the change that caused
-- them. `event_id` is the Standard Webhooks `webhook-id`: stable per (case, transition), so a
-- transition enqueued twice is stored once and a receiver can dedupe.
CREATE TABLE ops.outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id   text NOT NULL UNIQUE,
    type       text NOT NULL,
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ops.outbox IS 'Alerts to deliver, written with the change that caused them.';
