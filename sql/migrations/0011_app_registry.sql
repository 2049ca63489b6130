-- The app device registry: devices the business's apps register (POST /v2/device), their change
-- history, operator bans, and the report views.

-- One row per device, keyed by the normalised MAC address (separators removed, upper case: see
-- syncd/registry/validate.py). A re-post with nothing changed writes nothing, except that
-- last_seen_at (and last_ip) are refreshed at most every registry.last_seen_resolution_seconds.
CREATE TABLE vendor.app_devices (
    mac_address    text PRIMARY KEY CHECK (mac_address ~ '^[0-9A-F]{12,64}$'),
    device_os      text NOT NULL,
    device_version text NOT NULL,
    device_type    text NOT NULL,
    app_version    text NOT NULL,
    app_name       text NOT NULL,
    status         smallint NOT NULL DEFAULT 1,
    last_ip        inet,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN vendor.app_devices.status IS '1: registered and active (the API''s data.status)';
COMMENT ON COLUMN vendor.app_devices.updated_at IS 'When the device''s fields last changed (or it registered)';
COMMENT ON COLUMN vendor.app_devices.last_seen_at IS
    'Last registration call, at registry.last_seen_resolution_seconds precision';

-- One row per distinct state of a device: its registration, then every change of its fields.
-- Written by triggers, so every writer keeps it true; a re-post with nothing changed adds none.
CREATE TABLE vendor.app_device_history (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    mac_address    text NOT NULL,
    changed_at     timestamptz NOT NULL DEFAULT now(),
    change         text NOT NULL CHECK (change IN ('registered', 'updated')),
    device_os      text NOT NULL,
    device_version text NOT NULL,
    device_type    text NOT NULL,
    app_version    text NOT NULL,
    app_name       text NOT NULL
);
CREATE INDEX app_device_history_mac ON vendor.app_device_history (mac_address, changed_at);

CREATE FUNCTION vendor.app_device_history_append() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO vendor.app_device_history (mac_address, change, device_os, device_version,
                                           device_type, app_version, app_name)
    VALUES (NEW.mac_address, CASE TG_OP WHEN 'INSERT' THEN 'registered' ELSE 'updated' END,
            NEW.device_os, NEW.device_version, NEW.device_type, NEW.app_version, NEW.app_name);
    RETURN NULL;
END
$$;
CREATE TRIGGER app_device_registered AFTER INSERT ON vendor.app_devices
    FOR EACH ROW EXECUTE FUNCTION vendor.app_device_history_append();
CREATE TRIGGER app_device_updated AFTER UPDATE ON vendor.app_devices
    FOR EACH ROW
    WHEN ((OLD.device_os, OLD.device_version, OLD.device_type, OLD.app_version, OLD.app_name)
          IS DISTINCT FROM
          (NEW.device_os, NEW.device_version, NEW.device_type, NEW.app_version, NEW.app_name))
    EXECUTE FUNCTION vendor.app_device_history_append();

-- Current bans, by normalised MAC; a MAC may be banned before it ever registers. Every ban and
-- unban is also appended to ops.remediation_log (action device.ban / device.unban).
CREATE TABLE ops.app_device_bans (
    mac_address text PRIMARY KEY CHECK (mac_address ~ '^[0-9A-F]{12,64}$'),
    reason      text NOT NULL,
    banned_at   timestamptz NOT NULL DEFAULT now(),
    banned_by   text NOT NULL
);

CREATE VIEW report.app_devices AS
SELECT d.mac_address, d.device_os, d.device_version, d.device_type, d.app_version, d.app_name,
       d.status, (b.mac_address IS NOT NULL)::int AS ban_status, d.updated_at,
       d.first_seen_at, d.last_seen_at, b.banned_at, b.reason AS ban_reason
FROM vendor.app_devices d
LEFT JOIN ops.app_device_bans b USING (mac_address);

-- Each registration and change of a device, with what came before and the device's first and
-- last sighting: e.g. app version upgrades per app are the rows where app_version_changed.
CREATE VIEW report.app_device_history AS
SELECT h.mac_address, h.changed_at, h.change, h.device_os, h.device_version, h.device_type,
       h.app_version, h.app_name,
       lag(h.app_version) OVER w AS previous_app_version,
       coalesce(h.app_version IS DISTINCT FROM lag(h.app_version) OVER w
                AND h.change = 'updated', false) AS app_version_changed,
       d.first_seen_at, d.last_seen_at
FROM vendor.app_device_history h
LEFT JOIN vendor.app_devices d USING (mac_address)
WINDOW w AS (PARTITION BY h.mac_address ORDER BY h.changed_at, h.id);
