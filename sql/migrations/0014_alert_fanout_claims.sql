-- Alerts fanned out per (alert, hook) by whichever replica has the hook, and remediation claims
-- that make the cooldown and the cap hold across concurrent appliers.

-- An outbox row is no longer "consumed" by the first replica that sees it: each replica creates
-- the deliveries for the hooks it has (ops.alert_deliveries is unique per (outbox_id, hook)), for
-- every alert younger than alerts.max_age_hours. fanned_out_at stays only so that a replica of
-- the previous version, still running during a rolling upgrade, keeps working; nothing reads it.
DROP INDEX ops.outbox_not_fanned_out;
COMMENT ON COLUMN ops.outbox.fanned_out_at IS 'Unused since migration 0014 (kept for rolling upgrades)';
-- The fan-out sweep reads the alerts of the last max_age_hours.
CREATE INDEX outbox_created_at ON ops.outbox (created_at);

-- One row per case a remediation run claimed. A claim is taken in the transaction that checks
-- the subject's cooldown and the cap (appliers serialise on this table's lock for that moment
-- only), so concurrent appliers (the daemon and `syncd reconcile --apply`s) never act twice on one
-- subject within the cooldown and never hold more claims at once than the cap. `released_at` is
-- set when the run ends; a run that died stops counting against the cap at `lease_until`.
CREATE TABLE ops.remediation_claims (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      uuid NOT NULL,
    case_id     bigint NOT NULL REFERENCES ops.drift (id) ON DELETE CASCADE,
    subject     text NOT NULL,
    action      text NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz NOT NULL,
    released_at timestamptz
);
CREATE INDEX remediation_claims_subject ON ops.remediation_claims (subject, claimed_at DESC);
CREATE INDEX remediation_claims_live ON ops.remediation_claims (lease_until) WHERE released_at IS NULL;
COMMENT ON TABLE ops.remediation_claims IS
    'Cases claimed by remediation runs: the cooldown per subject and the cap across runs';
