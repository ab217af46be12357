-- Sessions (one per login; its refresh tokens form one rotation family),
-- refresh tokens (stored hashed, single use), API keys (stored hashed).

ALTER TABLE users
	ADD COLUMN password_changed_at timestamptz NOT NULL DEFAULT now(),
	ADD COLUMN last_login_at timestamptz;

CREATE TABLE auth_sessions (
	id		bigserial PRIMARY KEY,
	user_id		bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created_at	timestamptz NOT NULL DEFAULT now(),
	last_used_at	timestamptz NOT NULL DEFAULT now(),
	expires_at	timestamptz NOT NULL,
	revoked_at	timestamptz,
	revoked_reason	text,
	ip		text,
	user_agent	text
);
CREATE INDEX auth_sessions_user ON auth_sessions (user_id)
	WHERE revoked_at IS NULL;

CREATE TABLE auth_refresh_tokens (
	id		bigserial PRIMARY KEY,
	session_id	bigint NOT NULL REFERENCES auth_sessions (id)
			ON DELETE CASCADE,
	token_hash	text NOT NULL UNIQUE,	-- hex SHA-256 of the token
	created_at	timestamptz NOT NULL DEFAULT now(),
	used_at		timestamptz
);
CREATE INDEX auth_refresh_tokens_session ON auth_refresh_tokens (session_id);

CREATE TABLE api_keys (
	id		bigserial PRIMARY KEY,
	name		text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
	prefix		text NOT NULL UNIQUE,	-- shown, identifies the key
	key_hash	text NOT NULL,		-- hex SHA-256 of the whole key
	scopes		text[] NOT NULL DEFAULT '{}',
	expires_at	timestamptz,
	last_used_at	timestamptz,
	created_by	bigint REFERENCES users (id) ON DELETE SET NULL,
	created_at	timestamptz NOT NULL DEFAULT now(),
	revoked_at	timestamptz
);
