-- pgbench script for bench/concierge.sh: what POST
-- /api/v1/donor-queries/{id}/messages runs in the concierge plugin,
-- m_create() in plugins/concierge/concierge.c.  query_for() loads the query
-- (query_load(), not FOR UPDATE), then message_insert() adds the CHAT
-- message and, in the same statement, records the query's first staff
-- response (a no-op once it is set).  No transaction: each statement
-- commits on its own, as in the plugin.  :content, :mtype (CHAT) and
-- :stype (STAFF) come from pgbench -D, :id (the query) and :uid (the staff
-- user id, sent as text as the plugin sends sender_id) from the "\set"
-- lines bench/concierge.sh puts in front.
-- The SQL is the server's, verbatim but for one thing: the colons of the
-- to_char() format are written \x3a in an E'' string, because pgbench
-- -M prepared takes :MI and :SS for variables even inside a literal; the
-- format string PostgreSQL receives is the same.
SELECT id, donor, donor_id, test, stage, device, status, assigned_to, resolved_by, transferred_to_user_id, transfer_note, to_char(created_at AT TIME ZONE 'UTC', E'YYYY-MM-DD"T"HH24\x3aMI\x3aSS.US"Z"') AS created_at, to_char(updated_at AT TIME ZONE 'UTC', E'YYYY-MM-DD"T"HH24\x3aMI\x3aSS.US"Z"') AS updated_at FROM concierge_queries WHERE id = :id::bigint;
WITH m AS (INSERT INTO concierge_messages (query_id, content, message_type, sender_type, sender_id) VALUES (:id::bigint, :content, :mtype, :stype, :uid) RETURNING *), f AS (UPDATE concierge_queries q SET first_response_at = m.created_at, first_response_by = m.sender_id::bigint FROM m WHERE q.id = m.query_id AND m.sender_type = 'STAFF' AND m.message_type = 'CHAT' AND q.first_response_at IS NULL) SELECT id, query_id, content, message_type, sender_type, sender_id, to_char(created_at AT TIME ZONE 'UTC', E'YYYY-MM-DD"T"HH24\x3aMI\x3aSS.US"Z"') AS created_at FROM m;
