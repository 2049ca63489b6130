-- sync_run_start --
-- Record that a job run started (by runner $2, replica $3 or NULL); returns its id.
INSERT INTO ops.sync_runs (job, status, runner, replica) VALUES ($1, 'running', $2, $3) RETURNING id

-- sync_run_finish --
-- Record how a job run ended.
UPDATE ops.sync_runs
SET finished_at = now(), status = $2, items = $3, requests = $4, error = $5
WHERE id = $1

-- sync_run_settle --
-- Fail run $1 with error $2 if it is still 'running' (its end could not be recorded when it came).
UPDATE ops.sync_runs
SET finished_at = now(), status = 'failed', error = $2
WHERE id = $1 AND status = 'running'

-- sync_run_previous_status --
-- Status of the job's latest finished run before this one (for transition logging).
SELECT status FROM ops.sync_runs
WHERE job = $1 AND status <> 'running' AND id <> $2
ORDER BY started_at DESC, id DESC
LIMIT 1

-- sync_runs_latest --
-- The latest run of every job, with when it last succeeded.
SELECT DISTINCT ON (r.job)
       r.job, r.started_at, r.finished_at, r.status, r.items, r.requests, r.error,
       (SELECT max(s.finished_at) FROM ops.sync_runs s
        WHERE s.job = r.job AND s.status = 'ok') AS last_success_at
FROM ops.sync_runs r
ORDER BY r.job, r.started_at DESC, r.id DESC

-- sync_runs_failed_in_a_row --
-- Per job with runs: how many of its runs since its latest successful one failed.
SELECT j.job,
       (SELECT count(*) FROM ops.sync_runs f
        WHERE f.job = j.job AND f.status = 'failed'
          AND f.started_at > coalesce((SELECT max(s.started_at) FROM ops.sync_runs s
                                       WHERE s.job = j.job AND s.status = 'ok'),
                                      '-infinity')) AS failed
FROM (SELECT DISTINCT job FROM ops.sync_runs) j

-- sync_runs_abandon --
-- Mark the job's runs still 'running' as failed: called while holding the job's advisory lock,
-- so whoever started them has died.
UPDATE ops.sync_runs
SET status = 'failed', finished_at = now(), error = 'abandoned: the runner stopped before finishing'
WHERE job = $1 AND status = 'running'

-- sync_runs_prune --
-- Delete finished runs older than $1 days, keeping each job's latest 100.
DELETE FROM ops.sync_runs r
WHERE r.status <> 'running'
  AND r.started_at < now() - make_interval(days => $1)
  AND r.id NOT IN (
      SELECT id FROM (
          SELECT id, row_number() OVER (PARTITION BY job ORDER BY started_at DESC) AS n
          FROM ops.sync_runs) ranked
      WHERE n <= 100)

-- cursor_get --
-- A named cursor's value.
SELECT value FROM ops.cursors WHERE name = $1

-- cursor_set --
-- Store a named cursor (call inside the transaction that writes the data it describes).
INSERT INTO ops.cursors (name, value, updated_at) VALUES ($1, $2, now())
ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()

-- migrations_applied_count --
-- How many migrations the database has applied.
SELECT count(*) FROM ops.schema_migrations
