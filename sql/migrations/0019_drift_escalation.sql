-- Escalation and reminders of drift cases: what the receivers of a case's alerts were told, and when.

-- announced_severity: the highest severity an alert has announced for the case (NULL: no alert
-- was sent, e.g. it stayed below reconcile.alert_min_severity). A severity risen above it is
-- announced (escalated, or opened if nothing was sent yet) once per severity reached; a fall
-- leaves it as it is (nothing is sent). announced_at: the case's latest announcement (opened,
-- escalated or reminder), from which reconcile.renotify_hours counts. reminders: how many
-- reminders were sent; the next one's webhook-id is drift-<id>-reminder-<reminders + 1>.
ALTER TABLE ops.drift
    ADD COLUMN announced_severity text CHECK (announced_severity IN ('info', 'warning', 'critical')),
    ADD COLUMN announced_at timestamptz,
    ADD COLUMN reminders integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN ops.drift.announced_severity IS
    'The highest severity an alert announced for the case; NULL: no alert was sent';
COMMENT ON COLUMN ops.drift.announced_at IS
    'The case''s latest announcement (opened, escalated or reminder): reminders count from it';
COMMENT ON COLUMN ops.drift.reminders IS 'Reminders sent for the case (reconcile.renotify_hours)';

-- Open cases announced before this migration: their opened alert says what was announced.
UPDATE ops.drift d
SET announced_severity = coalesce(o.payload ->> 'severity', d.severity), announced_at = o.created_at
FROM ops.outbox o
WHERE d.status = 'open' AND o.event_id = 'drift-' || d.id || '-opened';

-- The alert type of a case transition ('opened', 'escalated', 'reminder', 'resolved'): sync
-- health keeps its own names (job.failing, job.escalated, job.reminder, job.recovered; the same
-- with subscription.lost / subscription.restored).
CREATE OR REPLACE FUNCTION ops.drift_alert_type(kind text, transition text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN kind = 'job_failing' THEN 'job.' ||
            CASE transition WHEN 'opened' THEN 'failing' WHEN 'resolved' THEN 'recovered'
                            ELSE transition END
        WHEN kind = 'subscription_lost' THEN 'subscription.' ||
            CASE transition WHEN 'opened' THEN 'lost' WHEN 'resolved' THEN 'restored'
                            ELSE transition END
        ELSE 'drift.' || transition
    END
$$;

-- The alert body of a case transition: everything a receiver needs without querying syncd.
-- announced_severity is what the receivers were told (an Alertmanager alert's severity label:
-- a resolution must name the alert that fires); timestamp is when the transition happened.
CREATE OR REPLACE FUNCTION ops.drift_alert(d ops.drift, transition text) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT jsonb_build_object(
        'type', ops.drift_alert_type(d.kind, transition),
        'case_id', d.id, 'kind', d.kind, 'subject', d.subject, 'provider', d.provider,
        'severity', d.severity, 'announced_severity', coalesce(d.announced_severity, d.severity),
        'expected', d.expected, 'actual', d.actual,
        'status', d.status, 'detail', d.detail, 'plan', d.plan,
        'first_seen_at', d.first_seen_at, 'last_seen_at', d.last_seen_at,
        'resolved_at', d.resolved_at,
        'timestamp', CASE transition WHEN 'opened' THEN d.first_seen_at
                                     WHEN 'resolved' THEN d.resolved_at
                                     ELSE coalesce(d.announced_at, d.last_seen_at) END)
$$;

COMMENT ON COLUMN report.alert_deliveries.type IS
    'The alert type: drift.opened, drift.escalated, drift.reminder, drift.resolved, job.failing, subscription.lost, quota.warning, …';
