-- Staff identity: roles (named sets of permissions) and users.
-- Permissions are names registered at run time by the host and plugins;
-- SUPER_ADMIN holds every permission implicitly, including future ones.

CREATE TABLE roles (
	id		bigserial PRIMARY KEY,
	name		text NOT NULL UNIQUE
			CHECK (name ~ '^[A-Za-z][A-Za-z0-9_]{0,63}$'),
	description	text NOT NULL DEFAULT '',
	permissions	text[] NOT NULL DEFAULT '{}',
	builtin		boolean NOT NULL DEFAULT false,
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now()
);

INSERT INTO roles (name, description, permissions, builtin) VALUES
	('SUPER_ADMIN', 'Every permission, including those plugins add later',
	    '{}', true),
	('ADMIN', 'Runs the system: users, keys, jobs, audit',
	    '{system.read,metrics.read,jobs.read,jobs.manage,users.manage,api_keys.manage}',
	    true),
	('AGENT', 'Handles donor queries and calls', '{}', true);

CREATE TABLE users (
	id		bigserial PRIMARY KEY,
	username	text NOT NULL CHECK (length(username) BETWEEN 1 AND 150),
	password_hash	text NOT NULL,
	name		text NOT NULL DEFAULT '',
	email		text,
	role_id		bigint NOT NULL REFERENCES roles (id),
	is_active	boolean NOT NULL DEFAULT true,
	fcm_token	text,
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX users_username_lower ON users (lower(username));
CREATE INDEX users_role ON users (role_id);
