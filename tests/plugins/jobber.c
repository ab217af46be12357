/*
 * Test plugin for the durable job queue.
 *
 * Kinds:
 *   jobber.call  POSTs its payload's `body` (or the payload) to
 *                payload.url with api->http_send and the job's key as
 *                Idempotency-Key, and finishes from the callback: 2xx
 *                done, 429/5xx retry (honouring Retry-After), no answer
 *                retry, other 4xx dead.  A 10 s lease (an attempt on a
 *                loaded machine must not outlive it), an 8 s call
 *                timeout, 1 s first backoff.
 *   jobber.sink  done at once (the throughput bench); with payload.record
 *                it first writes a row to jobber_runs (tag, priority),
 *                with payload.tx it does that and job_done() inside its
 *                own transaction.
 *   jobber.tick  periodic, every second: one row per run in jobber_ticks.
 *   jobber.hang  never finishes (its 1 s lease runs out; 2 attempts).
 *
 * Routes (public: this is a test plugin):
 *   POST /api/v1/jobber/enqueue       {kind, payload?, idempotency_key?,
 *                                      max_attempts?, priority?, delay_ms?}
 *   POST /api/v1/jobber/enqueue-many  {jobs: [same]} in one transaction
 *   POST /api/v1/jobber/enqueue-bulk  {n, record?, tag?, delay_ms?} sink
 *                                      jobs, one transaction
 *   POST /api/v1/jobber/outbox        {fail, payload?}: BEGIN, a row of
 *                                      its own, enqueue, COMMIT/ROLLBACK
 *   GET  /api/v1/jobber/ticks         runs per slot
 *   GET  /api/v1/jobber/runs?tag=     recorded sink runs, in run order
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <switchboard/plugin.h>

static const struct sb_host_api	*api;
static struct sb_plugin		*self;

static void	jobber_call(struct sb_job *);
static void	jobber_call_done(struct sb_plugin *,
		    const struct sb_http_response *, void *);
static void	jobber_sink(struct sb_job *);
static void	jobber_tick(struct sb_job *);
static void	jobber_hang(struct sb_job *);

static const struct sb_job_kind kinds[] = {
	{ .name = "jobber.call", .run = jobber_call, .max_attempts = 5,
	  .timeout_s = 10, .backoff_s = 1 },
	{ .name = "jobber.sink", .run = jobber_sink },
	{ .name = "jobber.tick", .run = jobber_tick, .interval_s = 1 },
	{ .name = "jobber.hang", .run = jobber_hang, .max_attempts = 2,
	  .timeout_s = 1 },
};

static void
jobber_call(struct sb_job *job)
{
	struct sb_http_request	 r;
	struct sb_http_header	 h[2];
	json_t			*payload, *body;
	const char		*url, *upstream;
	char			*text;

	payload = api->job_payload(job);
	url = json_string_value(json_object_get(payload, "url"));
	upstream = json_string_value(json_object_get(payload, "upstream"));
	if (url == NULL) {
		api->job_fail(job, "payload.url is missing");
		return;
	}
	body = json_object_get(payload, "body");
	text = json_dumps(body != NULL ? body : payload, JSON_COMPACT |
	    JSON_ENCODE_ANY);
	h[0].name = "Content-Type";
	h[0].value = "application/json";
	h[1].name = "Idempotency-Key";
	h[1].value = api->job_key(job);
	memset(&r, 0, sizeof(r));
	r.method = "POST";
	r.url = url;
	r.headers = h;
	r.nheaders = 2;
	r.body = text;
	r.body_len = text != NULL ? strlen(text) : 0;
	/* Shorter than the 10 s lease: a hung upstream ends in a retry. */
	r.timeout_ms = 8000;
	r.upstream = upstream;
	if (api->http_send(api->job_plugin(job), &r, jobber_call_done,
	    job) != SB_OK)
		api->job_fail(job, "malformed request");
	free(text);
}

static void
jobber_call_done(struct sb_plugin *p, const struct sb_http_response *res,
    void *arg)
{
	struct sb_job	*job = arg;
	char		 err[96];

	(void)p;
	if (res->status == 0) {
		api->job_retry(job, res->error != NULL ? res->error :
		    "no response", 0);
		return;
	}
	snprintf(err, sizeof(err), "upstream answered %d", res->status);
	if (res->status >= 200 && res->status < 300) {
		api->job_done(job, json_pack("{s:i, s:o}", "status",
		    res->status, "body", json_loads(res->body,
		    JSON_DECODE_ANY, NULL) ?: json_null()));
	} else if (res->status == 429 || res->status >= 500) {
		api->job_retry(job, err, res->retry_after);
	} else {
		api->job_fail(job, err);
	}
}

static int
record_run(struct sb_job *job)
{
	struct sb_db_res	*r;
	json_t			*payload;
	const char		*params[6];
	char			 id[32], attempt[16], prio[16], pid[16];
	int			 ok;

	payload = api->job_payload(job);
	snprintf(id, sizeof(id), "%lld", (long long)api->job_id(job));
	snprintf(attempt, sizeof(attempt), "%d", api->job_attempt(job));
	snprintf(prio, sizeof(prio), "%lld", (long long)json_integer_value(
	    json_object_get(payload, "priority")));
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	params[0] = id;
	params[1] = "jobber.sink";
	params[2] = attempt;
	params[3] = json_string_value(json_object_get(payload, "tag"));
	params[4] = prio;
	params[5] = pid;
	r = api->db_query(self, "INSERT INTO jobber_runs (job_id, kind, "
	    "attempt, tag, priority, pid) VALUES ($1::bigint, $2, $3::int, $4, "
	    "$5::int, $6::int)", 6, params);
	ok = api->db_ok(r);
	api->db_free(r);
	return (ok);
}

static void
jobber_sink(struct sb_job *job)
{
	json_t	*payload;

	payload = api->job_payload(job);
	if (json_is_true(json_object_get(payload, "tx"))) {
		/* The run's row and the job's done commit together. */
		if (api->db_begin(self) != SB_OK) {
			api->job_retry(job, "no database", 0);
			return;
		}
		if (!record_run(job)) {
			api->db_rollback(self);
			api->job_retry(job, "cannot record the run", 0);
			return;
		}
		api->job_done(job, json_pack("{s:i}", "pid", (int)getpid()));
		if (api->db_commit(self) != SB_OK)
			api->log(self, SB_LOG_ERROR, "commit failed");
		return;
	}
	if (json_is_true(json_object_get(payload, "record")) &&
	    !record_run(job)) {
		api->job_retry(job, "cannot record the run", 0);
		return;
	}
	api->job_done(job, NULL);
}

static void
jobber_tick(struct sb_job *job)
{
	struct sb_db_res	*r;
	const char		*params[3];
	char			 slot[32], id[32], pid[16];

	snprintf(slot, sizeof(slot), "%lld", (long long)json_integer_value(
	    json_object_get(api->job_payload(job), "slot")));
	snprintf(id, sizeof(id), "%lld", (long long)api->job_id(job));
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	params[0] = slot;
	params[1] = id;
	params[2] = pid;
	r = api->db_query(self, "INSERT INTO jobber_ticks (slot, job_id, pid) "
	    "VALUES ($1::bigint, $2::bigint, $3::int)", 3, params);
	if (api->db_ok(r))
		api->job_done(job, NULL);
	else
		api->job_retry(job, "cannot record the tick", 0);
	api->db_free(r);
}

/* Keeps the handle and never finishes: the lease has to end it. */
static void
jobber_hang(struct sb_job *job)
{
	api->log(self, SB_LOG_INFO, "job %lld: hanging on purpose",
	    (long long)api->job_id(job));
}

/* ------------------------------------------------------------------------
 * Routes.
 */

static const struct sb_field enqueue_body[] = {
	{ .name = "kind", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .min_len = 1, .max_len = 128 },
	{ .name = "payload", .type = SB_T_OBJECT },
	{ .name = "idempotency_key", .type = SB_T_STRING, .min_len = 1,
	  .max_len = 255 },
	{ .name = "max_attempts", .type = SB_T_INT, .flags = SB_F_RANGE,
	  .min = 1, .max = 100 },
	{ .name = "priority", .type = SB_T_INT, .flags = SB_F_RANGE,
	  .min = -1000, .max = 1000 },
	{ .name = "delay_ms", .type = SB_T_INT, .flags = SB_F_RANGE,
	  .min = 0, .max = 86400000 },
	SB_FIELD_END
};

static const struct sb_field many_body[] = {
	{ .name = "jobs", .type = SB_T_ARRAY, .flags = SB_F_REQUIRED,
	  .item_type = SB_T_OBJECT, .max_len = 1000 },
	SB_FIELD_END
};

static const struct sb_field bulk_body[] = {
	{ .name = "n", .type = SB_T_INT, .flags = SB_F_REQUIRED | SB_F_RANGE,
	  .min = 1, .max = 100000 },
	{ .name = "record", .type = SB_T_BOOL },
	{ .name = "tag", .type = SB_T_STRING, .max_len = 64 },
	{ .name = "delay_ms", .type = SB_T_INT, .flags = SB_F_RANGE,
	  .min = 0, .max = 86400000 },
	SB_FIELD_END
};

static const struct sb_field outbox_body[] = {
	{ .name = "fail", .type = SB_T_BOOL, .flags = SB_F_REQUIRED },
	{ .name = "payload", .type = SB_T_OBJECT },
	SB_FIELD_END
};

/* Enqueue one job described like enqueue_body; the id or -1. */
static int64_t
enqueue_one(json_t *o)
{
	struct sb_job_opts	 opts;

	memset(&opts, 0, sizeof(opts));
	opts.priority = (int)json_integer_value(json_object_get(o,
	    "priority"));
	opts.delay_ms = json_integer_value(json_object_get(o, "delay_ms"));
	opts.idempotency_key = json_string_value(json_object_get(o,
	    "idempotency_key"));
	opts.max_attempts = (unsigned int)json_integer_value(json_object_get(o,
	    "max_attempts"));
	return (api->job_enqueue(self, json_string_value(json_object_get(o,
	    "kind")), json_object_get(o, "payload"), &opts));
}

static void
jobber_enqueue(struct sb_req *req)
{
	int64_t	id;

	if ((id = enqueue_one(api->req_json(req))) == -1) {
		api->respond_error(req, 422, "VALIDATION_ERROR", "cannot "
		    "enqueue", NULL);
		return;
	}
	api->respond_json(req, 201, json_pack("{s:I}", "id", (json_int_t)id));
}

static void
jobber_enqueue_many(struct sb_req *req)
{
	json_t	*jobs, *ids, *o;
	size_t	 i;
	int64_t	 id;

	jobs = json_object_get(api->req_json(req), "jobs");
	if (api->db_begin(self) != SB_OK) {
		api->respond_error(req, 503, "UNAVAILABLE", "no database", NULL);
		return;
	}
	ids = json_array();
	json_array_foreach(jobs, i, o) {
		if ((id = enqueue_one(o)) == -1) {
			api->db_rollback(self);
			json_decref(ids);
			api->respond_error(req, 422, "VALIDATION_ERROR",
			    "cannot enqueue", NULL);
			return;
		}
		json_array_append_new(ids, json_integer(id));
	}
	if (api->db_commit(self) != SB_OK) {
		json_decref(ids);
		api->respond_error(req, 503, "UNAVAILABLE", "commit failed",
		    NULL);
		return;
	}
	api->respond_json(req, 201, json_pack("{s:o}", "ids", ids));
}

static void
jobber_enqueue_bulk(struct sb_req *req)
{
	struct sb_job_opts	 opts;
	json_t			*body, *payload;
	json_int_t		 n, i;
	int64_t			 id, first;

	body = api->req_json(req);
	n = json_integer_value(json_object_get(body, "n"));
	memset(&opts, 0, sizeof(opts));
	opts.delay_ms = json_integer_value(json_object_get(body, "delay_ms"));
	payload = json_pack("{s:b, s:O?}", "record",
	    json_is_true(json_object_get(body, "record")), "tag",
	    json_object_get(body, "tag"));
	if (api->db_begin(self) != SB_OK) {
		json_decref(payload);
		api->respond_error(req, 503, "UNAVAILABLE", "no database", NULL);
		return;
	}
	first = id = -1;
	for (i = 0; i < n; i++) {
		if ((id = api->job_enqueue(self, "jobber.sink", payload,
		    &opts)) == -1)
			break;
		if (first == -1)
			first = id;
	}
	json_decref(payload);
	if (id == -1 || api->db_commit(self) != SB_OK) {
		api->db_rollback(self);
		api->respond_error(req, 503, "UNAVAILABLE", "enqueue failed",
		    NULL);
		return;
	}
	api->respond_json(req, 201, json_pack("{s:I, s:I, s:I}", "n", n,
	    "first_id", (json_int_t)first, "last_id", (json_int_t)id));
}

/* The outbox: the job exists if and only if the row committed. */
static void
jobber_outbox(struct sb_req *req)
{
	struct sb_db_res	*r;
	json_t			*body, *payload;
	const char		*params[2];
	char			 jid[32], oidbuf[32];
	int64_t			 oid, id;
	int			 fail;

	body = api->req_json(req);
	fail = json_is_true(json_object_get(body, "fail"));
	if (api->db_begin(self) != SB_OK) {
		api->respond_error(req, 503, "UNAVAILABLE", "no database", NULL);
		return;
	}
	r = api->db_query(self, "INSERT INTO jobber_outbox (note) VALUES "
	    "('outbox') RETURNING id", 0, NULL);
	if (!api->db_ok(r) || api->db_rows(r) != 1) {
		api->db_free(r);
		api->db_rollback(self);
		api->respond_error(req, 503, "UNAVAILABLE", "insert failed",
		    NULL);
		return;
	}
	oid = strtoll(api->db_value(r, 0, 0), NULL, 10);
	api->db_free(r);

	payload = json_deep_copy(json_object_get(body, "payload"));
	if (payload == NULL)
		payload = json_object();
	json_object_set_new(payload, "record", json_true());
	json_object_set_new(payload, "outbox_id", json_integer(oid));
	id = api->job_enqueue(self, "jobber.sink", payload, NULL);
	json_decref(payload);
	snprintf(jid, sizeof(jid), "%lld", (long long)id);
	snprintf(oidbuf, sizeof(oidbuf), "%lld", (long long)oid);
	params[0] = jid;
	params[1] = oidbuf;
	r = api->db_query(self, "UPDATE jobber_outbox SET job_id = "
	    "$1::bigint WHERE id = $2::bigint", 2, params);
	api->db_free(r);
	if (id == -1 || fail) {
		api->db_rollback(self);
		api->respond_json(req, 200, json_pack("{s:b, s:I, s:I}",
		    "committed", 0, "job_id", (json_int_t)id, "outbox_id",
		    (json_int_t)oid));
		return;
	}
	if (api->db_commit(self) != SB_OK) {
		api->respond_error(req, 503, "UNAVAILABLE", "commit failed",
		    NULL);
		return;
	}
	api->respond_json(req, 200, json_pack("{s:b, s:I, s:I}", "committed",
	    1, "job_id", (json_int_t)id, "outbox_id", (json_int_t)oid));
}

static void
jobber_ticks(struct sb_req *req)
{
	struct sb_db_res	*r;
	json_t			*rows;
	int			 i;

	r = api->db_query(self, "SELECT slot, count(*)::int AS runs, "
	    "min(at) AS first_at FROM jobber_ticks GROUP BY slot ORDER BY slot",
	    0, NULL);
	if (!api->db_ok(r)) {
		api->db_free(r);
		api->respond_error(req, 503, "UNAVAILABLE", "no database", NULL);
		return;
	}
	rows = json_array();
	for (i = 0; i < api->db_rows(r); i++)
		json_array_append_new(rows, api->db_row_json(r, i));
	api->db_free(r);
	api->respond_json(req, 200, json_pack("{s:o, s:n}", "data", rows,
	    "next_cursor"));
}

static void
jobber_runs(struct sb_req *req)
{
	struct sb_db_res	*r;
	const char		*params[1];
	json_t			*rows;
	int			 i;

	params[0] = api->req_query(req, "tag");
	r = api->db_query(self, "SELECT id, job_id, attempt, tag, priority, "
	    "pid FROM jobber_runs WHERE ($1::text IS NULL OR tag = $1) "
	    "ORDER BY id", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		api->respond_error(req, 503, "UNAVAILABLE", "no database", NULL);
		return;
	}
	rows = json_array();
	for (i = 0; i < api->db_rows(r); i++)
		json_array_append_new(rows, api->db_row_json(r, i));
	api->db_free(r);
	api->respond_json(req, 200, json_pack("{s:o, s:n}", "data", rows,
	    "next_cursor"));
}

static const struct sb_route routes[] = {
	{ .method = "POST", .path = "/api/v1/jobber/enqueue",
	  .flags = SB_ROUTE_PUBLIC, .handler = jobber_enqueue,
	  .body = enqueue_body },
	{ .method = "POST", .path = "/api/v1/jobber/enqueue-many",
	  .flags = SB_ROUTE_PUBLIC, .handler = jobber_enqueue_many,
	  .body = many_body },
	{ .method = "POST", .path = "/api/v1/jobber/enqueue-bulk",
	  .flags = SB_ROUTE_PUBLIC, .handler = jobber_enqueue_bulk,
	  .body = bulk_body },
	{ .method = "POST", .path = "/api/v1/jobber/outbox",
	  .flags = SB_ROUTE_PUBLIC, .handler = jobber_outbox,
	  .body = outbox_body },
	{ .method = "GET", .path = "/api/v1/jobber/ticks",
	  .flags = SB_ROUTE_PUBLIC, .handler = jobber_ticks },
	{ .method = "GET", .path = "/api/v1/jobber/runs",
	  .flags = SB_ROUTE_PUBLIC, .handler = jobber_runs },
	SB_ROUTE_END
};

static int
jobber_setup(struct sb_plugin *p, const struct sb_host_api *host)
{
	size_t	i;

	api = host;
	self = p;
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (api->job_kind_add(p, &kinds[i]) != SB_OK)
			return (SB_ERROR);
	}
	if (api->routes_add(p, routes) != SB_OK ||
	    api->migrations_add(p, "jobber_migrations") != SB_OK)
		return (SB_ERROR);
	return (SB_OK);
}

SB_PLUGIN(
	.id = "io.switchboard.test.jobber",
	.name = "jobber",
	.version = "1.0.0",
	.summary = "Test plugin for durable jobs",
	.setup = jobber_setup,
)
