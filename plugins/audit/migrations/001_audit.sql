-- The audit plugin's log: append-only, hash-chained.
--
-- Every row is linked to the one before it: hash = sha256 of a canonical
-- text of (prev_hash, the row's content), prev_hash = the previous row's
-- hash (64 zeros for the first row).  The chain position is decided in
-- the database, in a BEFORE INSERT trigger under a transaction-level
-- advisory lock, so any number of workers and nodes may insert at once:
-- the lock serialises them, the id is drawn after the lock (id order is
-- chain order) and each row is committed before the next one can read
-- the tail.  UPDATE, DELETE and TRUNCATE are refused by triggers; an
-- owner who disables them can still change rows, and GET
-- /api/v1/audit/verify finds where.

CREATE SEQUENCE audit_log_id_seq;

CREATE TABLE audit_log (
	id		bigint PRIMARY KEY,
	event_id	text NOT NULL UNIQUE,
	source		text NOT NULL,
	time		timestamptz NOT NULL,
	actor_type	text NOT NULL CHECK (actor_type IN
			    ('user', 'api_key', 'donor', 'system',
			    'anonymous')),
	actor_id	bigint,
	actor_name	text,
	donor_id	text,
	action		text COLLATE "C" NOT NULL,
	target		text,
	request_id	text,
	ip		text,
	details		jsonb NOT NULL DEFAULT '{}',
	prev_hash	text NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
	hash		text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$')
);

ALTER SEQUENCE audit_log_id_seq OWNED BY audit_log.id;

CREATE INDEX audit_log_actor ON audit_log (actor_id, id)
	WHERE actor_id IS NOT NULL;
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX audit_log_target ON audit_log (target, id)
	WHERE target IS NOT NULL;
CREATE INDEX audit_log_time ON audit_log (time);

-- The hash of a row given the hash it links to.  The message is the text
-- of a jsonb array, which is canonical (jsonb fixes key order, spacing
-- and number forms, and JSON string escaping keeps the fields apart):
--   [prev_hash, id, time, event_id, source, actor_type, actor_id,
--    actor_name, donor_id, action, target, request_id, ip, details]
-- time is written in UTC with microseconds whatever the session's
-- TimeZone; NULL fields are JSON nulls.  The result is lowercase hex.
CREATE FUNCTION audit_log_hash(prev text, r audit_log) RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT encode(sha256(convert_to(jsonb_build_array(
	    prev, r.id,
	    to_char(r.time AT TIME ZONE 'UTC',
	        'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
	    r.event_id, r.source, r.actor_type, r.actor_id, r.actor_name,
	    r.donor_id, r.action, r.target, r.request_id, r.ip,
	    r.details)::text, 'UTF8')), 'hex')
$$;

-- BEFORE INSERT: place the row at the end of the chain.  Whatever id,
-- prev_hash or hash the INSERT supplied is overwritten.  The tail must be
-- read with a snapshot taken after the lock, which READ COMMITTED gives
-- each statement of this function; a snapshot from before the lock
-- (REPEATABLE READ, SERIALIZABLE) could miss the row committed while we
-- waited and fork the chain, so those are refused.
CREATE FUNCTION audit_log_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	last_hash	text;
BEGIN
	IF current_setting('transaction_isolation') <> 'read committed' THEN
		RAISE EXCEPTION 'audit_log: insert under % isolation refused',
		    current_setting('transaction_isolation')
		    USING HINT = 'audit records are chained: insert them in '
		    'a READ COMMITTED transaction';
	END IF;
	-- Two-key form: a keyspace apart from the host's bigint locks.
	-- 1635083369 is "audi" in ASCII.
	PERFORM pg_advisory_xact_lock(1635083369, 1);
	NEW.id := nextval('audit_log_id_seq');
	SELECT a.hash INTO last_hash FROM audit_log a
	    ORDER BY a.id DESC LIMIT 1;
	NEW.prev_hash := coalesce(last_hash, repeat('0', 64));
	NEW.hash := audit_log_hash(NEW.prev_hash, NEW);
	RETURN NEW;
END
$$;

CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log
	FOR EACH ROW EXECUTE FUNCTION audit_log_chain();

-- Statement triggers, so even an UPDATE or DELETE matching no row is
-- refused, and TRUNCATE (which fires no row trigger) too.
CREATE FUNCTION audit_log_refuse() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
	    USING ERRCODE = 'restrict_violation',
	    HINT = 'audit records can only be added';
END
$$;

CREATE TRIGGER audit_log_append_only
	BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
	FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse();

-- The built-in ADMIN role reads the audit log (SUPER_ADMIN has every
-- permission already).
UPDATE roles SET permissions = array_append(permissions, 'audit.read')
	WHERE name = 'ADMIN' AND NOT ('audit.read' = ANY(permissions));
