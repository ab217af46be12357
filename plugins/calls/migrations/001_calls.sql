-- Calls: a donor asks for a call on a query, staff accept it (or start one
-- directly) and the plugin creates a private Daily room with one meeting
-- token per side.
CREATE TABLE calls_requests (
	id		bigserial PRIMARY KEY,
	query_id	bigint NOT NULL REFERENCES concierge_queries (id)
			ON DELETE CASCADE,
	donor_id	text NOT NULL,
	mode		text NOT NULL CHECK (mode IN ('VIDEO', 'AUDIO', 'SCREEN')),
	message		text,
	status		text NOT NULL DEFAULT 'PENDING'
			CHECK (status IN ('PENDING', 'ACCEPTED', 'REJECTED',
			    'CANCELLED')),
	-- The staff user who accepted or rejected it.
	handled_by	bigint,
	-- An accept in flight: the rooms and tokens are being made at Daily.
	-- A claim past claimed_until is stale (its worker died) and free.
	claimed_by	bigint,
	claimed_until	timestamptz,
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now()
);
-- One PENDING request per query: a second one is a unique violation (409).
CREATE UNIQUE INDEX calls_requests_one_pending ON calls_requests (query_id)
    WHERE status = 'PENDING';
CREATE INDEX calls_requests_query ON calls_requests (query_id, id);
-- The cleanup sweep releases stale claims.
CREATE INDEX calls_requests_claimed ON calls_requests (claimed_until)
    WHERE claimed_until IS NOT NULL;

CREATE TABLE calls_sessions (
	id		bigserial PRIMARY KEY,
	query_id	bigint NOT NULL REFERENCES concierge_queries (id)
			ON DELETE CASCADE,
	request_id	bigint REFERENCES calls_requests (id) ON DELETE SET NULL,
	admin_id	bigint NOT NULL,
	donor_id	text NOT NULL,
	room_name	text NOT NULL UNIQUE,
	room_url	text NOT NULL,
	mode		text NOT NULL CHECK (mode IN ('VIDEO', 'AUDIO', 'SCREEN')),
	status		text NOT NULL DEFAULT 'CREATED'
			CHECK (status IN ('CREATED', 'STARTED', 'ENDED')),
	started_at	timestamptz,
	ended_at	timestamptz,
	expires_at	timestamptz NOT NULL,
	-- Meeting tokens, sealed by the host (api->seal): never plaintext.
	admin_token	text NOT NULL,
	donor_token	text NOT NULL,
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX calls_sessions_query ON calls_sessions (query_id, id);
-- At most one live (not ENDED) session per query, even under races.
CREATE UNIQUE INDEX calls_sessions_one_live ON calls_sessions (query_id)
    WHERE status <> 'ENDED';
-- The cleanup sweep: live sessions by expiry.
CREATE INDEX calls_sessions_expiry ON calls_sessions (status, expires_at)
    WHERE status <> 'ENDED';

-- Webhook ids already processed: a replayed event is refused.
CREATE TABLE calls_webhook_events (
	event_id	text PRIMARY KEY,
	type		text NOT NULL,
	received_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX calls_webhook_events_received ON calls_webhook_events
    (received_at);

UPDATE roles SET permissions = array_append(permissions, 'calls.handle')
    WHERE name IN ('ADMIN', 'AGENT')
    AND NOT ('calls.handle' = ANY (permissions));
