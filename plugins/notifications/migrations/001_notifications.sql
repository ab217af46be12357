-- Notifications: the staff in-app inbox, per-user channel preferences and
-- the shared FCM access token.

-- One row per (event, recipient): the fan-out inserts with ON CONFLICT DO
-- NOTHING, so a fan-out that runs twice adds nothing the second time.
CREATE TABLE notifications_inbox (
	id		bigserial PRIMARY KEY,
	user_id		bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	event		text NOT NULL,
	event_id	text NOT NULL,
	title		text NOT NULL,
	body		text NOT NULL,
	data		jsonb NOT NULL DEFAULT '{}',
	read_at		timestamptz,
	created_at	timestamptz NOT NULL DEFAULT now(),
	UNIQUE (event_id, user_id)
);
-- A user's inbox newest first, and its unread part.
CREATE INDEX notifications_inbox_user ON notifications_inbox
    (user_id, id DESC);
CREATE INDEX notifications_inbox_unread ON notifications_inbox
    (user_id, id DESC) WHERE read_at IS NULL;

-- Only what a user changed is stored; everything else is the rule's
-- default (see README.md).
CREATE TABLE notifications_preferences (
	user_id		bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	event		text NOT NULL CHECK (length(event) BETWEEN 1 AND 128),
	channel		text NOT NULL CHECK (channel IN ('push', 'email',
			    'inbox')),
	enabled		boolean NOT NULL,
	updated_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (user_id, event, channel)
);

-- The FCM OAuth access token, shared by every worker and node: one row.
--   access_token      sealed (api->seal), never plaintext
--   account           the service account (client_email) it was minted
--                     for: a new service account ignores an old token
--   expires_at        when to stop using it (Google's expiry - 60 s);
--                     NULL after FCM refused it (401)
--   refreshing_until  the refresh lease: whoever sets it refreshes
--   generation        bumped by each refresh, so that a 401 invalidates
--                     only the token it was answered for
CREATE TABLE notifications_fcm_auth (
	id			integer PRIMARY KEY CHECK (id = 1),
	access_token		text,
	account			text,
	expires_at		timestamptz,
	refreshing_until	timestamptz,
	generation		bigint NOT NULL DEFAULT 0,
	updated_at		timestamptz NOT NULL DEFAULT now()
);
INSERT INTO notifications_fcm_auth (id) VALUES (1);
