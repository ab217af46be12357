-- Key rotation runs (src/rekey.c).  One row per run of the host.rekey job:
-- which plugins it re-seals, each plugin's resume state (written in the
-- same transaction as the batch it describes), counts and status.  At most
-- one run is running at a time.
--
-- plugins: {"<plugin id>": {"name": "calls", "state": {...},
--           "resealed": n, "done": false}, ...}, filled by the first step.
-- step:    the number of the next step; a step job whose number differs is
--          stale (a re-run after a lost lease) and does nothing.
-- job_id:  the job that runs the next step.

CREATE TABLE rekey_runs (
	id		bigserial PRIMARY KEY,
	status		text NOT NULL DEFAULT 'running'
			CHECK (status IN ('running', 'done', 'failed')),
	requested_by	text NOT NULL CHECK (length(requested_by) BETWEEN 1 AND 200),
	step		integer NOT NULL DEFAULT 0 CHECK (step >= 0),
	plugins		jsonb NOT NULL DEFAULT '{}',
	resealed	bigint NOT NULL DEFAULT 0,
	batches		integer NOT NULL DEFAULT 0,
	job_id		bigint,
	error		text,
	started_at	timestamptz NOT NULL DEFAULT now(),
	finished_at	timestamptz,
	updated_at	timestamptz NOT NULL DEFAULT now()
);

-- One running rotation, even when two are asked for at once.
CREATE UNIQUE INDEX rekey_runs_one_running ON rekey_runs ((true))
	WHERE status = 'running';
