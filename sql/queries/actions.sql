-- action_append --
-- Append one action to the hash-chained log (the trigger assigns seq and the hashes); returns seq.
INSERT INTO ops.remediation_log (actor, action, subject, provider, outcome, detail)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING seq

-- action_log_verify --
-- Every row with the hash recomputed from its content and its predecessor's hash and seq.
SELECT seq, hash, prev_hash,
       sha256(prev_hash || ops.remediation_content(seq, at, actor, action, subject, provider,
                                                   outcome, detail)) AS computed,
       lag(hash) OVER (ORDER BY seq) AS prior_hash,
       lag(seq) OVER (ORDER BY seq) AS prior_seq
FROM ops.remediation_log
ORDER BY seq

-- actions_for_subject --
-- The latest actions on one subject, newest first.
SELECT seq, at, actor, action, subject, provider, outcome, detail
FROM ops.remediation_log
WHERE subject = $1
ORDER BY seq DESC
LIMIT $2

-- outbox_enqueue --
-- Queue an alert; a second enqueue of the same event id is a no-op. Returns the id if new.
INSERT INTO ops.outbox (event_id, type, payload) VALUES ($1, $2, $3)
ON CONFLICT (event_id) DO NOTHING
RETURNING id
