-- inbox_insert_batch --
-- Insert a batch of pushed events in one statement; duplicates (same source + dedupe key) are skipped.
INSERT INTO ops.inbox (source, dedupe_key, event_type, subject, body)
SELECT s, k, t, subj, b::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS x(s, k, t, subj, b)
ON CONFLICT (source, dedupe_key) DO NOTHING
RETURNING source, dedupe_key

-- quarantine_insert --
-- Keep a push that could not be accepted, raw, for inspection.
INSERT INTO ops.quarantine (source, reason, content_type, body) VALUES ($1, $2, $3, $4)

-- inbox_claim --
-- Lease up to $1 due events with fewer than $3 attempts to this worker for $2 seconds (another
-- worker skips them meanwhile; the attempt number is the lease's token, next_attempt_at its end). The body comes back as text: the worker decodes each event on its
-- own, so one body it cannot read never fails the claim of the others.
UPDATE ops.inbox i
SET attempts = i.attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
WHERE i.id IN (
    SELECT id FROM ops.inbox
    WHERE status = 'pending' AND next_attempt_at <= now() AND attempts < $3
    ORDER BY id
    LIMIT $1
    FOR UPDATE SKIP LOCKED)
RETURNING i.id, i.source, i.body::text AS body, i.attempts

-- inbox_give_up --
-- Mark failed every due pending event that has used its $1 attempts, whatever stopped them
-- (a worker that died mid-attempt leaves no outcome); return their ids.
UPDATE ops.inbox
SET status = 'failed', processed_at = now(),
    error = left('gave up after ' || attempts || ' attempts: '
                 || coalesce(error, 'no outcome recorded (the worker stopped mid-attempt)'), 500)
WHERE id IN (
    SELECT id FROM ops.inbox
    WHERE status = 'pending' AND next_attempt_at <= now() AND attempts >= $1
    ORDER BY id
    FOR UPDATE SKIP LOCKED)
RETURNING id

-- inbox_mark --
-- Record an event's outcome ($2: processed, unparsed or failed) only while the worker holds its lease: the event is still pending at the attempt $6 it leased, and the lease has not run out. Returns the id when written.
UPDATE ops.inbox
SET status = $2, processed_at = now(), error = $3, subject = coalesce($4, subject),
    event_type = coalesce($5, event_type)
WHERE id = $1 AND status = 'pending' AND attempts = $6 AND next_attempt_at > now()
RETURNING id

-- inbox_retry_later --
-- Put an event back for another attempt after $2 seconds, noting why, only while the worker holds its lease (attempt $4, not run out). Returns the id when written.
UPDATE ops.inbox SET next_attempt_at = now() + make_interval(secs => $2), error = $3
WHERE id = $1 AND status = 'pending' AND attempts = $4 AND next_attempt_at > now()
RETURNING id

-- inbox_prune --
-- Forget finished events older than $1 days (the dedupe window is at least this long).
DELETE FROM ops.inbox WHERE status <> 'pending' AND received_at < now() - make_interval(days => $1)

-- inbox_counts --
-- Events by status.
SELECT status, count(*) AS n FROM ops.inbox GROUP BY status

-- subscription_get --
-- The stored state of a provider's push subscription.
SELECT provider, public_url, secret_sha256, secret_source, registered_at, checked_at, status, last_error
FROM ops.subscriptions WHERE provider = $1

-- subscription_save --
-- Record a (re-)registered subscription.
INSERT INTO ops.subscriptions (provider, public_url, secret_sha256, secret_source, status, last_error)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (provider) DO UPDATE SET
    public_url = EXCLUDED.public_url, secret_sha256 = EXCLUDED.secret_sha256,
    secret_source = EXCLUDED.secret_source, status = EXCLUDED.status,
    last_error = EXCLUDED.last_error, checked_at = now(),
    registered_at = CASE WHEN EXCLUDED.status = 'registered' THEN now() ELSE ops.subscriptions.registered_at END

-- subscription_touch --
-- Note that the subscription was checked and found current.
UPDATE ops.subscriptions SET checked_at = now() WHERE provider = $1

-- subscription_failed --
-- Record a failed (re-)registration without touching the secret already registered.
INSERT INTO ops.subscriptions (provider, public_url, secret_sha256, secret_source, status, last_error)
VALUES ($1, $2, '', 'generated', 'failed', $3)
ON CONFLICT (provider) DO UPDATE SET status = 'failed', last_error = EXCLUDED.last_error, checked_at = now()

-- subscription_deleted --
-- Record that the subscription was deleted at the vendor.
UPDATE ops.subscriptions SET status = 'deleted', checked_at = now(), last_error = NULL WHERE provider = $1

-- quarantine_prune --
-- Forget quarantined pushes older than $1 days.
DELETE FROM ops.quarantine WHERE received_at < now() - make_interval(days => $1)

-- inbox_list --
-- Stored pushes with status $1 (NULL: any) received since $2 (NULL: ever), newest first, at most $3.
SELECT id, source, received_at, event_type, subject, status, attempts, next_attempt_at,
       processed_at, error, replays, replayed_at
FROM ops.inbox
WHERE ($1::text IS NULL OR status = $1) AND ($2::timestamptz IS NULL OR received_at >= $2)
ORDER BY id DESC
LIMIT $3

-- inbox_get --
-- One stored push, its body pretty-printed by PostgreSQL (control characters stay escaped).
SELECT id, source, received_at, event_type, subject, status, attempts, next_attempt_at,
       processed_at, error, replays, replayed_at, dedupe_key, jsonb_pretty(body) AS body
FROM ops.inbox
WHERE id = $1

-- inbox_states --
-- The status of each of the events $1 that exists.
SELECT id, status FROM ops.inbox WHERE id = ANY($1::bigint[])

-- inbox_select --
-- Ids of the events with status $1 received since $2 (NULL: ever), oldest first, at most $3.
SELECT id FROM ops.inbox
WHERE status = $1 AND ($2::timestamptz IS NULL OR received_at >= $2)
ORDER BY id
LIMIT $3

-- inbox_replay --
-- Put the finished events among $1 back in the inbox: pending, due now, with a fresh attempt budget. An event still pending is left to the worker that holds or will lease it (that is what makes a replay idempotent). Returns each replayed id with the status it had.
WITH old AS (
    SELECT id, status FROM ops.inbox
    WHERE id = ANY($1::bigint[]) AND status <> 'pending'
    ORDER BY id
    FOR UPDATE)
UPDATE ops.inbox i
SET status = 'pending', attempts = 0, next_attempt_at = now(), processed_at = NULL,
    replays = i.replays + 1, replayed_at = now()
FROM old
WHERE i.id = old.id
RETURNING i.id, old.status AS was

-- quarantine_list --
-- Quarantined pushes received since $1 (NULL: ever), newest first, at most $2, with their size.
SELECT id, source, received_at, reason, content_type, octet_length(body) AS size
FROM ops.quarantine
WHERE $1::timestamptz IS NULL OR received_at >= $1
ORDER BY id DESC
LIMIT $2

-- quarantine_get --
-- One quarantined push with its raw body.
SELECT id, source, received_at, reason, content_type, body FROM ops.quarantine WHERE id = $1
