-- demo_seed_terminal --
-- The business's record of one attendance terminal ($1 sn, $2 alias), kept if it exists.
INSERT INTO local.terminals (sn, alias) VALUES ($1, $2) ON CONFLICT DO NOTHING

-- demo_seed_contract --
-- A phone contract ($1 device uid, $2 desired state, $3 contract ref), replacing the desired state.
INSERT INTO local.phone_contracts (device_uid, desired_state, contract_ref)
VALUES ($1, $2, $3) ON CONFLICT (device_uid) DO UPDATE SET desired_state = $2

-- demo_phones_in_drift --
-- How many phones report.phones shows in drift.
SELECT count(*) FROM report.phones WHERE in_drift

-- demo_event_counts --
-- Pushed events received, and how many were processed.
SELECT count(*) AS received, count(*) FILTER (WHERE status = 'processed') AS processed
FROM report.events

-- demo_phone_states --
-- Phones by console state, most common first.
SELECT vendor_state, console_state, count(*) AS n FROM report.phones GROUP BY 1, 2 ORDER BY 3 DESC

-- demo_terminal_states --
-- Terminals by status (report.terminals).
SELECT status, count(*) AS n FROM report.terminals GROUP BY 1 ORDER BY 1

-- demo_api_usage --
-- Codelocks calls this period, by category.
SELECT category, calls, quota FROM report.api_usage

-- demo_locked_count --
-- How many of the devices $1 NeoLock now reports Locked.
SELECT count(*) FROM vendor.phones WHERE device_uid = ANY($1) AND vendor_state = 'Locked'

-- demo_seed_k3_client --
-- The business expects this smartphone client on this K3 lock.
INSERT INTO local.k3_clients (lock_id, email) VALUES ($1, $2) ON CONFLICT DO NOTHING
