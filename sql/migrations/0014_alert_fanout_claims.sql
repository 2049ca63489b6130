-- Alerts fanned out per (alert, hook) by whichever replica has the hook.

-- An outbox row is no longer "consumed" by the first replica that sees it: each replica creates
-- the deliveries for the hooks it has (ops.alert_deliveries is unique per (outbox_id, hook)), for
-- every alert younger than alerts.max_age_hours. fanned_out_at stays only so that a replica of
-- the previous version, still running during a rolling upgrade, keeps working; nothing reads it.
DROP INDEX ops.outbox_not_fanned_out;
COMMENT ON COLUMN ops.outbox.fanned_out_at IS 'Unused since migration 0014 (kept for rolling upgrades)';
-- The fan-out sweep reads the alerts of the last max_age_hours.
CREATE INDEX outbox_created_at ON ops.outbox (created_at);
