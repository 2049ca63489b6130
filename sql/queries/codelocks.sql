-- api_usage_ensure --
-- Create the period's ledger row, or bring its quota/reserve up to date (never below calls made).
INSERT INTO ops.api_usage AS u (vendor, category, period, quota, reserve)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (vendor, category, period) DO UPDATE
SET quota = greatest(EXCLUDED.quota, u.calls), reserve = EXCLUDED.reserve
WHERE (u.quota, u.reserve) IS DISTINCT FROM (greatest(EXCLUDED.quota, u.calls), EXCLUDED.reserve)

-- api_usage_reserve --
-- Count one call if the quota allows it; scheduled jobs ($4 false) may not touch what is left of
-- the operators' reserve. No row back: refused. Row locks make concurrent replicas queue here.
UPDATE ops.api_usage
SET calls = calls + 1, operator_calls = operator_calls + CASE WHEN $4 THEN 1 ELSE 0 END,
    updated_at = now()
WHERE vendor = $1 AND category = $2 AND period = $3
  AND calls < quota - CASE WHEN $4 THEN 0 ELSE greatest(reserve - operator_calls, 0) END
RETURNING calls, quota, reserve, operator_calls

-- api_usage_refused --
-- Count a refused call; returns the row as it stands.
UPDATE ops.api_usage SET refused = refused + 1, updated_at = now()
WHERE vendor = $1 AND category = $2 AND period = $3
RETURNING calls, quota, reserve, operator_calls

-- api_usage_exhaust --
-- The vendor refused a call for quota: its count has reached the quota, so ours does too.
UPDATE ops.api_usage SET calls = quota, updated_at = now()
WHERE vendor = $1 AND category = $2 AND period = $3 AND calls < quota
RETURNING calls, quota, reserve, operator_calls

-- api_usage_job_add --
-- Count one call against the job (or "operator") that made it.
INSERT INTO ops.api_usage_jobs (vendor, category, period, job, calls) VALUES ($1, $2, $3, $4, 1)
ON CONFLICT (vendor, category, period, job) DO UPDATE SET calls = ops.api_usage_jobs.calls + 1

-- api_usage_get --
-- One ledger row.
SELECT calls, quota, reserve, operator_calls, refused FROM ops.api_usage
WHERE vendor = $1 AND category = $2 AND period = $3

-- api_usage_list --
-- Every ledger row of a vendor, newest period first.
SELECT vendor, category, period, calls, quota, reserve, operator_calls, refused
FROM ops.api_usage WHERE vendor = $1 ORDER BY period DESC, category

-- api_usage_jobs_get --
-- Calls per job in one period and category.
SELECT job, calls FROM ops.api_usage_jobs WHERE vendor = $1 AND category = $2 AND period = $3

-- quota_plan_all --
-- The planner's state of every job of a vendor.
SELECT job, interval_seconds, next_due_at, last_run_at, last_cost, skip_reason, skipped_at
FROM ops.quota_plan WHERE vendor = $1

-- quota_plan_ran --
-- Record a run: its cost, the interval planned after it and when it is next due.
INSERT INTO ops.quota_plan AS p (vendor, job, interval_seconds, next_due_at, last_run_at, last_cost,
                                 planned_at, skip_reason, skipped_at)
VALUES ($1, $2, $3, $4, $5::timestamptz, $6, $5::timestamptz, $7::text,
        CASE WHEN $7::text IS NULL THEN NULL ELSE $5::timestamptz END)
ON CONFLICT (vendor, job) DO UPDATE
SET interval_seconds = EXCLUDED.interval_seconds, next_due_at = EXCLUDED.next_due_at,
    last_run_at = EXCLUDED.last_run_at, last_cost = EXCLUDED.last_cost,
    planned_at = EXCLUDED.planned_at, skip_reason = EXCLUDED.skip_reason,
    skipped_at = coalesce(EXCLUDED.skipped_at, p.skipped_at)

-- quota_plan_skipped --
-- Record that a job skipped for lack of budget, and when to look again.
INSERT INTO ops.quota_plan AS p (vendor, job, interval_seconds, next_due_at, planned_at,
                                 skip_reason, skipped_at)
VALUES ($1, $2, NULL, $3, $4, $5, $4)
ON CONFLICT (vendor, job) DO UPDATE
SET next_due_at = EXCLUDED.next_due_at, planned_at = EXCLUDED.planned_at,
    interval_seconds = NULL, skip_reason = EXCLUDED.skip_reason, skipped_at = EXCLUDED.skipped_at

-- k3_locks_present --
-- Lock id -> access key ref of every lock still listed.
SELECT lock_id, access_key_ref FROM vendor.k3_locks WHERE gone_at IS NULL ORDER BY lock_id

-- k3_locks_gone --
-- Mark the locks of one access key that its complete listing no longer has.
UPDATE vendor.k3_locks SET gone_at = $1
WHERE access_key_ref = $2 AND gone_at IS NULL AND NOT (lock_id = ANY($3::text[]))

-- k3_clients_gone --
-- Mark the clients of one lock that its complete listing no longer has.
UPDATE vendor.k3_clients SET gone_at = $1
WHERE lock_id = $2 AND gone_at IS NULL AND NOT (email = ANY($3::text[]))

-- k3_audit_insert --
-- Store audit entries; an entry already stored is left alone (never a duplicate). Returns new ones.
INSERT INTO vendor.k3_audit (lock_id, audit_entry_id, entered_at, entry_type, entry_text,
                             first_seen_at, raw)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[],
                     $6::timestamptz[], $7::jsonb[])
ON CONFLICT (lock_id, audit_entry_id) DO NOTHING
RETURNING audit_entry_id, entered_at, first_seen_at

-- k3_audit_max_id --
-- The highest audit entry id stored for a lock.
SELECT max(audit_entry_id) FROM vendor.k3_audit WHERE lock_id = $1

-- netcode_find --
-- A NetCode already issued with these parameters (by their HMAC), counting the repeat.
UPDATE ops.netcodes SET repeats = repeats + 1, last_asked_at = now(), last_asked_by = $2
WHERE params_ref = $1
RETURNING id, code_sealed, expires_at, issued_at, issued_by

-- netcode_insert --
-- Record a NetCode just issued; returns its id.
INSERT INTO ops.netcodes (params_ref, lock_id, lock_model, start, duration_id, expires_at,
                          code_sealed, issued_by, last_asked_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
ON CONFLICT (params_ref) DO UPDATE
SET code_sealed = EXCLUDED.code_sealed, repeats = ops.netcodes.repeats + 1
RETURNING id

-- k3_lock_access_ref --
-- The access key ref of a lock (any state), if known.
SELECT access_key_ref FROM vendor.k3_locks WHERE lock_id = $1

-- k3_lock_get --
-- One lock as last listed (any state): its name, access key ref, time zone and whether it is gone.
SELECT lock_id, lock_name, access_key_ref, timezone, timezone_offset, gone_at
FROM vendor.k3_locks WHERE lock_id = $1

-- k3_lock_clients --
-- The smartphone clients a lock had at its last complete listing.
SELECT email, status, access_type, last_seen_at FROM vendor.k3_clients
WHERE lock_id = $1 AND gone_at IS NULL ORDER BY email

-- k3_drift_locks --
-- The facts the K3 lock rules need, for every lock still listed.
SELECT l.lock_id, l.lock_name, l.battery_status, l.battery_updated_at, r.last_audit_at,
       l.first_seen_at
FROM vendor.k3_locks l JOIN report.k3_locks r USING (lock_id)
WHERE l.gone_at IS NULL
ORDER BY l.lock_id

-- k3_drift_clients --
-- Vendor clients joined with the expected ones, on locks still listed (or expected anywhere).
SELECT c.lock_id, c.email, c.status, c.access_type, c.expected
FROM report.k3_clients c
LEFT JOIN vendor.k3_locks l ON l.lock_id = c.lock_id
WHERE l.gone_at IS NULL
ORDER BY c.lock_id, c.email

-- k3_audit_lateness --
-- How late audit entries first seen since $1 reached syncd (seconds after DateEntered).
SELECT count(*) AS entries,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_seen_at - entered_at))
           AS median_seconds,
       max(extract(epoch FROM first_seen_at - entered_at)) AS max_seconds
FROM vendor.k3_audit WHERE first_seen_at >= $1
