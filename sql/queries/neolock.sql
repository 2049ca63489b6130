-- phones_mark_gone --
-- Mark devices the vendor answered 404 for as gone.
UPDATE vendor.phones SET gone_at = $3
WHERE provider = $1 AND device_uid = ANY($2::text[]) AND gone_at IS NULL

-- neolock_known_devices_after --
-- The next batch of known NeoLock device ids after $1 (keyset paging keeps memory constant).
-- Each branch walks its primary key from $1 and stops after $2 rows.
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
) known
ORDER BY device_uid
LIMIT $2

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
-- stale rows are written; returns how many rows were inserted and how many updated.
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
