/*
 * Key rotation: the host.rekey job re-seals every sealed value of every
 * plugin under the current data key, through each plugin's rekey hook
 * (plugin.h, desc.rekey), and the /api/v1/privacy/rekey routes that start
 * it and report its progress.
 *
 * A run is a row of rekey_runs (migrations/006_rekey.sql) and a chain of
 * short host.rekey jobs, one batch each.  A step, in one transaction:
 * lock the run's row, check that the job is the run's current step (a
 * step re-run after a lost lease, whose work another run of it already
 * committed, finds a later step number and does nothing), call the first
 * unfinished plugin's rekey(p, state, batch, &resealed), store the state
 * it left, enqueue the next step and finish this one.  A worker killed
 * mid-batch therefore loses exactly the uncommitted batch: the step's
 * lease runs out, the step runs again from the stored state.  Steps are
 * short, so the lease ([host] rekey_lease_s) stays short and a rotation
 * of any size never holds a worker's event loop for more than a batch.
 *
 * The plugins of a run are fixed by its first step: every loaded plugin
 * with a rekey hook.  A step that lands on a worker where one of them is
 * not ready retries later.  A plugin's error (-1) rolls the batch back and
 * retries it with backoff; after the kind's last attempt the run fails
 * and says why.  Start and end are host events (privacy.rekey.started,
 * privacy.rekey.finished), which the audit plugin records.
 *
 * `make rotate-keys` (scripts/rotate-keys.sh) starts a run without the
 * HTTP API by inserting the same row and first job with psql.
 */

#include <kore/kore.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb.h"
#include "conf.h"

#define REKEY_KIND		"host.rekey"
#define REKEY_MAX_ATTEMPTS	20

static void	rekey_run(struct sb_job *);
static void	rekey_start(struct sb_req *);
static void	rekey_status(struct sb_req *);
static json_t	*run_json(int64_t);
static void	step_error(struct sb_job *, int64_t, const char *);
static void	finished_event(int64_t, const char *, const char *);

static struct sb_job_kind	kind = {
	.name = REKEY_KIND,
	.run = rekey_run,
	.max_attempts = REKEY_MAX_ATTEMPTS,
	.backoff_s = 2,
};

static unsigned int	batch_size = 200;

static const char	run_schema[] =
	"{\"type\":\"object\",\"required\":[\"id\",\"status\",\"plugins\"],"
	"\"properties\":{\"id\":{\"type\":\"integer\"},"
	"\"status\":{\"enum\":[\"running\",\"done\",\"failed\"]},"
	"\"requested_by\":{\"type\":\"string\"},"
	"\"resealed\":{\"type\":\"integer\"},"
	"\"batches\":{\"type\":\"integer\"},"
	"\"error\":{\"type\":[\"string\",\"null\"]},"
	"\"plugins\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
	"\"properties\":{\"plugin\":{\"type\":\"string\"},"
	"\"id\":{\"type\":\"string\"},\"resealed\":{\"type\":\"integer\"},"
	"\"done\":{\"type\":\"boolean\"}}}},"
	"\"started_at\":{\"type\":\"string\",\"format\":\"date-time\"},"
	"\"finished_at\":{\"type\":[\"string\",\"null\"],"
	"\"format\":\"date-time\"}}}";

const struct sb_route sb_rekey_routes[] = {
	{ .method = "POST", .path = "/api/v1/privacy/rekey",
	  .permission = "privacy.manage", .handler = rekey_start,
	  .summary = "Re-seal every sealed value under the current data key "
	  "(a durable job); 409 while a rotation runs",
	  .response_schema = run_schema },
	{ .method = "GET", .path = "/api/v1/privacy/rekey",
	  .permission = "privacy.manage", .handler = rekey_status,
	  .summary = "The latest key rotation and its progress per plugin",
	  .response_schema = run_schema },
	SB_ROUTE_END
};

/* Parent, after the host plugin exists: settings and the job kind. */
int
sb_rekey_parent_init(void)
{
	long long	v;
	int		ok;
	char		err[256];

	v = sb_conf_int(sb_config, "host", "rekey_batch", 200, &ok);
	if (!ok || v < 1 || v > 10000) {
		sb_log(SB_LOG_ERROR, "rekey", "[host] rekey_batch must be a "
		    "number between 1 and 10000");
		return (-1);
	}
	batch_size = (unsigned int)v;
	v = sb_conf_int(sb_config, "host", "rekey_lease_s", 60, &ok);
	if (!ok || v < 1 || v > 3600) {
		sb_log(SB_LOG_ERROR, "rekey", "[host] rekey_lease_s must be a "
		    "number between 1 and 3600");
		return (-1);
	}
	kind.timeout_s = (unsigned int)v;
	if (sb_jobs_kind_add(sb_host_plugin, &kind, err, sizeof(err)) == -1) {
		sb_log(SB_LOG_ERROR, "rekey", "%s", err);
		return (-1);
	}
	sb_jobs_commit(sb_host_plugin);
	return (0);
}

/* ------------------------------------------------------------------------
 * The job: one batch of one plugin per step.
 */

static struct sb_plugin *
plugin_by_id(const char *id)
{
	struct sb_plugin	*p;

	TAILQ_FOREACH(p, &sb_plugins, list) {
		if (p != sb_host_plugin && p->d.id != NULL &&
		    strcmp(p->d.id, id) == 0)
			return (p);
	}
	return (NULL);
}

/* The first step: every loaded plugin that has a rekey hook. */
static json_t *
plugins_initial(void)
{
	struct sb_plugin	*p;
	json_t			*o;

	o = json_object();
	TAILQ_FOREACH(p, &sb_plugins, list) {
		if (p == sb_host_plugin || p->handle == NULL ||
		    p->d.rekey == NULL)
			continue;
		json_object_set_new(o, p->d.id, json_pack("{s:s, s:{}, s:i, "
		    "s:b}", "name", p->name, "state", "resealed", 0, "done",
		    0));
	}
	return (o);
}

static void
rekey_run(struct sb_job *job)
{
	struct sb_db_res	*r = NULL;
	struct sb_plugin	*p = NULL, *q;
	json_t			*payload, *plugins = NULL, *entry = NULL;
	json_t			*state = NULL, *next;
	const char		*params[5], *pid = NULL;
	char			 run_s[32], step_s[32], n_s[32], key[96];
	char			 job_s[32], *text = NULL, err[300];
	struct sb_job_opts	 opts;
	int64_t			 run, step, next_id;
	unsigned int		 resealed;
	int			 rc, first;

	payload = sb_job_payload(job);
	run = json_integer_value(json_object_get(payload, "run"));
	step = json_integer_value(json_object_get(payload, "step"));
	if (run <= 0 || step < 0) {
		sb_job_fail(job, "payload needs {run, step}");
		return;
	}
	snprintf(run_s, sizeof(run_s), "%lld", (long long)run);
	snprintf(step_s, sizeof(step_s), "%lld", (long long)step);

	if (sb_db_begin() == -1) {
		sb_job_retry(job, "database unavailable", 0);
		return;
	}
	params[0] = run_s;
	r = sb_db_query("SELECT status, step, plugins FROM rekey_runs "
	    "WHERE id = $1::bigint FOR UPDATE", 1, params);
	if (!r->ok) {
		sb_db_free(r);
		sb_db_rollback();
		sb_job_retry(job, "database error reading the run", 0);
		return;
	}
	if (sb_db_rows(r) != 1 || strcmp(sb_db_value(r, 0, 0), "running") ||
	    strcmp(sb_db_value(r, 0, 1), step_s) != 0) {
		/* Finished, or this step already committed (a re-run
		 * after a lost lease): nothing to do. */
		sb_db_free(r);
		sb_db_rollback();
		sb_job_done(job, json_pack("{s:s}", "skipped", "stale step"));
		return;
	}
	plugins = json_loads(sb_db_value(r, 0, 2), 0, NULL);
	sb_db_free(r);
	r = NULL;
	if (!json_is_object(plugins)) {
		json_decref(plugins);
		sb_db_rollback();
		step_error(job, run, "the run's plugin state is not an object");
		return;
	}
	first = (step == 0 && json_object_size(plugins) == 0);
	if (first) {
		json_decref(plugins);
		plugins = plugins_initial();
	}

	/* The first unfinished plugin, in load order. */
	TAILQ_FOREACH(q, &sb_plugins, list) {
		if (q->d.id == NULL ||
		    (entry = json_object_get(plugins, q->d.id)) == NULL ||
		    json_is_true(json_object_get(entry, "done")))
			continue;
		p = q;
		pid = q->d.id;
		break;
	}
	if (p == NULL) {
		/* Entries of plugins no longer loaded stay as they are. */
		json_object_foreach(plugins, pid, entry) {
			if (!json_is_true(json_object_get(entry, "done")) &&
			    plugin_by_id(pid) == NULL)
				break;
		}
	}

	resealed = 0;
	rc = 0;
	if (p != NULL) {
		if (p->state != SB_PLUGIN_READY || p->d.rekey == NULL) {
			sb_db_rollback();
			snprintf(err, sizeof(err), "plugin %s is not ready in "
			    "this worker", p->name);
			json_decref(plugins);
			step_error(job, run, err);
			return;
		}
		state = json_deep_copy(json_object_get(entry, "state"));
		if (!json_is_object(state)) {
			json_decref(state);
			state = json_object();
		}
		rc = p->d.rekey(p, state, batch_size, &resealed);
		if (rc == -1 || sb_db_conn() == NULL ||
		    PQtransactionStatus(sb_db_conn()) != PQTRANS_INTRANS) {
			sb_db_rollback();
			snprintf(err, sizeof(err), "plugin %s: rekey failed%s",
			    p->name, rc == -1 ? "" : " (its transaction was "
			    "closed or failed)");
			json_decref(state);
			json_decref(plugins);
			step_error(job, run, err);
			return;
		}
		json_object_set_new(entry, "state", state);
		json_object_set_new(entry, "resealed", json_integer(
		    json_integer_value(json_object_get(entry, "resealed")) +
		    resealed));
		json_object_set_new(entry, "done", json_boolean(rc == 0));
	} else if (pid != NULL) {
		sb_db_rollback();
		snprintf(err, sizeof(err), "plugin %s is no longer loaded",
		    pid);
		json_decref(plugins);
		step_error(job, run, err);
		return;
	}

	if ((text = json_dumps(plugins, JSON_COMPACT)) == NULL)
		goto fail;
	snprintf(n_s, sizeof(n_s), "%u", resealed);
	params[0] = run_s;
	params[1] = text;
	params[2] = n_s;
	params[3] = p != NULL ? "1" : "0";
	if (p == NULL) {
		r = sb_db_query("UPDATE rekey_runs SET plugins = $2::jsonb, "
		    "step = step + 1, status = 'done', finished_at = now(), "
		    "updated_at = now(), job_id = NULL WHERE id = $1::bigint",
		    2, params);
	} else {
		memset(&opts, 0, sizeof(opts));
		snprintf(key, sizeof(key), "rekey:%lld:%lld", (long long)run,
		    (long long)step + 1);
		opts.idempotency_key = key;
		next = json_pack("{s:I, s:I}", "run", (json_int_t)run, "step",
		    (json_int_t)step + 1);
		next_id = sb_jobs_enqueue(sb_host_plugin, REKEY_KIND, next,
		    &opts);
		json_decref(next);
		if (next_id <= 0)
			goto fail;
		snprintf(job_s, sizeof(job_s), "%lld", (long long)next_id);
		params[3] = job_s;
		r = sb_db_query("UPDATE rekey_runs SET plugins = $2::jsonb, "
		    "step = step + 1, resealed = resealed + $3::bigint, "
		    "batches = batches + 1, job_id = $4::bigint, "
		    "updated_at = now() WHERE id = $1::bigint", 4, params);
	}
	if (!r->ok)
		goto fail;
	sb_db_free(r);
	r = NULL;
	free(text);
	text = NULL;
	/* Written inside the transaction: it commits with the batch. */
	sb_job_done(job, json_pack("{s:I, s:s?, s:i}", "run", (json_int_t)run,
	    "plugin", p != NULL ? p->name : NULL, "resealed", (int)resealed));
	job = NULL;
	if (sb_db_commit() == -1) {
		/* Nothing of the step stands; its lease runs out and the
		 * step runs again. */
		sb_log(SB_LOG_WARN, "rekey", "run %lld step %lld: commit "
		    "failed", (long long)run, (long long)step);
		json_decref(plugins);
		return;
	}
	if (first)
		sb_host_event("privacy.rekey.started", json_pack("{s:s, s:I, "
		    "s:i}", "target", "rekey_run", "run_id", (json_int_t)run,
		    "plugins", (int)json_object_size(plugins)));
	if (p == NULL)
		finished_event(run, "done", NULL);
	json_decref(plugins);
	return;
fail:
	sb_db_free(r);
	free(text);
	sb_db_rollback();
	json_decref(plugins);
	if (job != NULL)
		step_error(job, run, "database error storing the batch");
}

/*
 * A step that could not be done: retried with backoff, and on its last
 * attempt the run fails (in its own transaction) and the job is dead.
 */
static void
step_error(struct sb_job *job, int64_t run, const char *error)
{
	struct sb_db_res	*r;
	const char		*params[2];
	char			 run_s[32];

	sb_log(SB_LOG_WARN, "rekey", "run %lld: %s (attempt %d)",
	    (long long)run, error, sb_job_attempt(job));
	if (sb_job_attempt(job) < REKEY_MAX_ATTEMPTS) {
		sb_job_retry(job, error, 0);
		return;
	}
	snprintf(run_s, sizeof(run_s), "%lld", (long long)run);
	params[0] = run_s;
	params[1] = error;
	r = sb_db_query("UPDATE rekey_runs SET status = 'failed', error = $2, "
	    "finished_at = now(), updated_at = now() WHERE id = $1::bigint "
	    "AND status = 'running'", 2, params);
	sb_db_free(r);
	sb_job_fail(job, error);
	finished_event(run, "failed", error);
}

static void
finished_event(int64_t run, const char *status, const char *error)
{
	json_t	*o;

	o = run_json(run);
	sb_host_event("privacy.rekey.finished", json_pack("{s:s, s:I, s:s, "
	    "s:s?, s:O?, s:O?}", "target", "rekey_run", "run_id",
	    (json_int_t)run, "status", status, "error", error, "resealed",
	    o != NULL ? json_object_get(o, "resealed") : NULL, "plugins",
	    o != NULL ? json_object_get(o, "plugins") : NULL));
	json_decref(o);
}

/* ------------------------------------------------------------------------
 * Routes.
 */

/* A run as the API shows it: plugins as a list in load order. */
static json_t *
run_json(int64_t id)
{
	json_t		*o, *stored, *list, *entry;
	const char	*pid;

	o = sb_db_row_by_id("SELECT id, status, requested_by, resealed, "
	    "batches, error, plugins, started_at, finished_at, updated_at "
	    "FROM rekey_runs WHERE id = $1::bigint", id);
	if (o == NULL)
		return (NULL);
	stored = json_object_get(o, "plugins");
	list = json_array();
	json_object_foreach(stored, pid, entry) {
		json_array_append_new(list, json_pack("{s:O?, s:s, s:O?, "
		    "s:O?}", "plugin", json_object_get(entry, "name"), "id",
		    pid, "resealed", json_object_get(entry, "resealed"),
		    "done", json_object_get(entry, "done")));
	}
	json_object_set_new(o, "plugins", list);
	return (o);
}

static void
rekey_start(struct sb_req *req)
{
	struct sb_db_res	*r;
	struct sb_job_opts	 opts;
	const char		*params[2], *who;
	char			 run_s[32], job_s[32], key[64];
	json_t			*payload, *o;
	int64_t			 run, job;

	if (sb_db_begin() == -1) {
		sb_respond_db_down(req);
		return;
	}
	/* A run whose step job is dead (or gone) cannot go on: it failed. */
	r = sb_db_query("UPDATE rekey_runs SET status = 'failed', error = "
	    "'its job is no longer queued or running', finished_at = now(), "
	    "updated_at = now() WHERE status = 'running' AND NOT EXISTS "
	    "(SELECT 1 FROM jobs j WHERE j.id = rekey_runs.job_id AND "
	    "j.status IN ('queued', 'running'))", 0, NULL);
	if (!r->ok)
		goto down;
	sb_db_free(r);

	who = req->principal.name != NULL && *req->principal.name != '\0' ?
	    req->principal.name : "unknown";
	params[0] = who;
	r = sb_db_query("INSERT INTO rekey_runs (requested_by) VALUES "
	    "(left($1, 200)) RETURNING id", 1, params);
	if (!r->ok) {
		if (strcmp(r->sqlstate, "23505") == 0) {
			sb_db_free(r);
			sb_db_rollback();
			sb_respond_error(req, 409, "CONFLICT", "a key rotation "
			    "is already running", NULL);
			return;
		}
		goto down;
	}
	run = strtoll(sb_db_value(r, 0, 0), NULL, 10);
	sb_db_free(r);

	memset(&opts, 0, sizeof(opts));
	snprintf(key, sizeof(key), "rekey:%lld:0", (long long)run);
	opts.idempotency_key = key;
	payload = json_pack("{s:I, s:i}", "run", (json_int_t)run, "step", 0);
	job = sb_jobs_enqueue(sb_host_plugin, REKEY_KIND, payload, &opts);
	json_decref(payload);
	if (job <= 0) {
		r = NULL;
		goto down;
	}
	snprintf(run_s, sizeof(run_s), "%lld", (long long)run);
	snprintf(job_s, sizeof(job_s), "%lld", (long long)job);
	params[0] = run_s;
	params[1] = job_s;
	r = sb_db_query("UPDATE rekey_runs SET job_id = $2::bigint WHERE id "
	    "= $1::bigint", 2, params);
	if (!r->ok)
		goto down;
	sb_db_free(r);
	if (sb_db_commit() == -1) {
		sb_respond_db_down(req);
		return;
	}
	if ((o = run_json(run)) == NULL) {
		sb_respond_db_down(req);
		return;
	}
	sb_respond_json(req, 202, o);
	return;
down:
	sb_db_free(r);
	sb_db_rollback();
	sb_respond_db_down(req);
}

static void
rekey_status(struct sb_req *req)
{
	struct sb_db_res	*r;
	json_t			*o;
	int64_t			 id;

	r = sb_db_query("SELECT max(id) FROM rekey_runs", 0, NULL);
	if (!r->ok) {
		sb_db_free(r);
		sb_respond_db_down(req);
		return;
	}
	if (sb_db_value(r, 0, 0) == NULL || *sb_db_value(r, 0, 0) == '\0') {
		sb_db_free(r);
		sb_respond_error(req, 404, "NOT_FOUND", "no key rotation has "
		    "run yet", NULL);
		return;
	}
	id = strtoll(sb_db_value(r, 0, 0), NULL, 10);
	sb_db_free(r);
	if ((o = run_json(id)) == NULL) {
		sb_respond_db_down(req);
		return;
	}
	sb_respond_json(req, 200, o);
}
