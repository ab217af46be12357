-- pgbench script for bench/concierge.sh: what GET /api/v1/donor-queries/{id}
-- runs in the concierge plugin, query_load() in plugins/concierge/concierge.c
-- (Q_COLS and TS expanded).  bench/concierge.sh puts "\set id <query id>"
-- in front.
-- The SQL is the server's, verbatim but for one thing: the colons of the
-- to_char() format are written \x3a in an E'' string, because pgbench
-- -M prepared takes :MI and :SS for variables even inside a literal; the
-- format string PostgreSQL receives is the same.
SELECT id, donor, donor_id, test, stage, device, status, assigned_to, resolved_by, transferred_to_user_id, transfer_note, to_char(created_at AT TIME ZONE 'UTC', E'YYYY-MM-DD"T"HH24\x3aMI\x3aSS.US"Z"') AS created_at, to_char(updated_at AT TIME ZONE 'UTC', E'YYYY-MM-DD"T"HH24\x3aMI\x3aSS.US"Z"') AS updated_at FROM concierge_queries WHERE id = :id::bigint;
