-- alerts_fan_out --
-- Make the missing deliveries of alerts younger than $4 to this replica's hooks ($1 names, $2 LIKE patterns on the type, pairwise), at most $5, from outbox id $3 on. Returns the (alert, hook) pairs found missing, the deliveries made, and the outbox id the next call may start after.
WITH todo AS (
    SELECT DISTINCT o.id, h.hook
    FROM ops.outbox o
    JOIN unnest($1::text[], $2::text[]) AS h(hook, pattern) ON o.type LIKE h.pattern
    WHERE o.id > $3 AND o.created_at > now() - $4::interval
      AND NOT EXISTS (SELECT 1 FROM ops.alert_deliveries d
                      WHERE d.outbox_id = o.id AND d.hook = h.hook)
    ORDER BY o.id
    LIMIT $5
), made AS (
    -- Another replica with the same hook may be making the same pairs: the unique key settles it.
    INSERT INTO ops.alert_deliveries (outbox_id, hook)
    SELECT id, hook FROM todo
    ON CONFLICT (outbox_id, hook) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM todo) AS missing, (SELECT count(*) FROM made) AS deliveries,
       CASE WHEN (SELECT count(*) FROM todo) < $5
            THEN greatest($3, (SELECT coalesce(max(id), 0) FROM ops.outbox))
            ELSE (SELECT max(id) - 1 FROM todo) END AS through

-- alerts_claim --
-- Lease up to $2 due deliveries to the hooks $3 for $1; a lease that expired (its holder died) is due again.
UPDATE ops.alert_deliveries d
SET lease_until = now() + $1::interval, attempts = d.attempts + 1
FROM ops.outbox o
WHERE o.id = d.outbox_id
  AND d.id IN (SELECT id FROM ops.alert_deliveries
               WHERE status = 'pending' AND next_attempt_at <= now()
                 AND (lease_until IS NULL OR lease_until <= now()) AND hook = ANY($3::text[])
               ORDER BY next_attempt_at, id
               LIMIT $2
               FOR UPDATE SKIP LOCKED)
RETURNING d.id, d.hook, d.attempts, o.event_id, o.type, o.payload, o.created_at

-- alerts_delivered --
-- A delivery the receiver accepted with HTTP $2.
UPDATE ops.alert_deliveries
SET status = 'delivered', last_status = $2, last_error = NULL, lease_until = NULL, finished_at = now()
WHERE id = $1

-- alerts_stopped --
-- A delivery the receiver refused for good (410 Gone): kept, not retried.
UPDATE ops.alert_deliveries
SET status = 'stopped', last_status = $2, last_error = $3, lease_until = NULL, finished_at = now()
WHERE id = $1

-- alerts_retry --
-- Try delivery $1 again in $2 seconds, or dead-letter it when that is past the age limit $5 of its alert (counted from its latest redelivery, if any).
UPDATE ops.alert_deliveries d
SET last_status = $3, last_error = $4, lease_until = NULL,
    next_attempt_at = now() + make_interval(secs => $2),
    status = CASE WHEN now() + make_interval(secs => $2)
                       > coalesce(d.requeued_at, o.created_at) + $5::interval
                  THEN 'dead' ELSE 'pending' END,
    finished_at = CASE WHEN now() + make_interval(secs => $2)
                            > coalesce(d.requeued_at, o.created_at) + $5::interval
                       THEN now() END
FROM ops.outbox o
WHERE d.id = $1 AND o.id = d.outbox_id
RETURNING d.status

-- alerts_counts --
-- Deliveries by hook and state (their status, but 'acknowledged' for dead ones an operator acknowledged).
SELECT hook, ops.delivery_state(status, acked_at) AS status, count(*) AS deliveries
FROM ops.alert_deliveries
GROUP BY 1, 2

-- alerts_open_for_resend --
-- Open, unsuppressed cases whose opened alert was queued, as they stand (for Alertmanager re-sends: the severity label is the latest announced).
SELECT o.event_id, ops.drift_alert(d, 'opened') AS payload
FROM ops.drift d
JOIN ops.outbox o ON o.event_id = 'drift-' || d.id || '-opened'
WHERE d.status = 'open' AND NOT coalesce(d.suppressed_until > now(), false)
ORDER BY d.id

-- outbox_prune --
-- Forget alerts older than $1 days (past any hook's fan-out: alerts.max_age_hours is at most 30 days) whose deliveries all finished, keeping the opened alert of every open case (its resolved alert depends on it); deliveries go with them.
DELETE FROM ops.outbox o
WHERE o.created_at < now() - make_interval(days => $1)
  AND NOT EXISTS (SELECT 1 FROM ops.alert_deliveries d
                  WHERE d.outbox_id = o.id AND d.status = 'pending')
  AND NOT EXISTS (SELECT 1 FROM ops.drift c
                  WHERE c.status = 'open' AND o.event_id = 'drift-' || c.id || '-opened')

-- alerts_list --
-- Deliveries in state $1 (NULL: any; see alerts_counts) to hook $2 (NULL: any), newest first, at most $3, with their alert.
SELECT d.id, d.hook, ops.delivery_state(d.status, d.acked_at) AS state, d.attempts,
       d.next_attempt_at, d.last_status, d.last_error, d.finished_at, d.redeliveries,
       d.requeued_at, d.acked_at, d.acked_by, d.ack_reason, o.event_id, o.type,
       o.payload ->> 'subject' AS subject, o.created_at
FROM ops.alert_deliveries d
JOIN ops.outbox o ON o.id = d.outbox_id
WHERE ($1::text IS NULL OR ops.delivery_state(d.status, d.acked_at) = $1)
  AND ($2::text IS NULL OR d.hook = $2)
ORDER BY d.id DESC
LIMIT $3

-- alerts_states --
-- The hook and state of each of the deliveries $1 that exists.
SELECT id, hook, ops.delivery_state(status, acked_at) AS state
FROM ops.alert_deliveries
WHERE id = ANY($1::bigint[])

-- alerts_dead --
-- Ids of the dead, unacknowledged deliveries to hook $1 (NULL: any), oldest first.
SELECT id FROM ops.alert_deliveries
WHERE status = 'dead' AND acked_at IS NULL AND ($1::text IS NULL OR hook = $1)
ORDER BY id

-- alerts_redeliver --
-- Put the dead or stopped deliveries among $1 back in the queue: pending, due now, a fresh attempt budget (the retry window counts from now), any acknowledgement cleared. The alert is the same, so is its webhook-id. Returns each one's id, hook and former state.
WITH old AS (
    SELECT id, ops.delivery_state(status, acked_at) AS was
    FROM ops.alert_deliveries
    WHERE id = ANY($1::bigint[]) AND status IN ('dead', 'stopped')
    ORDER BY id
    FOR UPDATE)
UPDATE ops.alert_deliveries d
SET status = 'pending', attempts = 0, next_attempt_at = now(), lease_until = NULL,
    finished_at = NULL, requeued_at = now(), redeliveries = d.redeliveries + 1,
    acked_at = NULL, acked_by = NULL, ack_reason = NULL
FROM old
WHERE d.id = old.id
RETURNING d.id, d.hook, old.was

-- alerts_ack --
-- Acknowledge the dead, unacknowledged deliveries among $1, by $2 for the reason $3; return their ids and hooks.
UPDATE ops.alert_deliveries
SET acked_at = now(), acked_by = $2, ack_reason = $3
WHERE id = ANY($1::bigint[]) AND status = 'dead' AND acked_at IS NULL
RETURNING id, hook
