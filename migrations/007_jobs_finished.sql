-- The host's retention of finished jobs (src/retention.c, [host]
-- jobs_retention_days) deletes done jobs by the time they finished.
CREATE INDEX jobs_done_finished ON jobs (finished_at) WHERE status = 'done';
