-- Replicas: every syncd process that runs jobs (each `syncd run`, and one-shot `sync --once` /
-- `reconcile`) registers here and beats while it lives, so `syncd status` can tell a live daemon
-- from a dead one, and any live replica can close the runs of one that died (kill -9 included).

CREATE TABLE ops.replicas (
    id         uuid PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('daemon', 'once')),
    command    text NOT NULL,  -- the subcommand: run, sync, reconcile
    host       text NOT NULL,
    pid        integer NOT NULL,
    version    text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    beat_at    timestamptz NOT NULL DEFAULT now(),
    stopped_at timestamptz,
    -- its heartbeat.interval_seconds: a replica is never given up before it missed three beats,
    -- whatever the config of the replica judging it
    interval_seconds double precision NOT NULL,
    -- task name -> {"up", "restarts", "last_error", "last_error_at"}, as of the last beat
    tasks      jsonb NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE ops.replicas IS
    'syncd processes: registered at start, beat_at refreshed every heartbeat.interval_seconds, '
    'stopped_at set on a graceful stop (a killed one just stops beating).';
CREATE INDEX replicas_beat ON ops.replicas (beat_at DESC);

-- Which replica started a run. NULL for runs recorded before this migration (or by a runner that
-- did not register): those are closed by the job's next run, under the job's lock, as before.
ALTER TABLE ops.sync_runs ADD COLUMN replica uuid;
-- The heartbeat looks for running runs of silent replicas every few seconds: keep that cheap.
CREATE INDEX sync_runs_running ON ops.sync_runs (replica) WHERE status = 'running';

-- Whether a replica counts as up depends on status.stale_after_seconds (configuration), so the
-- view gives the facts: when it started, last beat, and stopped.
CREATE VIEW report.replicas AS
SELECT id, kind, command, host, pid, version, started_at, beat_at, stopped_at
FROM ops.replicas;
