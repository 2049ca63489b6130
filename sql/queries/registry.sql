-- app_devices_upsert_batch --
-- Upsert a batch of registrations (one statement, one commit); per MAC: status and banned.
-- A MAC repeated in the batch keeps its last registration. Only rows with a changed field, or
-- whose last_seen_at is older than $8 seconds, are written (the triggers then add history rows):
-- a batch of unchanged re-posts takes no row lock and writes no WAL (so its commit waits for no
-- flush).
WITH input AS (
    SELECT DISTINCT ON (mac) mac, os, ver, kind, app_ver, app, ip
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::inet[])
         WITH ORDINALITY AS t(mac, os, ver, kind, app_ver, app, ip, ord)
    ORDER BY mac, ord DESC
), stale AS (
    SELECT i.* FROM input i LEFT JOIN vendor.app_devices d ON d.mac_address = i.mac
    WHERE d.mac_address IS NULL
       OR (d.device_os, d.device_version, d.device_type, d.app_version, d.app_name)
          IS DISTINCT FROM (i.os, i.ver, i.kind, i.app_ver, i.app)
       OR d.last_seen_at < now() - make_interval(secs => $8::float8)
), written AS (
    INSERT INTO vendor.app_devices AS d (mac_address, device_os, device_version, device_type,
                                         app_version, app_name, last_ip)
    SELECT mac, os, ver, kind, app_ver, app, ip FROM stale
    ON CONFLICT (mac_address) DO UPDATE SET
        device_os = EXCLUDED.device_os, device_version = EXCLUDED.device_version,
        device_type = EXCLUDED.device_type, app_version = EXCLUDED.app_version,
        app_name = EXCLUDED.app_name, last_ip = EXCLUDED.last_ip, last_seen_at = now(),
        updated_at = CASE WHEN (d.device_os, d.device_version, d.device_type, d.app_version,
                                d.app_name)
                               IS DISTINCT FROM
                               (EXCLUDED.device_os, EXCLUDED.device_version, EXCLUDED.device_type,
                                EXCLUDED.app_version, EXCLUDED.app_name)
                          THEN now() ELSE d.updated_at END
    -- checked again under the row lock: another replica may have written the row meanwhile
    WHERE (d.device_os, d.device_version, d.device_type, d.app_version, d.app_name)
          IS DISTINCT FROM
          (EXCLUDED.device_os, EXCLUDED.device_version, EXCLUDED.device_type,
           EXCLUDED.app_version, EXCLUDED.app_name)
       OR d.last_seen_at < now() - make_interval(secs => $8::float8)
    RETURNING d.mac_address, d.status
)
SELECT i.mac AS mac_address, coalesce(w.status, d.status, 1)::int AS status,
       (b.mac_address IS NOT NULL) AS banned
FROM input i
LEFT JOIN written w ON w.mac_address = i.mac
LEFT JOIN vendor.app_devices d ON d.mac_address = i.mac
LEFT JOIN ops.app_device_bans b ON b.mac_address = i.mac

-- app_device_get --
-- One device as report.app_devices shows it (with ban details), or no row.
SELECT mac_address, device_os, device_version, device_type, app_version, app_name, status,
       ban_status, updated_at, first_seen_at, last_seen_at, banned_at, ban_reason
FROM report.app_devices
WHERE mac_address = $1

-- app_device_ban_get --
-- The current ban of a MAC (registered or not), or no row.
SELECT mac_address, reason, banned_at, banned_by FROM ops.app_device_bans WHERE mac_address = $1

-- app_device_ban --
-- Ban a MAC; returns the row only if it was not banned already.
INSERT INTO ops.app_device_bans (mac_address, reason, banned_by) VALUES ($1, $2, $3)
ON CONFLICT (mac_address) DO NOTHING
RETURNING mac_address

-- app_device_unban --
-- Lift a MAC's ban; returns the lifted ban's reason, or no row if it was not banned.
DELETE FROM ops.app_device_bans WHERE mac_address = $1 RETURNING reason

-- app_device_history_of --
-- A device's history, newest first.
SELECT changed_at, change, device_os, device_version, device_type, app_version, app_name,
       previous_app_version, app_version_changed
FROM report.app_device_history
WHERE mac_address = $1
ORDER BY changed_at DESC
LIMIT $2
