-- Staff avatars (src/avatar.c): one per user, always the host's own
-- re-encoding (a 256x256 JPEG without metadata), never the uploaded bytes.
-- sha256 is the hex digest of data and doubles as the strong ETag.

CREATE TABLE user_avatars (
	user_id		bigint PRIMARY KEY
			REFERENCES users (id) ON DELETE CASCADE,
	content_type	text NOT NULL,
	data		bytea NOT NULL,
	sha256		text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
	updated_at	timestamptz NOT NULL DEFAULT now()
);
