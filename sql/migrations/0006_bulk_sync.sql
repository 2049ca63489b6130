-- Device state for a large fleet without one GET per device per pass (issue 14).
--
-- vendor.phones.detail_at: when a GET of the device last answered. NULL means the row was taken
-- from the uploads listing only (state, IMEIs and the listed row as raw) and its details
-- (licence expiry, firmware, …) have not been read yet. The GET stays the truth: the listing never
-- overwrites a row that a GET wrote; it only says which devices to read again.
ALTER TABLE vendor.phones ADD COLUMN detail_at timestamptz;
COMMENT ON COLUMN vendor.phones.detail_at IS
    'When a GET of the device last answered; NULL: known from the uploads listing only';

-- Every row so far was written by a GET; last_seen_at is within an hour of it.
UPDATE vendor.phones SET detail_at = last_seen_at;

-- Intake writes one ops.inbox row per push, so every index on it is paid for on every push.
-- received_at only grows (it defaults to now() at insert), so a BRIN index serves the range scans
-- that use it (housekeeping's prune, recent failed pushes) at a fraction of a btree's upkeep.
DROP INDEX ops.inbox_received;
CREATE INDEX inbox_received ON ops.inbox USING brin (received_at);
