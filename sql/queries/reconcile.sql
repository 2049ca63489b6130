-- reconcile_phone_candidates --
-- One pass over contracts FULL JOIN devices (not gone): contracts not plainly settled (no device, another provider than pinned, state not the settled one, licence ending before $1) and devices no contract names.
SELECT c.device_uid AS contract_uid, c.desired_state, c.updated_at AS contract_updated_at,
       c.provider AS pinned, p.provider, p.device_uid, p.vendor_state
FROM local.phone_contracts c
FULL JOIN (SELECT provider, device_uid, vendor_state, license_expiry
           FROM vendor.phones WHERE gone_at IS NULL) p ON p.device_uid = c.device_uid
WHERE c.device_uid IS NULL OR p.device_uid IS NULL
   OR (c.provider IS NOT NULL AND p.provider <> c.provider)
   OR p.license_expiry < $1
   OR NOT coalesce(CASE c.desired_state
                       WHEN 'locked' THEN p.vendor_state = 'Locked'
                       WHEN 'active' THEN p.vendor_state IN ('Enrolled', 'Blinked')
                       WHEN 'completed' THEN p.vendor_state = 'Completed'
                   END, false)

-- reconcile_phone_holders --
-- Every provider's (not gone) row for the devices $1: a candidate may have a settled holder elsewhere.
SELECT provider, device_uid, vendor_state, last_changed_at, license_expiry
FROM vendor.phones
WHERE provider IN ('neolock', 'knoxguard') AND device_uid = ANY($1::text[]) AND gone_at IS NULL

-- reconcile_terminal_candidates --
-- Terminals expected and/or listed that are missing, unknown, not online at $1 (window $2), or whose alias/area differ.
SELECT coalesce(t.sn, l.sn) AS sn, (l.sn IS NOT NULL) AS expected,
       (t.sn IS NOT NULL AND t.gone_at IS NULL) AS listed,
       t.terminal_id, t.alias, t.area_code, l.alias AS expected_alias,
       l.area_code AS expected_area_code, t.state, t.last_activity, t.first_seen_at
FROM vendor.terminals t
FULL JOIN local.terminals l ON l.sn = t.sn
WHERE (l.sn IS NOT NULL AND (t.sn IS NULL OR t.gone_at IS NOT NULL))
   OR (l.sn IS NULL AND t.gone_at IS NULL)
   OR (l.sn IS NOT NULL AND t.gone_at IS NULL
       AND (NOT vendor.terminal_online(t.state, t.last_activity, $1, $2)
            OR (l.alias IS NOT NULL AND l.alias IS DISTINCT FROM t.alias)
            OR (l.area_code IS NOT NULL AND l.area_code IS DISTINCT FROM t.area_code)))

-- reconcile_job_runs --
-- Each job's latest $1 finished runs, newest first, with the latest error.
SELECT job, array_agg(status ORDER BY started_at DESC) AS statuses,
       (array_agg(error ORDER BY started_at DESC))[1] AS last_error
FROM (SELECT job, status, error, started_at,
             row_number() OVER (PARTITION BY job ORDER BY started_at DESC) AS rn
      FROM ops.sync_runs WHERE status <> 'running') r
WHERE rn <= $1
GROUP BY job

-- drift_stage --
-- The session's staging table for one reconcile's findings (emptied at commit).
CREATE TEMP TABLE IF NOT EXISTS stage_findings (
    kind text, subject text, provider text, severity text, expected text, actual text,
    detail jsonb, plan jsonb, opens boolean
) ON COMMIT DELETE ROWS

-- drift_open --
-- Open a case for each staged finding (past its grace window) without an open case ($1 now); announce it (queue its opened alert) when severity ranks ≥ $2. Returns counts.
WITH opened AS (
    INSERT INTO ops.drift AS d (kind, subject, provider, severity, expected, actual, detail, plan,
                                first_seen_at, last_seen_at, announced_severity, announced_at)
    SELECT f.kind, f.subject, f.provider, f.severity, f.expected, f.actual, f.detail, f.plan, $1, $1,
           CASE WHEN ops.severity_rank(f.severity) >= $2 THEN f.severity END,
           CASE WHEN ops.severity_rank(f.severity) >= $2 THEN $1::timestamptz END
    FROM stage_findings f
    WHERE f.opens AND NOT EXISTS (SELECT 1 FROM ops.drift o
                      WHERE o.status = 'open' AND o.kind = f.kind AND o.subject = f.subject)
    ON CONFLICT (kind, subject) WHERE status = 'open' DO NOTHING
    RETURNING d AS row
), alerted AS (
    INSERT INTO ops.outbox (event_id, type, payload)
    SELECT 'drift-' || (o.row).id || '-opened', ops.drift_alert_type((o.row).kind, 'opened'),
           ops.drift_alert(o.row, 'opened')
    FROM opened o
    WHERE (o.row).announced_severity IS NOT NULL
    ON CONFLICT (event_id) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM opened) AS opened, (SELECT count(*) FROM alerted) AS alerted

-- drift_refresh --
-- Rewrite open cases whose description changed, or whose last_seen_at is older than $2 before $1.
UPDATE ops.drift d
SET severity = f.severity, expected = f.expected, actual = f.actual, detail = f.detail,
    plan = f.plan, provider = f.provider, last_seen_at = $1
FROM stage_findings f
WHERE d.status = 'open' AND d.kind = f.kind AND d.subject = f.subject
  AND (ROW(d.severity, d.expected, d.actual, d.detail, d.plan, d.provider)
           IS DISTINCT FROM ROW(f.severity, f.expected, f.actual, f.detail, f.plan, f.provider)
       OR d.last_seen_at < $1::timestamptz - $2::interval)

-- drift_resolve --
-- Resolve open cases of the evaluated kinds ($2) with no staged finding ($1 now); queue a resolved alert where an opened one was queued.
WITH resolved AS (
    UPDATE ops.drift d SET status = 'resolved', resolved_at = $1
    WHERE d.status = 'open' AND d.kind = ANY($2::text[])
      AND NOT EXISTS (SELECT 1 FROM stage_findings f WHERE f.kind = d.kind AND f.subject = d.subject)
    RETURNING d AS row
), alerted AS (
    INSERT INTO ops.outbox (event_id, type, payload)
    SELECT 'drift-' || (r.row).id || '-resolved', ops.drift_alert_type((r.row).kind, 'resolved'),
           ops.drift_alert(r.row, 'resolved')
    FROM resolved r
    WHERE EXISTS (SELECT 1 FROM ops.outbox x WHERE x.event_id = 'drift-' || (r.row).id || '-opened')
    ON CONFLICT (event_id) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM resolved) AS resolved, (SELECT count(*) FROM alerted) AS alerted

-- drift_announce --
-- Tell receivers what they were not told of the open cases of kinds $4 not suppressed at $1 whose severity ranks ≥ $2: a severity above the announced one (escalated, once per severity reached; opened if no alert was sent yet), else, when $3 > 0, a case last announced $3 or longer ago (reminder). Returns counts per transition.
WITH due AS (
    SELECT d.id, d.announced_severity AS previous,
           CASE WHEN d.announced_severity IS NULL THEN 'opened'
                WHEN ops.severity_rank(d.severity) > ops.severity_rank(d.announced_severity)
                    THEN 'escalated'
                ELSE 'reminder' END AS transition
    FROM ops.drift d
    WHERE d.status = 'open' AND d.kind = ANY($4::text[])
      AND NOT coalesce(d.suppressed_until > $1, false)
      AND ops.severity_rank(d.severity) >= $2
      AND (d.announced_severity IS NULL
           OR ops.severity_rank(d.severity) > ops.severity_rank(d.announced_severity)
           OR ($3::interval > interval '0' AND d.announced_at <= $1::timestamptz - $3::interval))
), announced AS (
    UPDATE ops.drift d
    SET announced_severity = CASE u.transition WHEN 'reminder' THEN d.announced_severity
                                               ELSE d.severity END,
        announced_at = $1,
        reminders = d.reminders + CASE u.transition WHEN 'reminder' THEN 1 ELSE 0 END
    FROM due u
    WHERE d.id = u.id
    RETURNING d AS row, u.transition, u.previous
), alerted AS (
    INSERT INTO ops.outbox (event_id, type, payload)
    SELECT 'drift-' || (a.row).id || '-' || CASE a.transition
               WHEN 'escalated' THEN 'escalated-' || (a.row).severity
               WHEN 'reminder' THEN 'reminder-' || (a.row).reminders
               ELSE a.transition END,
           ops.drift_alert_type((a.row).kind, a.transition),
           ops.drift_alert(a.row, a.transition) || CASE a.transition
               WHEN 'escalated' THEN jsonb_build_object('previous_severity', a.previous)
               WHEN 'reminder' THEN jsonb_build_object('reminder', (a.row).reminders)
               ELSE '{}'::jsonb END
    FROM announced a
    ON CONFLICT (event_id) DO NOTHING
    RETURNING 1
)
SELECT count(*) FILTER (WHERE transition = 'opened') AS opened,
       count(*) FILTER (WHERE transition = 'escalated') AS escalated,
       count(*) FILTER (WHERE transition = 'reminder') AS reminded,
       (SELECT count(*) FROM alerted) AS alerted
FROM announced

-- drift_list --
-- Cases by status ('open' includes suppressed ones; NULL: all), newest first, at most $2.
SELECT id, kind, subject, provider, severity, expected, actual, status, first_seen_at,
       last_seen_at, resolved_at, detail, plan, suppressed_until, suppressed_reason, suppressed_by
FROM report.drift
WHERE $1::text IS NULL OR status = $1 OR ($1 = 'open' AND status = 'suppressed')
ORDER BY id DESC
LIMIT $2

-- drift_get --
-- One case by id.
SELECT id, kind, subject, provider, severity, expected, actual, status, first_seen_at,
       last_seen_at, resolved_at, detail, plan, suppressed_until, suppressed_reason, suppressed_by
FROM report.drift
WHERE id = $1

-- drift_open_of_kinds --
-- Open cases (suppressed ones included) of the kinds $1, oldest first.
SELECT id, kind, subject, provider, severity, expected, actual, status, first_seen_at,
       last_seen_at, resolved_at, detail, plan, suppressed_until, suppressed_reason, suppressed_by
FROM report.drift
WHERE kind = ANY($1::text[]) AND status IN ('open', 'suppressed')
ORDER BY id

-- drift_suppress --
-- Suppress an open case until $2 with reason $3 by $4; returns its id, kind, subject and provider, or nothing if not open.
UPDATE ops.drift SET suppressed_until = $2, suppressed_reason = $3, suppressed_by = $4
WHERE id = $1 AND status = 'open'
RETURNING id, kind, subject, provider

-- drift_unsuppress --
-- Lift a case's suppression; returns its id, kind, subject and provider, or nothing if there is no such case.
UPDATE ops.drift SET suppressed_until = NULL, suppressed_reason = NULL, suppressed_by = NULL
WHERE id = $1
RETURNING id, kind, subject, provider

-- drift_open_counts --
-- Open, unsuppressed cases by kind and severity (the syncd_drift_open gauge).
SELECT kind, severity, count(*) AS cases
FROM ops.drift
WHERE status = 'open' AND NOT coalesce(suppressed_until > now(), false)
GROUP BY kind, severity

-- remediation_claims_lock --
-- Claimers take turns until their transaction ends (readers are not held up): each sees the claims of the one before.
LOCK TABLE ops.remediation_claims IN SHARE ROW EXCLUSIVE MODE

-- remediation_claim --
-- Claim for run $5 (lease $6) up to $4 minus the claims live runs hold of the open cases unsuppressed at $1 with an allowed plan a remediator here can carry out ($3: 'action|provider') whose subject was not claimed (nor acted on by reconcile) within the cooldown $2 and has no live claim: one case per subject, most severe and oldest first. Returns the cases claimed.
WITH budget AS (
    SELECT greatest($4 - count(*), 0) AS left_ FROM ops.remediation_claims
    WHERE released_at IS NULL AND lease_until > now()
), candidates AS (
    SELECT DISTINCT ON (d.subject)
           d.id, d.kind, d.subject, d.provider, d.severity, d.expected, d.actual, d.detail, d.plan,
           d.first_seen_at
    FROM ops.drift d
    WHERE d.status = 'open' AND NOT coalesce(d.suppressed_until > $1, false)
      AND (d.plan ->> 'allowed')::boolean
      AND (d.plan ->> 'action') || '|' || coalesce(d.provider, '') = ANY($3::text[])
      AND NOT EXISTS (SELECT 1 FROM ops.remediation_claims c
                      WHERE c.subject = d.subject
                        AND (c.claimed_at > now() - $2::interval
                             OR (c.released_at IS NULL AND c.lease_until > now())))
      AND NOT EXISTS (SELECT 1 FROM ops.remediation_log l
                      WHERE l.subject = d.subject AND l.actor = 'reconcile'
                        AND l.at > now() - $2::interval)
    ORDER BY d.subject, ops.severity_rank(d.severity) DESC, d.first_seen_at, d.id
), picked AS (
    SELECT * FROM candidates
    ORDER BY ops.severity_rank(severity) DESC, first_seen_at, id
    LIMIT (SELECT left_ FROM budget)
), claimed AS (
    INSERT INTO ops.remediation_claims (run_id, case_id, subject, action, lease_until)
    SELECT $5, id, subject, plan ->> 'action', now() + $6::interval FROM picked
    RETURNING case_id
)
SELECT p.id, p.kind, p.subject, p.provider, p.severity, p.expected, p.actual, p.detail, p.plan
FROM picked p
WHERE p.id IN (SELECT case_id FROM claimed)
ORDER BY ops.severity_rank(p.severity) DESC, p.first_seen_at, p.id

-- remediation_claims_renew --
-- Extend the lease of run $1's live claims by $2 from now (the run is still at work).
UPDATE ops.remediation_claims SET lease_until = now() + $2::interval
WHERE run_id = $1 AND released_at IS NULL

-- remediation_claims_release --
-- Run $1 has finished: its claims stop counting against the cap (they keep the cooldown).
UPDATE ops.remediation_claims SET released_at = now()
WHERE run_id = $1 AND released_at IS NULL

-- remediation_claims_prune --
-- Forget claims older than $1 days (longer ago than any cooldown worth having).
DELETE FROM ops.remediation_claims WHERE claimed_at < now() - make_interval(days => $1)

-- reconcile_contract --
-- The lock message and contact phone of a contract.
SELECT device_uid, desired_state, lock_message, contact_tel
FROM local.phone_contracts
WHERE device_uid = $1

-- reconcile_area_id --
-- BioTime's area id for an area code, as the terminal listing shows it.
SELECT area_id FROM vendor.terminals
WHERE area_code = $1 AND area_id IS NOT NULL
ORDER BY last_seen_at DESC
LIMIT 1
