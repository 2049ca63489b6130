-- phones_mark_gone --
-- Mark devices the vendor answered 404 for as gone.
UPDATE vendor.phones SET gone_at = $3
WHERE provider = $1 AND device_uid = ANY($2::text[]) AND gone_at IS NULL

-- neolock_known_devices_count --
-- How many NeoLock devices are known (for progress).
SELECT count(*) FROM (
    SELECT device_uid FROM vendor.phones WHERE provider = 'neolock' AND gone_at IS NULL
    UNION
    SELECT device_uid FROM vendor.phone_uploads WHERE provider = 'neolock'
    UNION
    SELECT device_uid FROM local.phone_contracts
) known

-- uploads_merge --
-- Merge pages of GET /clients/devices/uploads for provider $1 into vendor.phone_uploads: $2 the
-- pages' bodies as JSON text, $3 where the row list sits in each (keys joined by '/'), $4 the time
-- seen, $5 how stale last_seen_at may grow. The database extracts the columns (the rows are stored
-- verbatim as raw); a row listed twice keeps its last listing. Only new, changed, returning or
-- stale rows are written. Returns how many rows were inserted and how many updated.
WITH listed AS (
    SELECT DISTINCT ON (device_uid, upload_id) *
    FROM (
        SELECT e.r ->> 'deviceUid' AS device_uid, coalesce(e.r ->> 'uploadID', '') AS upload_id,
               (e.r ->> 'id')::numeric::bigint AS row_id, e.r ->> 'imei' AS imei,
               e.r ->> 'imei2' AS imei2, e.r ->> 'serial' AS serial, e.r ->> 'model' AS model,
               e.r ->> 'uploadStatus' AS upload_status, e.r ->> 'status' AS status, e.r AS raw,
               p.n, e.m
        FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS p(body, rows_at, n)
        CROSS JOIN LATERAL jsonb_array_elements(
            jsonb_extract_path(p.body::jsonb, VARIADIC string_to_array(p.rows_at, '/'))
        ) WITH ORDINALITY AS e(r, m)
    ) rows
    ORDER BY device_uid, upload_id, n DESC, m DESC
), merged AS (
    INSERT INTO vendor.phone_uploads AS t (provider, device_uid, upload_id, row_id, imei, imei2,
        serial, model, upload_status, status, raw, first_seen_at, last_seen_at, last_changed_at,
        gone_at)
    SELECT $1, device_uid, upload_id, row_id, imei, imei2, serial, model, upload_status, status,
           raw, $4, $4, $4, NULL
    FROM listed
    ON CONFLICT (provider, device_uid, upload_id) DO UPDATE SET
        row_id = EXCLUDED.row_id, imei = EXCLUDED.imei, imei2 = EXCLUDED.imei2,
        serial = EXCLUDED.serial, model = EXCLUDED.model, upload_status = EXCLUDED.upload_status,
        status = EXCLUDED.status, raw = EXCLUDED.raw, last_seen_at = EXCLUDED.last_seen_at,
        gone_at = NULL,
        last_changed_at = CASE
            WHEN ROW(t.row_id, t.imei, t.imei2, t.serial, t.model, t.upload_status, t.status, t.raw)
                 IS DISTINCT FROM ROW(EXCLUDED.row_id, EXCLUDED.imei, EXCLUDED.imei2,
                 EXCLUDED.serial, EXCLUDED.model, EXCLUDED.upload_status, EXCLUDED.status,
                 EXCLUDED.raw)
            THEN EXCLUDED.last_changed_at ELSE t.last_changed_at END
    WHERE ROW(t.row_id, t.imei, t.imei2, t.serial, t.model, t.upload_status, t.status, t.raw)
          IS DISTINCT FROM ROW(EXCLUDED.row_id, EXCLUDED.imei, EXCLUDED.imei2, EXCLUDED.serial,
          EXCLUDED.model, EXCLUDED.upload_status, EXCLUDED.status, EXCLUDED.raw)
       OR t.gone_at IS NOT NULL
       OR t.last_seen_at < EXCLUDED.last_seen_at - $5::interval
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted) AS inserted, count(*) FILTER (WHERE NOT inserted) AS updated
FROM merged

-- phones_detail_read --
-- Record that a GET of devices $2 (provider $1) answered at $3.
UPDATE vendor.phones SET detail_at = $3
WHERE provider = $1 AND device_uid = ANY($2::text[])
  AND (detail_at IS NULL OR detail_at < $3)

-- neolock_devices_scan --
-- The next $2 known NeoLock devices after $1 (keyset order), each with whether it is due for a
-- GET at time $3 given the detail age $4: never stored (only when $7: the uploads listing has been
-- read through, so a device it lacks is not merely one it has yet to list); known from the listing only and its
-- spread first read has come (first_seen_at + $4 × a fraction fixed by its id); listed
-- differently since its last GET; named by a push ($5 subjects, $6 received) whose refresh failed
-- since its last GET; or its detail
-- is older than $4 × (0.5 … 1, fixed by its id), which spreads the reads over the day.
WITH known AS (
    SELECT device_uid FROM (
        (SELECT device_uid FROM vendor.phones
         WHERE provider = 'neolock' AND device_uid > $1 AND gone_at IS NULL
         ORDER BY device_uid LIMIT $2)
        UNION
        (SELECT DISTINCT device_uid FROM vendor.phone_uploads
         WHERE provider = 'neolock' AND device_uid > $1 ORDER BY device_uid LIMIT $2)
        UNION
        (SELECT device_uid FROM local.phone_contracts WHERE device_uid > $1
         ORDER BY device_uid LIMIT $2)
    ) k
    ORDER BY device_uid
    LIMIT $2
)
SELECT k.device_uid,
       ((p.device_uid IS NULL AND $7::boolean)
        OR (p.detail_at IS NULL
            AND p.first_seen_at + $4::interval * ((hashtext(k.device_uid) & 65535) / 65536.0)
                <= $3)
        OR u.changed_at > p.detail_at
        OR EXISTS (SELECT 1 FROM unnest($5::text[], $6::timestamptz[]) f(subject, received_at)
                   WHERE f.subject = k.device_uid
                     AND (p.detail_at IS NULL OR f.received_at > p.detail_at))
        OR p.detail_at <= $3 - $4::interval * (1 - ((hashtext(k.device_uid) & 65535) / 131072.0))
       ) AS due
FROM known k
-- One index probe per scanned id: LIMIT keeps the planner from turning this into a join that
-- hashes the whole table on every scan.
LEFT JOIN LATERAL (
    SELECT device_uid, detail_at, first_seen_at FROM vendor.phones
    WHERE provider = 'neolock' AND device_uid = k.device_uid
    LIMIT 1
) p ON true
LEFT JOIN LATERAL (
    SELECT max(last_changed_at) AS changed_at FROM vendor.phone_uploads
    WHERE provider = 'neolock' AND device_uid = k.device_uid
) u ON true
ORDER BY k.device_uid

-- neolock_failed_push_subjects --
-- Devices named by NeoLock pushes received since $1 whose processing failed (the worker's GET
-- did not happen): the devices job reads them again.
SELECT subject, max(received_at) AS received_at FROM ops.inbox
WHERE source = 'neolock' AND received_at > $1 AND status = 'failed' AND subject IS NOT NULL
GROUP BY subject

-- neolock_phones_adopt_listed --
-- Of the next $3 listed devices after $2 (keyset order: the devices job's next scan), those no GET
-- has described yet take their state and IMEIs from their latest listing (raw: the listed row;
-- detail_at stays NULL), at time $1. Only devices missing from vendor.phones or listed
-- differently are written; a row a GET wrote is never touched. Returns the rows written.
WITH listed AS (
    SELECT DISTINCT ON (u.device_uid) u.device_uid, u.imei, u.imei2, u.status, u.raw
    FROM vendor.phone_uploads u
    WHERE u.provider = 'neolock' AND u.gone_at IS NULL AND u.device_uid > $2
    ORDER BY u.device_uid, u.row_id DESC NULLS LAST
    LIMIT $3
), adopted AS (
    INSERT INTO vendor.phones AS p (provider, device_uid, imei, imei2, vendor_state, raw,
        first_seen_at, last_seen_at, last_changed_at)
    SELECT 'neolock', l.device_uid, l.imei, l.imei2, l.status, l.raw, $1, $1, $1
    FROM listed l
    WHERE NOT EXISTS (
        SELECT 1 FROM vendor.phones d
        WHERE d.provider = 'neolock' AND d.device_uid = l.device_uid
          AND (d.detail_at IS NOT NULL
               OR ROW(d.imei, d.imei2, d.vendor_state, d.raw)
                  IS NOT DISTINCT FROM ROW(l.imei, l.imei2, l.status, l.raw)))
    ON CONFLICT (provider, device_uid) DO UPDATE SET
        imei = EXCLUDED.imei, imei2 = EXCLUDED.imei2, vendor_state = EXCLUDED.vendor_state,
        raw = EXCLUDED.raw, last_seen_at = EXCLUDED.last_seen_at,
        last_changed_at = EXCLUDED.last_changed_at
    WHERE p.detail_at IS NULL
    RETURNING 1
)
SELECT count(*) FROM adopted
