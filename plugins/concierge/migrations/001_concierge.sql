-- Concierge: donor queries and their messages.
CREATE TABLE concierge_queries (
	id			bigserial PRIMARY KEY,
	donor			text NOT NULL,
	donor_id		text NOT NULL,
	test			text,
	stage			text,
	device			text,
	status			text NOT NULL DEFAULT 'IN_PROGRESS'
				CHECK (status IN ('IN_PROGRESS', 'RESOLVED',
				    'TRANSFERRED', 'CLOSED')),
	assigned_to		bigint,
	resolved_by		bigint,
	transferred_to_user_id	bigint,
	transfer_note		text,
	created_at		timestamptz NOT NULL DEFAULT now(),
	updated_at		timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX concierge_queries_donor ON concierge_queries (donor_id, id);
CREATE INDEX concierge_queries_status ON concierge_queries (status, id);
CREATE INDEX concierge_queries_assigned ON concierge_queries (assigned_to, id);

CREATE TABLE concierge_messages (
	id		bigserial PRIMARY KEY,
	query_id	bigint NOT NULL REFERENCES concierge_queries (id)
			ON DELETE CASCADE,
	content		text NOT NULL,
	message_type	text NOT NULL CHECK (message_type IN ('QUERY', 'CHAT',
			    'SYSTEM', 'CALL_STARTED', 'CALL_ENDED')),
	sender_type	text NOT NULL CHECK (sender_type IN ('STAFF', 'DONOR',
			    'SYSTEM')),
	sender_id	text,
	created_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX concierge_messages_query ON concierge_messages (query_id, id);

UPDATE roles SET permissions = array_append(permissions, 'queries.handle')
    WHERE name IN ('ADMIN', 'AGENT')
    AND NOT ('queries.handle' = ANY (permissions));
UPDATE roles SET permissions = array_append(permissions, 'queries.manage')
    WHERE name = 'ADMIN' AND NOT ('queries.manage' = ANY (permissions));
