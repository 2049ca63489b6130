-- status_inbox_backlog --
-- Pending pushed events and the age in seconds of the oldest (NULL when none is pending).
SELECT count(*) AS pending,
       extract(epoch FROM now() - min(received_at))::float8 AS oldest_seconds
FROM ops.inbox WHERE status = 'pending'
