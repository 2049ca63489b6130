-- console_job_durations --
-- Each job's latest $1 finished runs, oldest first: start, seconds taken, status, items, requests.
SELECT job, started_at, extract(epoch FROM finished_at - started_at)::float8 AS seconds, status,
       items, requests
FROM (SELECT id, job, started_at, finished_at, status, items, requests,
             row_number() OVER (PARTITION BY job ORDER BY started_at DESC, id DESC) AS n
      FROM ops.sync_runs
      WHERE status <> 'running' AND finished_at IS NOT NULL) r
WHERE n <= $1
ORDER BY job, started_at, id

-- console_drift_cases --
-- Cases as report.drift shows them with status $1, kind $2 and severity $3 (NULL: any), newest first, at most $4.
SELECT id, kind, subject, provider, severity, expected, actual, status, first_seen_at,
       last_seen_at, resolved_at, plan, suppressed_until, suppressed_reason
FROM report.drift
WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR kind = $2)
  AND ($3::text IS NULL OR severity = $3)
ORDER BY id DESC
LIMIT $4

-- console_drift_facets --
-- Cases by status, kind and severity: the drift page's filter choices and counts.
SELECT status, kind, severity, count(*) AS cases
FROM report.drift
GROUP BY status, kind, severity

-- console_case_history --
-- Every case of case $1's kind and subject (earlier, this one, later), newest first, at most $2.
SELECT o.id, o.status, o.severity, o.expected, o.actual, o.first_seen_at, o.resolved_at
FROM report.drift d
JOIN report.drift o ON o.kind = d.kind AND o.subject = d.subject
WHERE d.id = $1
ORDER BY o.id DESC
LIMIT $2

-- console_case_alerts --
-- The alerts case $1 queued (opened, escalated, reminders, resolved) with their delivery to each hook, oldest first.
SELECT o.event_id, o.type, o.created_at, d.hook, d.status, d.attempts, d.last_status,
       d.last_error, d.finished_at
FROM ops.outbox o
LEFT JOIN ops.alert_deliveries d ON d.outbox_id = o.id
WHERE o.event_id LIKE 'drift-' || $1::bigint || '-%'
ORDER BY o.created_at, o.id, d.hook

-- console_case_actions --
-- The action log's rows on subject $1 from $2 (the case opened) to $3 (it resolved; NULL: now), oldest first, at most $4.
SELECT seq, at, actor, action, provider, outcome, detail
FROM report.actions
WHERE subject = $1 AND at >= $2 AND ($3::timestamptz IS NULL OR at <= $3)
ORDER BY seq
LIMIT $4

-- console_alert_hooks --
-- Deliveries per hook: pending, delivered, dead (not acknowledged), acknowledged and stopped, the latest delivery, and the latest error with its alert's time.
SELECT hook,
       count(*) FILTER (WHERE status = 'pending') AS pending,
       count(*) FILTER (WHERE status = 'delivered') AS delivered,
       count(*) FILTER (WHERE status = 'dead' AND acked_at IS NULL) AS dead,
       count(*) FILTER (WHERE status = 'dead' AND acked_at IS NOT NULL) AS acknowledged,
       count(*) FILTER (WHERE status = 'stopped') AS stopped,
       max(finished_at) FILTER (WHERE status = 'delivered') AS last_delivered_at,
       (array_agg(last_error ORDER BY id DESC) FILTER (WHERE last_error IS NOT NULL))[1]
           AS last_error,
       max(created_at) FILTER (WHERE last_error IS NOT NULL) AS last_error_at
FROM ops.alert_deliveries
GROUP BY hook
ORDER BY hook

-- console_alert_recent --
-- The latest $1 deliveries in state $2 (NULL: any; a dead one acknowledged is 'acknowledged'), newest first, with their alert's type, subject and case.
SELECT d.id, o.event_id, o.type, o.payload ->> 'subject' AS subject,
       CASE WHEN o.payload ->> 'case_id' ~ '^[0-9]+$' THEN (o.payload ->> 'case_id')::bigint END
           AS case_id,
       d.hook, ops.delivery_state(d.status, d.acked_at) AS status, d.attempts, d.last_status, d.last_error, o.created_at, d.finished_at,
       d.next_attempt_at
FROM ops.alert_deliveries d
JOIN ops.outbox o ON o.id = d.outbox_id
WHERE $2::text IS NULL OR ops.delivery_state(d.status, d.acked_at) = $2
ORDER BY d.id DESC
LIMIT $1

-- console_k3_runs --
-- The runs of the jobs $2 that finished since $1 (the quota period's start), oldest first, with their requests.
SELECT job, finished_at, requests
FROM ops.sync_runs
WHERE job = ANY($2::text[]) AND finished_at >= $1 AND status <> 'running'
ORDER BY finished_at, id

-- console_usage_by_job --
-- Calls each job of vendor $1 made in quota period $2, by category.
SELECT job, category, calls
FROM ops.api_usage_jobs
WHERE vendor = $1 AND period = $2
ORDER BY job, category

-- console_phone_states --
-- Phones present at each provider by vendor state, and how many of them are in drift.
SELECT provider, vendor_state, count(*) AS phones, count(*) FILTER (WHERE in_drift) AS in_drift
FROM report.phones
WHERE gone_at IS NULL
GROUP BY provider, vendor_state
ORDER BY provider, vendor_state

-- console_terminal_states --
-- Attendance terminals by state: online, offline, missing (expected, not listed), unknown (listed, not expected).
SELECT CASE status WHEN 'ok' THEN 'online' ELSE status END AS state, count(*) AS terminals
FROM report.terminals
WHERE status <> 'gone'
GROUP BY 1

-- console_app_devices_per_day --
-- App devices first registered on each of the last $1 days (UTC), oldest first, days without any included.
SELECT day::date AS day, count(d.mac_address) AS devices
FROM generate_series(date_trunc('day', now() AT TIME ZONE 'UTC') - make_interval(days => $1 - 1),
                     date_trunc('day', now() AT TIME ZONE 'UTC'), interval '1 day') AS day
LEFT JOIN vendor.app_devices d
       ON d.first_seen_at >= day AT TIME ZONE 'UTC'
      AND d.first_seen_at < (day + interval '1 day') AT TIME ZONE 'UTC'
GROUP BY day
ORDER BY day

-- console_app_devices_total --
-- App devices registered, and how many of them are banned.
SELECT count(*) AS devices, count(*) FILTER (WHERE ban_status = 1) AS banned
FROM report.app_devices
