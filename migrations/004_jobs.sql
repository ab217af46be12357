-- Durable jobs (src/jobs.c).  A job is written in the transaction of the
-- change that caused it (outbox), claimed with FOR UPDATE SKIP LOCKED by
-- exactly one worker of one node, and leased: a job whose lease ran out
-- (its worker died, or run() never finished) goes back to the queue.
--
-- attempts counts the runs of the current cycle (the API's retry of a dead
-- job starts a new cycle at 0); runs counts every claim ever and never
-- goes back, so (id, runs) names one claim: a finish is accepted only for
-- the claim that is still current.

CREATE TABLE jobs (
	id		bigserial PRIMARY KEY,
	kind		text NOT NULL CHECK (length(kind) BETWEEN 3 AND 128),
	payload		jsonb NOT NULL DEFAULT '{}',
	status		text NOT NULL DEFAULT 'queued'
			CHECK (status IN ('queued', 'running', 'done', 'dead')),
	priority	integer NOT NULL DEFAULT 0,
	run_at		timestamptz NOT NULL DEFAULT now(),
	attempts	integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
	max_attempts	integer NOT NULL DEFAULT 8 CHECK (max_attempts >= 1),
	runs		integer NOT NULL DEFAULT 0,
	-- NULL: none given; run() is handed 'job-<id>' instead.
	idempotency_key	text CHECK (length(idempotency_key) BETWEEN 1 AND 255),
	lease_until	timestamptz,
	locked_by	text,			-- '<host>:<pid>' of the claimer
	last_error	text,
	result		jsonb,
	created_at	timestamptz NOT NULL DEFAULT now(),
	started_at	timestamptz,		-- of the latest claim
	finished_at	timestamptz,		-- done or dead
	updated_at	timestamptz NOT NULL DEFAULT now(),
	UNIQUE (kind, idempotency_key)
);

-- The claim: due queued jobs, highest priority first, then oldest.
CREATE INDEX jobs_queued ON jobs (priority DESC, run_at)
	WHERE status = 'queued';
-- Expired leases.
CREATE INDEX jobs_running ON jobs (lease_until)
	WHERE status = 'running';
-- The dead-letter list (small, and what operators look at).
CREATE INDEX jobs_dead ON jobs (id) WHERE status = 'dead';

-- Periodic kinds: one row per kind.  A worker that moves next_run_at past
-- now() has won the slot and enqueues its job (key '<kind>@<slot>') in the
-- same statement: once per cluster per slot.
CREATE TABLE job_schedules (
	name		text PRIMARY KEY,
	interval_s	integer NOT NULL CHECK (interval_s > 0),
	next_run_at	timestamptz NOT NULL DEFAULT now(),
	last_run_at	timestamptz
);
