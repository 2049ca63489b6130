-- What an operator does on a bad day: put stored pushes back in the inbox (`syncd events replay`),
-- send dead or stopped alert deliveries again (`syncd alerts redeliver`) and acknowledge dead ones
-- (`syncd alerts ack`). Each of these is also written to the action log.

-- A replayed push is pending again with a fresh attempt budget; these say that it was replayed.
ALTER TABLE ops.inbox
    ADD COLUMN replays     integer NOT NULL DEFAULT 0,
    ADD COLUMN replayed_at timestamptz;
COMMENT ON COLUMN ops.inbox.replays IS 'How many times an operator put the event back in the inbox (syncd events replay).';

-- A redelivered delivery is pending again with a fresh attempt budget: its retry window
-- (alerts.max_age_hours) counts from requeued_at instead of the alert's queueing. A dead
-- delivery an operator acknowledged stays dead but no longer counts as a problem.
ALTER TABLE ops.alert_deliveries
    ADD COLUMN requeued_at  timestamptz,
    ADD COLUMN redeliveries integer NOT NULL DEFAULT 0,
    ADD COLUMN acked_at     timestamptz,
    ADD COLUMN acked_by     text,
    ADD COLUMN ack_reason   text,
    ADD CONSTRAINT alert_deliveries_ack_dead CHECK (acked_at IS NULL OR status = 'dead');
COMMENT ON COLUMN ops.alert_deliveries.requeued_at IS
    'When an operator last redelivered it (syncd alerts redeliver): the retry window starts here.';
COMMENT ON COLUMN ops.alert_deliveries.acked_at IS
    'When an operator acknowledged this dead delivery (syncd alerts ack): no longer a problem in status.';

-- A delivery's state as status, metrics and the CLI count it: its status, but 'acknowledged' for
-- a dead one an operator acknowledged.
CREATE FUNCTION ops.delivery_state(status text, acked_at timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN status = 'dead' AND acked_at IS NOT NULL THEN 'acknowledged' ELSE status END
$$;

CREATE OR REPLACE VIEW report.events AS
SELECT id, source, received_at, event_type, subject, status, replays
FROM ops.inbox;
COMMENT ON COLUMN report.events.replays IS 'How many times an operator put the push back in the inbox to be processed again (syncd events replay); 0 if never.';

CREATE OR REPLACE VIEW report.alert_deliveries AS
SELECT d.id, o.event_id, o.type, d.hook, d.status, d.attempts, d.next_attempt_at, d.last_status,
       d.last_error, o.created_at, d.finished_at, d.redeliveries, d.acked_at AS acknowledged_at,
       d.acked_by AS acknowledged_by, d.ack_reason
FROM ops.alert_deliveries d
JOIN ops.outbox o ON o.id = d.outbox_id;
COMMENT ON COLUMN report.alert_deliveries.status IS 'pending, delivered, stopped (the receiver answered 410 Gone) or dead (gave up alerts.max_age_hours after it was queued, or after its latest redelivery).';
COMMENT ON COLUMN report.alert_deliveries.redeliveries IS 'How many times an operator sent it again after it died or stopped (syncd alerts redeliver); 0 if never.';
COMMENT ON COLUMN report.alert_deliveries.acknowledged_at IS 'When an operator acknowledged this dead delivery (syncd alerts ack): it no longer counts as a problem; NULL otherwise.';
COMMENT ON COLUMN report.alert_deliveries.acknowledged_by IS 'Who acknowledged it (cli:<login name>); NULL if nobody did.';
COMMENT ON COLUMN report.alert_deliveries.ack_reason IS 'Why it was acknowledged, as the operator wrote it; NULL if nobody did.';
