-- Concierge: what reminders and statistics need, kept on the query row so
-- neither has to scan message threads.
--   assigned_at        when the current assignee took it (accept, transfer)
--   first_response_at  the first STAFF chat message, and who sent it
--   resolved_at        when it was resolved
--   reminded_for       the start of the wait the last automatic reminder
--                      was about: one reminder per waiting period
-- and trigram indexes so `q` (donor, donor_id, test and message content)
-- is an index search, not a scan.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

ALTER TABLE concierge_queries
	ADD COLUMN assigned_at		timestamptz,
	ADD COLUMN first_response_at	timestamptz,
	ADD COLUMN first_response_by	bigint,
	ADD COLUMN resolved_at		timestamptz,
	ADD COLUMN reminded_for		timestamptz,
	ADD COLUMN reminder_count	integer NOT NULL DEFAULT 0,
	ADD COLUMN last_reminder_at	timestamptz;

-- Rows written before this migration: the best the threads can tell.
UPDATE concierge_queries q SET
	assigned_at = CASE WHEN q.assigned_to IS NOT NULL THEN q.updated_at END,
	resolved_at = CASE WHEN q.status = 'RESOLVED' THEN q.updated_at END,
	(first_response_at, first_response_by) = (
	    SELECT m.created_at, m.sender_id::bigint
	    FROM concierge_messages m
	    WHERE m.query_id = q.id AND m.sender_type = 'STAFF'
	    ORDER BY m.id LIMIT 1);

-- Open queries by age: the reminder sweep.
CREATE INDEX concierge_queries_open ON concierge_queries (created_at)
    WHERE status IN ('IN_PROGRESS', 'TRANSFERRED');
-- Statistics by creation time.
CREATE INDEX concierge_queries_created ON concierge_queries (created_at);
CREATE INDEX concierge_queries_search ON concierge_queries
    USING gin ((donor || ' ' || donor_id || ' ' || coalesce(test, ''))
    gin_trgm_ops);
CREATE INDEX concierge_messages_search ON concierge_messages
    USING gin (content gin_trgm_ops);
