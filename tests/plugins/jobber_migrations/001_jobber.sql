-- What the jobber test plugin records: every run of a job that asks for
-- it, the rows its outbox route writes, and one row per periodic tick.
CREATE TABLE jobber_runs (
	id		bigserial PRIMARY KEY,
	job_id		bigint NOT NULL,
	kind		text NOT NULL,
	attempt		integer NOT NULL,
	tag		text,
	priority	integer,
	pid		integer NOT NULL,
	at		timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX jobber_runs_tag ON jobber_runs (tag);

CREATE TABLE jobber_outbox (
	id		bigserial PRIMARY KEY,
	note		text,
	job_id		bigint
);

CREATE TABLE jobber_ticks (
	id		bigserial PRIMARY KEY,
	slot		bigint NOT NULL,
	job_id		bigint NOT NULL,
	pid		integer NOT NULL,
	at		timestamptz NOT NULL DEFAULT clock_timestamp()
);
