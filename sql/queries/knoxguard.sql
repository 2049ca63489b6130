-- knox_present_devices --
-- Knox Guard devices stored and not marked gone (candidates for the direct check after a pass).
SELECT device_uid FROM vendor.phones WHERE provider = 'knoxguard' AND gone_at IS NULL

-- knox_settled_uploads --
-- Upload batches already stored complete: upload id and how many device rows it has.
SELECT upload_id, count(*) AS devices FROM vendor.phone_uploads
WHERE provider = 'knoxguard' AND gone_at IS NULL
GROUP BY upload_id
HAVING bool_and(upload_status = 'Completed')
