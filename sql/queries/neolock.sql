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
