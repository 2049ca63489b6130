-- phone_providers --
-- The providers that list a device (not gone), for routing an operator action.
SELECT provider FROM vendor.phones WHERE device_uid = $1 AND gone_at IS NULL ORDER BY provider

-- phone_report --
-- report.phones rows of a device, every provider, with the stored raw object.
SELECT r.provider, r.device_uid, r.imei, r.imei2, r.vendor_state, r.console_state,
       r.license_expiry, r.desired_state, r.in_drift, r.last_seen_at, r.gone_at, r.last_changed_at,
       p.object_id, p.raw
FROM report.phones r
JOIN vendor.phones p ON p.provider = r.provider AND p.device_uid = r.device_uid
WHERE r.device_uid = $1
ORDER BY r.provider
