-- advisory_lock --
-- Wait for syncd's advisory lock ($1 namespace, $2 key) on this session.
SELECT pg_advisory_lock($1::int, $2::int)

-- advisory_try_lock --
-- Take syncd's advisory lock ($1 namespace, $2 key) if it is free; true when taken.
SELECT pg_try_advisory_lock($1::int, $2::int)

-- advisory_unlock --
-- Release syncd's advisory lock ($1 namespace, $2 key).
SELECT pg_advisory_unlock($1::int, $2::int)

-- advisory_key --
-- The advisory-lock key of a name (a job's, say): PostgreSQL's hashtext, as every replica computes it.
SELECT hashtext($1)

-- job_lock_try --
-- Take the named job lock ($1 namespace, $2 name, keyed by hashtext) on the lock connection; true when taken.
SELECT pg_try_advisory_lock($1::int, hashtext($2))

-- job_lock_release --
-- Release the named job lock ($1 namespace, $2 name) on the lock connection; false if it was not held.
SELECT pg_advisory_unlock($1::int, hashtext($2))

-- job_lock_probe --
-- The lock connection still answers (its locks are held only while it does).
SELECT 1
