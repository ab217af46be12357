#!/usr/bin/env bash
# `make rotate-keys`: start a key rotation (the host.rekey durable job,
# src/rekey.c) without the HTTP API, then print its progress until it ends.
#
# It writes what POST /api/v1/privacy/rekey writes, with psql, in one
# transaction: a rekey_runs row and the run's first step job.  A running
# Switchboard (any node on this database) claims the job and re-seals every
# plugin's sealed values under its current SB_DATA_KEY; the old key must be
# in its SB_DATA_KEYS_RETIRED until the run is done.  Ctrl-C stops the
# watching, not the rotation.
#
# Database: DATABASE_URL, or the private cluster of `make run` (scripts/pg.sh).
# Exit status: 0 done, 1 failed or refused (one rotation at a time).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
if [[ -z ${DATABASE_URL:-} ]]; then
	DATABASE_URL=$("$ROOT/scripts/pg.sh" url)
fi
who="make rotate-keys ($(id -un 2>/dev/null || echo unknown))"

q() { psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -At "$@"; }

# A run whose step job is gone or dead cannot go on: mark it failed, as the
# route does, then start.  The unique index on running runs refuses a
# second one (23505), which psql reports; say it plainly.
if ! run=$(q -v who="$who" 2>&1 <<'SQL'
BEGIN;
UPDATE rekey_runs SET status = 'failed',
    error = 'its job is no longer queued or running',
    finished_at = now(), updated_at = now()
  WHERE status = 'running' AND NOT EXISTS (SELECT 1 FROM jobs j
    WHERE j.id = rekey_runs.job_id AND j.status IN ('queued', 'running'));
SELECT nextval(pg_get_serial_sequence('rekey_runs', 'id')) AS run \gset
INSERT INTO jobs (kind, payload, max_attempts, idempotency_key)
  VALUES ('host.rekey', jsonb_build_object('run', :run::bigint, 'step', 0),
    20, 'rekey:' || :run || ':0')
  RETURNING id AS job \gset
INSERT INTO rekey_runs (id, requested_by, job_id)
  VALUES (:run, left(:'who', 200), :job);
COMMIT;
\echo :run
SQL
); then
	if [[ $run == *rekey_runs_one_running* ]]; then
		echo "rotate-keys: a key rotation is already running" >&2
	else
		echo "rotate-keys: $run" >&2
	fi
	exit 1
fi
run=$(printf '%s\n' "$run" | grep -E '^[0-9]+$' | head -n1)
echo "rotate-keys: run $run started; a running Switchboard does the work"

# Progress, once a second, until the run ends.
last=""
while :; do
	line=$(q -v id="$run" <<'SQL'
SELECT status || ' ' || resealed || ' ' || batches || ' ' ||
    coalesce((SELECT string_agg(v->>'name' || '=' || (v->>'resealed') ||
        CASE WHEN (v->>'done')::boolean THEN ' done' ELSE '' END, ', ')
      FROM jsonb_each(plugins) AS e(k, v)), '') || ' ' ||
    coalesce(error, '')
FROM rekey_runs WHERE id = :'id'::bigint;
SQL
)
	read -r status resealed batches rest <<<"$line"
	if [[ $line != "$last" ]]; then
		echo "rotate-keys: run $run $status: $resealed re-sealed in $batches batches; ${rest:-waiting for a worker}"
		last=$line
	fi
	case $status in
	done) exit 0 ;;
	failed) exit 1 ;;
	esac
	sleep 1
done
