-- pgbench script for bench/concierge.sh: GET /api/v1/donor-queries/{id} as
-- the server runs it for a staff token: first the host's per-request check
-- of user, role and session, authenticate_user() in src/auth.c
-- (USER_COLUMNS expanded), then the plugin's query_load() SELECT.
-- bench/concierge.sh puts "\set id/uid/sid" (the query id, the admin's
-- user id and the session id of its token) in front.
-- The SQL is the server's, verbatim but for one thing: the colons of the
-- to_char() format are written \x3a in an E'' string, because pgbench
-- -M prepared takes :MI and :SS for variables even inside a literal; the
-- format string PostgreSQL receives is the same.
SELECT array_to_json(r.permissions), u.id, u.username, u.name, u.email, r.name AS role, u.is_active, u.created_at, u.updated_at, u.last_login_at FROM users u JOIN roles r ON r.id = u.role_id JOIN auth_sessions s ON s.user_id = u.id WHERE u.id = :uid::bigint AND u.is_active AND s.id = :sid::bigint AND s.revoked_at IS NULL AND s.expires_at > now();
SELECT id, donor, donor_id, test, stage, device, status, assigned_to, resolved_by, transferred_to_user_id, transfer_note, to_char(created_at AT TIME ZONE 'UTC', E'YYYY-MM-DD"T"HH24\x3aMI\x3aSS.US"Z"') AS created_at, to_char(updated_at AT TIME ZONE 'UTC', E'YYYY-MM-DD"T"HH24\x3aMI\x3aSS.US"Z"') AS updated_at FROM concierge_queries WHERE id = :id::bigint;
