-- biotime_terminals_present --
-- Terminals the last complete listing had (not gone): serial number and BioTime id.
SELECT sn, terminal_id FROM vendor.terminals WHERE gone_at IS NULL ORDER BY sn

-- biotime_terminal_ids --
-- BioTime ids of the listed (not gone) terminals among the serial numbers $1.
SELECT sn, terminal_id FROM vendor.terminals WHERE sn = ANY($1::text[]) AND gone_at IS NULL

-- biotime_rules_set --
-- Store the configured online window and server zone that report.terminals reads (only if changed).
INSERT INTO ops.terminal_rules AS r (singleton, online_window, server_timezone, updated_at)
VALUES (true, $1::interval, $2::text, now())
ON CONFLICT (singleton) DO UPDATE
SET online_window = EXCLUDED.online_window, server_timezone = EXCLUDED.server_timezone,
    updated_at = EXCLUDED.updated_at
WHERE r.online_window IS DISTINCT FROM EXCLUDED.online_window
   OR r.server_timezone IS DISTINCT FROM EXCLUDED.server_timezone

-- biotime_terminals_report --
-- Every row of report.terminals, problems first.
SELECT sn, alias, area_name, area_code, ip_address, state, online, last_activity, expected,
       last_seen_at, gone_at, status, expected_alias
FROM report.terminals
ORDER BY CASE status WHEN 'missing' THEN 0 WHEN 'offline' THEN 1 WHEN 'unknown' THEN 2
                     WHEN 'gone' THEN 3 ELSE 4 END, sn

-- biotime_command_start --
-- Record a terminal command about to be sent (outcome 'pending'); returns its id.
INSERT INTO ops.terminal_commands (sn, terminal_id, command, requested_by)
VALUES ($1, $2, $3, $4)
RETURNING id

-- biotime_command_finish --
-- Record how a terminal command ended: outcome 'ok' or 'failed' and the error, if any.
UPDATE ops.terminal_commands SET outcome = $2, error = $3, finished_at = now() WHERE id = $1
