-- replica_beat --
-- Register replica $1 or refresh its beat and task health ($2 kind, $3 command, $4 host, $5 pid, $6 version, $7 tasks, $8 beat interval); a row lost meanwhile (pruned) is made again.
INSERT INTO ops.replicas (id, kind, command, host, pid, version, tasks, interval_seconds)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (id) DO UPDATE SET beat_at = now(), stopped_at = NULL, tasks = EXCLUDED.tasks

-- replica_stop --
-- Mark replica $1 stopped (graceful exit) with its last task health $2, and close the runs it leaves running (cancelled at the drain deadline); returns the closed runs.
WITH stopped AS (
    UPDATE ops.replicas SET stopped_at = now(), beat_at = now(), tasks = $2 WHERE id = $1
)
UPDATE ops.sync_runs
SET status = 'failed', finished_at = now(),
    error = 'abandoned: the replica stopped before the run finished'
WHERE replica = $1 AND status = 'running'
RETURNING id, job

-- sync_runs_abandon_silent --
-- Fail the runs still 'running' whose replica stopped, is unknown, or has not beaten for $1 seconds (and three of its own intervals); returns them.
UPDATE ops.sync_runs r
SET status = 'failed', finished_at = now(),
    error = 'abandoned: its replica (' || r.runner || ') stopped beating'
WHERE r.status = 'running' AND r.replica IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM ops.replicas p
                  WHERE p.id = r.replica AND p.stopped_at IS NULL
                    AND p.beat_at > now() - make_interval(
                            secs => greatest($1::float8, 3 * p.interval_seconds)))
RETURNING r.id, r.job, r.runner

-- replicas_recent --
-- Replicas that beat in the last hour (but one-shot ones that ended normally), and the latest daemon whatever its age, with state from $1 (stale after seconds) by the database's clock.
SELECT id, kind, command, host, pid, version, started_at, beat_at, stopped_at, interval_seconds,
       tasks,
       CASE WHEN stopped_at IS NOT NULL THEN 'stopped'
            WHEN beat_at > now() - make_interval(secs => $1) THEN 'up'
            ELSE 'stale' END AS state,
       extract(epoch FROM now() - beat_at)::float8 AS silent_seconds
FROM ops.replicas
WHERE (beat_at > now() - interval '1 hour' AND NOT (kind = 'once' AND stopped_at IS NOT NULL))
   OR id = (SELECT id FROM ops.replicas WHERE kind = 'daemon' ORDER BY beat_at DESC LIMIT 1)
ORDER BY kind, started_at, id

-- replicas_prune --
-- Forget replicas that have not beaten for $1 days (stopped or dead), keeping the latest daemon.
DELETE FROM ops.replicas
WHERE beat_at < now() - make_interval(days => $1)
  AND id <> coalesce((SELECT id FROM ops.replicas WHERE kind = 'daemon'
                      ORDER BY beat_at DESC LIMIT 1), '00000000-0000-0000-0000-000000000000')
