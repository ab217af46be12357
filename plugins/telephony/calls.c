/*
 * The call core of the telephony plugin (API.md "Telephony"): placing
 * calls through the providers of provider.h with routing, failover and a
 * calls-per-second pace, hanging up, the providers' status callbacks,
 * call history and statistics, and the call's share of the privacy
 * hooks, key rotation and the customer timeline.
 *
 * A call is written `queued` with its durable place job in one
 * transaction.  The job sets `inflight` before the provider's request
 * leaves; a job that finds it set (its worker died with the request out)
 * never places the call again: the call is `failed` with hangup_cause
 * `unknown`, since the provider may have placed it.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <switchboard/plugin.h>
#include <switchboard/helpers.h>

#include "tel.h"

#define PLACE_KIND	"telephony.call_place"
#define HANGUP_KIND	"telephony.call_hangup"
#define PLACE_ATTEMPTS	8

static const struct sb_host_api	*api;
static struct sb_plugin		*self;
static unsigned int		 calls_per_minute;

static void	call_initiate(struct sb_req *);
static void	call_list(struct sb_req *);
static void	call_customer(struct sb_req *);
static void	call_get(struct sb_req *);
static void	call_hangup(struct sb_req *);
static void	call_statistics(struct sb_req *);
static void	webhook_twilio_voice(struct sb_req *);
static void	webhook_exotel_voice(struct sb_req *);
static void	place_run(struct sb_job *);
static void	inbound_call(struct sb_req *, json_t *);
static void	hangup_run(struct sb_job *);

static const char *const voice_providers[] = { "twilio", "exotel",
	"freeswitch", NULL };
static const char *const call_statuses[] = { "queued", "initiated",
	"ringing", "in-progress", "completed", "busy", "no-answer", "failed",
	"canceled", NULL };

static const struct sb_field initiate_body[] = {
	{ .name = "to", .type = SB_T_STRING, .flags = SB_F_REQUIRED |
	  SB_F_NONEMPTY, .max_len = 64, .description = "The callee; "
	  "normalised to E.164" },
	{ .name = "connect_to", .type = SB_T_STRING, .flags = SB_F_NULLABLE |
	  SB_F_NONEMPTY, .max_len = 200, .description = "Bridge the callee "
	  "to this number (the agent's phone) or SIP user (sip:...)" },
	{ .name = "message", .type = SB_T_STRING, .flags = SB_F_NULLABLE |
	  SB_F_NONEMPTY, .max_len = 1000, .description = "Spoken to the "
	  "callee when there is no connect_to; the call then ends" },
	{ .name = "provider", .type = SB_T_STRING, .flags = SB_F_NULLABLE,
	  .choices = voice_providers, .description = "Overrides routing" },
	{ .name = "customer_id", .type = SB_T_INT, .flags = SB_F_NULLABLE |
	  SB_F_RANGE, .min = 1, .max = INT64_MAX },
	{ .name = "record", .type = SB_T_BOOL, .flags = SB_F_NULLABLE,
	  .description = "Record the call (its recording_url is stored when "
	  "the provider reports it)" },
	SB_FIELD_END
};

static const struct sb_route routes[] = {
	{ .method = "POST", .path = "/api/v1/calls/initiate",
	  .permission = "voice.place", .handler = call_initiate,
	  .body = initiate_body,
	  .summary = "Place a call (202: queued; placing is a durable job)" },
	{ .method = "GET", .path = "/api/v1/calls",
	  .permission = "voice.read", .handler = call_list,
	  .summary = "Calls, newest first" },
	{ .method = "GET", .path = "/api/v1/calls/statistics",
	  .permission = "voice.read", .handler = call_statistics,
	  .summary = "Call totals, grouped by day, provider or user" },
	{ .method = "GET", .path = "/api/v1/calls/customer/{customer_id}",
	  .permission = "voice.read", .handler = call_customer,
	  .summary = "A customer's calls, newest first" },
	{ .method = "GET", .path = "/api/v1/calls/{id}",
	  .permission = "voice.read", .handler = call_get,
	  .summary = "One call with its status events" },
	{ .method = "POST", .path = "/api/v1/calls/{id}/hangup",
	  .permission = "voice.place", .handler = call_hangup,
	  .summary = "End a call (409 once it has ended)" },
	{ .method = "POST", .path = "/api/v1/webhooks/twilio/voice",
	  .flags = SB_ROUTE_PUBLIC | SB_ROUTE_WEBHOOK,
	  .handler = webhook_twilio_voice,
	  .body_max = 65536,
	  .summary = "Twilio call status and recording callbacks "
	  "(X-Twilio-Signature)" },
	{ .method = "POST", .path = "/api/v1/webhooks/exotel/{token}/voice",
	  .flags = SB_ROUTE_PUBLIC | SB_ROUTE_SECRET_PATH | SB_ROUTE_WEBHOOK,
	  .handler = webhook_exotel_voice, .body_max = 65536,
	  .summary = "Exotel call status callbacks (the path token is the "
	  "check)" },
	SB_ROUTE_END
};

static const struct sb_job_kind place_kind = {
	.name = PLACE_KIND, .run = place_run, .max_attempts = PLACE_ATTEMPTS,
	.timeout_s = 180, .backoff_s = 1
};

static const struct sb_job_kind hangup_kind = {
	.name = HANGUP_KIND, .run = hangup_run, .max_attempts = 10,
	.timeout_s = 120, .backoff_s = 1
};

/* ---- status order ---- */

static int
terminal(const char *s)
{
	return (s != NULL && (strcmp(s, "completed") == 0 ||
	    strcmp(s, "busy") == 0 || strcmp(s, "no-answer") == 0 ||
	    strcmp(s, "failed") == 0 || strcmp(s, "canceled") == 0));
}

static int
status_rank(const char *s)
{
	if (s == NULL)
		return (-1);
	if (strcmp(s, "queued") == 0)
		return (0);
	if (strcmp(s, "initiated") == 0)
		return (1);
	if (strcmp(s, "ringing") == 0)
		return (2);
	if (strcmp(s, "in-progress") == 0)
		return (3);
	if (terminal(s))
		return (4);
	return (-1);
}

/* ---- calls as the API shows them ---- */

#define CALL_COLS "id, direction, to_sealed, from_sealed, provider, " \
	"provider_call_id, customer_id, status, " \
	SB_SQL_TS("started_at") " AS started_at, " \
	SB_SQL_TS("answered_at") " AS answered_at, " \
	SB_SQL_TS("ended_at") " AS ended_at, duration_s, hangup_cause, " \
	"recording_url, error_code, error_message, initiated_by, " \
	SB_SQL_TS("created_at") " AS created_at, " \
	SB_SQL_TS("updated_at") " AS updated_at"

static json_t *
call_json(json_t *row)
{
	if (row == NULL)
		return (NULL);
	tel_unseal_into(row, "to_sealed", "to");
	tel_unseal_into(row, "from_sealed", "from");
	return (row);
}

static json_t *
call_load(const char *id, int events, int *dberr)
{
	return (tel_item_load("call", "SELECT " CALL_COLS " FROM "
	    "telephony_calls WHERE id = $1::bigint", id, events, call_json,
	    dberr));
}

static int
event_add(const char *ids, const char *status, const char *detail,
    const char *callback, int *added)
{
	return (tel_event_add("call", ids, status, detail, callback, added));
}

static void
publish(const char *name, const char *ids)
{
	json_t	*m;
	int	 dberr;

	if ((m = call_load(ids, 0, &dberr)) == NULL)
		return;
	tel_publish(name, m);
	json_decref(m);
}

/* ---- POST /api/v1/calls/initiate ---- */

/* The first provider of list that is ready and can place c, or NULL
 * (*why: the last reason one could not). */
static const struct tel_provider *
first_able(const char *list, const struct tel_call *c, const char **why)
{
	const struct tel_provider	*tp;
	const char			*s, *e, *w;

	*why = NULL;
	for (s = list; *s != '\0'; s = *e == ',' ? e + 1 : e) {
		e = s + strcspn(s, ",");
		tp = tel_provider_find(s, (size_t)(e - s));
		if (!tel_provider_ready(tp, TEL_CHAN_VOICE) ||
		    tp->place_call == NULL)
			continue;
		if (tp->call_ok != NULL && !tp->call_ok(c, &w)) {
			*why = w;
			continue;
		}
		return (tp);
	}
	return (NULL);
}

/*
 * The pace: a provider account starts at most <provider>_calls_per_second
 * calls a second (Twilio's default is 1).  Each call takes the next free
 * start slot of its provider (telephony_pace, inside the caller's
 * transaction) and its place job is delayed to it.  The delay in ms, or
 * -1 on a database error.
 */
static int64_t
pace_slot(const char *provider)
{
	struct sb_db_res	*r;
	const char		*params[2];
	char			 key[64], step[32];
	const char		*v;
	double			 cps;
	int64_t			 ms;

	(void)snprintf(key, sizeof(key), "%s_calls_per_second", provider);
	v = api->config_get(self, key);
	cps = v != NULL && *v != '\0' ? strtod(v, NULL) : 1.0;
	if (cps <= 0)
		return (0);
	(void)snprintf(step, sizeof(step), "%.6f", 1.0 / cps);
	params[0] = provider;
	params[1] = step;
	r = api->db_query(self, "INSERT INTO telephony_pace AS p (provider, "
	    "next_at) VALUES ($1, now() + make_interval(secs => $2::float8)) "
	    "ON CONFLICT (provider) DO UPDATE SET next_at = greatest(p.next_at, "
	    "now()) + make_interval(secs => $2::float8) RETURNING "
	    "greatest(0, extract(epoch FROM (p.next_at - make_interval(secs => "
	    "$2::float8) - now())) * 1000)::bigint", 2, params);
	if (!api->db_ok(r) || api->db_rows(r) != 1) {
		api->db_free(r);
		return (-1);
	}
	ms = strtoll(api->db_value(r, 0, 0), NULL, 10);
	api->db_free(r);
	return (ms);
}

/* connect_to: a phone number (normalised) or a SIP URI. */
static int
connect_norm(const char *in, char *out, size_t len)
{
	size_t	n = strlen(in);

	if (strncmp(in, "sip:", 4) == 0) {
		if (n < 6 || n >= len || strspn(in + 4, "ABCDEFGHIJKLMNOPQRST"
		    "UVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()&=+$,;"
		    "?/@:%") != n - 4)
			return (-1);
		(void)snprintf(out, len, "%s", in);
		return (0);
	}
	return (tel_normalise(in, out, len) == SB_OK ? 0 : -1);
}

static void
call_initiate(struct sb_req *req)
{
	const struct sb_principal	*who = api->req_principal(req);
	const struct tel_provider	*tp;
	struct tel_call			 c;
	struct sb_job_opts		 opts;
	struct sb_db_res		*r;
	json_t				*b = api->req_json(req), *m, *payload;
	const char			*to, *cto, *msg, *explicit, *why = NULL;
	const char			*params[10];
	char				 e164[32], conn[208], list[256], whos[32];
	char				 cids[24], by[24], ids[24], key[64];
	char				*index = NULL, *to_s = NULL, *conn_s = NULL;
	char				*msg_s = NULL;
	int64_t				 cid, delay;
	int				 dberr;

	to = sb_jstr(b, "to");
	cto = sb_jstr(b, "connect_to");
	msg = sb_jstr(b, "message");
	explicit = sb_jstr(b, "provider");
	if (tel_normalise(to, e164, sizeof(e164)) != SB_OK) {
		tel_err_field(req, 422, "to", "INVALID_FORMAT", "not a valid "
		    "phone number");
		return;
	}
	if (cto != NULL && connect_norm(cto, conn, sizeof(conn)) == -1) {
		tel_err_field(req, 422, "connect_to", "INVALID_FORMAT", "not a "
		    "phone number or a sip: URI");
		goto done;
	}
	if (cto == NULL && msg == NULL) {
		tel_err_field(req, 422, "message", "REQUIRED", "connect_to or "
		    "message is required");
		goto done;
	}
	memset(&c, 0, sizeof(c));
	c.to = e164;
	c.connect_to = cto != NULL ? conn : NULL;
	c.message = cto == NULL ? msg : NULL;
	c.record = json_is_true(json_object_get(b, "record"));
	if (tel_candidates("voice", explicit, e164, list, sizeof(list)) == -1 ||
	    (tp = first_able(list, &c, &why)) == NULL) {
		api->respond_error(req, 503, "UNAVAILABLE", why != NULL ? why :
		    "no voice provider for this number is configured and "
		    "available", NULL);
		goto done;
	}
	if ((index = tel_phone_index(e164)) == NULL) {
		api->respond_error(req, 503, "UNAVAILABLE", "no data key",
		    NULL);
		goto done;
	}
	(void)snprintf(whos, sizeof(whos), "%d:%lld", (int)who->kind,
	    (long long)who->id);
	if (!tel_rate_ok(req, "call", calls_per_minute, whos, index, "too "
	    "many calls; try again later"))
		goto done;
	to_s = api->seal(self, e164, strlen(e164));
	if (cto != NULL)
		conn_s = api->seal(self, conn, strlen(conn));
	if (c.message != NULL)
		msg_s = api->seal(self, msg, strlen(msg));
	if (to_s == NULL || (cto != NULL && conn_s == NULL) ||
	    (c.message != NULL && msg_s == NULL)) {
		api->respond_error(req, 503, "UNAVAILABLE", "no data key",
		    NULL);
		goto done;
	}
	if (api->db_begin(self) != SB_OK) {
		tel_err_db(req);
		goto done;
	}
	if (json_is_integer(json_object_get(b, "customer_id"))) {
		cid = json_integer_value(json_object_get(b, "customer_id"));
		if ((m = tel_dir->get(self, cid, &dberr)) == NULL) {
			api->db_rollback(self);
			if (dberr)
				tel_err_db(req);
			else
				tel_err_field(req, 422, "customer_id",
				    "NOT_FOUND", "no such customer");
			goto done;
		}
		json_decref(m);
	} else if ((cid = tel_dir->find_or_create(self, e164, NULL)) == -1)
		goto dberr;
	(void)snprintf(cids, sizeof(cids), "%lld", (long long)cid);
	(void)snprintf(by, sizeof(by), "%lld", (long long)who->id);
	params[0] = to_s;
	params[1] = index;
	params[2] = conn_s;
	params[3] = msg_s;
	params[4] = c.record ? "true" : "false";
	params[5] = explicit;
	params[6] = cids;
	params[7] = who->kind == SB_ACTOR_USER ? by : NULL;
	r = api->db_query(self, "INSERT INTO telephony_calls (direction, "
	    "to_sealed, to_index, connect_to_sealed, message_sealed, record, "
	    "provider, customer_id, status, initiated_by) VALUES ('outbound', "
	    "$1, $2, $3, $4, $5::boolean, $6, $7::bigint, 'queued', "
	    "$8::bigint) RETURNING id", 8, params);
	if (!api->db_ok(r) || api->db_rows(r) != 1) {
		api->db_free(r);
		goto dberr;
	}
	(void)snprintf(ids, sizeof(ids), "%s", api->db_value(r, 0, 0));
	api->db_free(r);
	if ((delay = pace_slot(tp->name)) == -1)
		goto dberr;
	memset(&opts, 0, sizeof(opts));
	opts.delay_ms = delay;
	(void)snprintf(key, sizeof(key), "telephony.call:%s", ids);
	opts.idempotency_key = key;
	payload = json_pack("{s:I, s:s?}", "id", (json_int_t)strtoll(ids, NULL,
	    10), "provider", explicit);
	m = NULL;
	if (event_add(ids, "queued", NULL, NULL, NULL) == -1 ||
	    payload == NULL ||
	    api->job_enqueue(self, PLACE_KIND, payload, &opts) == -1 ||
	    (m = call_load(ids, 1, &dberr)) == NULL ||
	    api->db_commit(self) != SB_OK) {
		json_decref(payload);
		json_decref(m);
		goto dberr;
	}
	json_decref(payload);
	tel_publish("telephony.call.created", m);
	api->respond_json(req, 202, m);
	goto done;
dberr:
	api->db_rollback(self);
	tel_err_db(req);
done:
	explicit_bzero(e164, sizeof(e164));
	free(index);
	free(to_s);
	free(conn_s);
	free(msg_s);
}

/* ---- lists ---- */

static json_t *
list_map(struct sb_req *req, json_t *row, void *arg)
{
	(void)req;
	(void)arg;
	return (call_json(row));
}

static void
calls_query(struct sb_req *req, const char *customer)
{
	struct sb_list		 list;
	struct sb_db_res	*r;
	const char		*status, *provider, *cust, *tfrom, *tto;
	const char		*params[9];
	char			*ifrom = NULL, *ito = NULL;

	memset(&list, 0, sizeof(list));
	list.size = sizeof(list);
	if (api->list_parse(req, &list, SB_LIST_ID_CURSOR) != SB_OK)
		return;
	if (tel_filter_enums(req, call_statuses, voice_providers, &status, &provider) == -1)
		return;
	cust = customer;
	if ((customer == NULL && tel_filter_id(req, "customer_id",
	    &cust) == -1) ||
	    tel_filter_fromto(req, "from", &tfrom, &ifrom) == -1)
		return;
	if (tel_filter_fromto(req, "to", &tto, &ito) == -1) {
		free(ifrom);
		return;
	}
	params[0] = status;
	params[1] = provider;
	params[2] = cust;
	params[3] = tfrom;
	params[4] = tto;
	params[5] = ifrom;
	params[6] = ito;
	params[7] = list.cursor;
	params[8] = list.limit_plus_one;
	r = api->db_query(self, "SELECT " CALL_COLS " FROM telephony_calls "
	    "WHERE ($1::text IS NULL OR status = $1) AND "
	    "($2::text IS NULL OR provider = $2) AND "
	    "($3::bigint IS NULL OR customer_id = $3::bigint) AND "
	    "($4::timestamptz IS NULL OR created_at >= $4::timestamptz) AND "
	    "($5::timestamptz IS NULL OR created_at < $5::timestamptz) AND "
	    "($6::text IS NULL OR from_index = $6) AND "
	    "($7::text IS NULL OR to_index = $7) AND "
	    "($8::bigint IS NULL OR id < $8::bigint) "
	    "ORDER BY id DESC LIMIT $9::bigint", 9, params);
	free(ifrom);
	free(ito);
	if (!api->db_ok(r) && api->db_sqlstate(r) != NULL &&
	    strncmp(api->db_sqlstate(r), "22", 2) == 0) {
		api->db_free(r);
		tel_err_field(req, 400, tfrom != NULL ? "from" : "to",
		    "INVALID_FORMAT", "not a time");
		return;
	}
	api->list_respond(req, r, &list, "id", list_map, NULL);
}

static void
call_list(struct sb_req *req)
{
	calls_query(req, NULL);
}

static void
call_customer(struct sb_req *req)
{
	const char	*id = sb_positive_id(api->req_param(req,
			    "customer_id"));
	json_t		*m;
	int		 dberr;

	if (id == NULL || (m = tel_dir->get(self, strtoll(id, NULL, 10),
	    &dberr)) == NULL) {
		if (id != NULL && dberr)
			tel_err_db(req);
		else
			api->respond_error(req, 404, "NOT_FOUND", "no such "
			    "customer", NULL);
		return;
	}
	json_decref(m);
	calls_query(req, id);
}

static void
call_get(struct sb_req *req)
{
	const char	*id = sb_positive_id(api->req_param(req, "id"));
	json_t		*m;
	int		 dberr;

	if (id == NULL) {
		api->respond_error(req, 404, "NOT_FOUND", "no such call", NULL);
		return;
	}
	if ((m = call_load(id, 1, &dberr)) == NULL) {
		if (dberr)
			tel_err_db(req);
		else
			api->respond_error(req, 404, "NOT_FOUND", "no such "
			    "call", NULL);
		return;
	}
	api->respond_json(req, 200, m);
}

/* ---- statistics ---- */

/*
 * total; completed, failed, busy, no_answer, canceled; unknown (failed
 * because the provider may have placed it); success_rate = completed /
 * total (0 without calls); avg_duration_s and p90_duration_s over the
 * completed calls with a duration (0 without).
 */
#define CSTAT_COLS \
	"'total', count(*), " \
	"'completed', count(*) FILTER (WHERE status = 'completed'), " \
	"'failed', count(*) FILTER (WHERE status = 'failed'), " \
	"'busy', count(*) FILTER (WHERE status = 'busy'), " \
	"'no_answer', count(*) FILTER (WHERE status = 'no-answer'), " \
	"'canceled', count(*) FILTER (WHERE status = 'canceled'), " \
	"'unknown', count(*) FILTER (WHERE status = 'failed' AND " \
	"hangup_cause = 'unknown'), " \
	"'success_rate', coalesce(round(count(*) FILTER (WHERE status = " \
	"'completed')::numeric / nullif(count(*), 0), 4), 0), " \
	"'avg_duration_s', coalesce(round(avg(duration_s) FILTER (WHERE " \
	"status = 'completed'), 2), 0), " \
	"'p90_duration_s', coalesce(round((percentile_cont(0.9) WITHIN GROUP " \
	"(ORDER BY duration_s) FILTER (WHERE status = 'completed'))::numeric, " \
	"2), 0)"

static void
call_statistics(struct sb_req *req)
{
	const char	*params[2], *g, *key;
	char		 sql[8192];
	int		 n;
	json_t		*out;

	if (tel_stats_bounds(req, &params[0], &params[1]) == -1)
		return;
	g = api->req_query(req, "group_by");
	if (g == NULL || *g == '\0' || strcmp(g, "day") == 0)
		key = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')";
	else if (strcmp(g, "provider") == 0)
		key = "provider";
	else if (strcmp(g, "user") == 0)
		key = "initiated_by";
	else {
		tel_err_field(req, 400, "group_by", "INVALID_VALUE", "day, "
		    "provider or user");
		return;
	}
	/* key is one of the three constants above. */
	n = snprintf(sql, sizeof(sql), "WITH m AS (SELECT * FROM "
	    "telephony_calls WHERE " TEL_STATS_WHERE ") "
	    "SELECT json_build_object("
	    "'totals', (SELECT json_build_object(" CSTAT_COLS ") FROM m), "
	    "'groups', (SELECT coalesce(json_agg(x ORDER BY k NULLS LAST), "
	    "'[]') FROM (SELECT %s AS k, jsonb_build_object('key', %s) || "
	    "json_build_object(" CSTAT_COLS ")::jsonb AS x FROM m GROUP BY %s) "
	    "g))::text", key, key, key);
	if (n < 0 || (size_t)n >= sizeof(sql) ||
	    (out = sb_db_json(api, self, sql, 2, params)) == NULL) {
		tel_err_db(req);
		return;
	}
	api->respond_json(req, 200, out);
}

/* ---- status changes ---- */

/*
 * A status st (NULL: only a recording) for call ids inside the caller's
 * transaction: recorded as an event, once per provider callback when
 * from_provider (a replay adds nothing), the call moved only forward, the
 * times, the duration (seconds, digits), the hangup cause and the
 * recording's URL kept.  *changed: the call moved.
 */
static int
status_apply(const char *ids, const char *provider, const char *st,
    const char *cause, const char *duration, const char *recording,
    const char *detail, int from_provider, int *changed)
{
	struct sb_db_res	*r;
	const char		*params[6];
	char			 cb[64];
	int			 added = 1, moved, same;

	*changed = 0;
	params[0] = ids;
	r = api->db_query(self, "SELECT status FROM telephony_calls WHERE "
	    "id = $1::bigint FOR UPDATE", 1, params);
	if (!api->db_ok(r) || api->db_rows(r) != 1) {
		api->db_free(r);
		return (-1);
	}
	moved = status_rank(st) > status_rank(api->db_value(r, 0, 0));
	/* The status it has (the provider confirming what the job set):
	 * nothing new to record. */
	same = st != NULL && strcmp(st, api->db_value(r, 0, 0)) == 0;
	api->db_free(r);
	if (recording != NULL && *recording != '\0' && strlen(recording) < 1024) {
		params[1] = recording;
		if (sb_db_count(api, self, "UPDATE telephony_calls SET "
		    "recording_url = $2, updated_at = now() WHERE id = $1::bigint "
		    "AND recording_url IS DISTINCT FROM $2 RETURNING 1", 2,
		    params) == -1)
			return (-1);
	}
	if (st == NULL || same)
		return (0);
	cb[0] = '\0';
	if (from_provider)
		(void)snprintf(cb, sizeof(cb), "%s:%s", provider, st);
	if (event_add(ids, st, detail != NULL ? detail : moved ? NULL :
	    "late: status unchanged", cb[0] != '\0' ? cb : NULL, &added) == -1)
		return (-1);
	if (!added || !moved)
		return (0);
	params[1] = st;
	params[2] = cause != NULL && *cause != '\0' && strlen(cause) < 64 ?
	    cause : NULL;
	params[3] = duration != NULL && strspn(duration, "0123456789") ==
	    strlen(duration) && strlen(duration) > 0 && strlen(duration) < 9 ?
	    duration : NULL;
	r = api->db_query(self, "UPDATE telephony_calls SET status = $2, "
	    "answered_at = CASE WHEN $2 = 'in-progress' THEN "
	    "coalesce(answered_at, now()) ELSE answered_at END, "
	    "ended_at = CASE WHEN $2 IN ('completed', 'busy', 'no-answer', "
	    "'failed', 'canceled') THEN coalesce(ended_at, now()) ELSE "
	    "ended_at END, "
	    "duration_s = coalesce($4::int, CASE WHEN $2 = 'completed' AND "
	    "answered_at IS NOT NULL THEN extract(epoch FROM (now() - "
	    "answered_at))::int END, duration_s), "
	    "hangup_cause = coalesce($3, hangup_cause), inflight = false, "
	    "updated_at = now() WHERE id = $1::bigint", 4, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (-1);
	}
	api->db_free(r);
	*changed = 1;
	return (0);
}

/* A status the job or a route sets (not a callback), in its own
 * transaction, then published. */
static int
status_set(const char *ids, const char *st, const char *cause,
    const char *detail, const char *ec, const char *em)
{
	const char	*params[3];
	char		 emb[600];
	int		 changed;

	if (api->db_begin(self) != SB_OK)
		return (-1);
	params[0] = ids;
	params[1] = ec;
	params[2] = tel_scrub(em, emb, sizeof(emb));
	if (status_apply(ids, NULL, st, cause, NULL, NULL, detail, 0,
	    &changed) == -1 || sb_db_count(api, self, "UPDATE telephony_calls "
	    "SET inflight = false, error_code = coalesce($2, error_code), "
	    "error_message = coalesce($3, error_message) WHERE "
	    "id = $1::bigint RETURNING 1", 3, params) == -1 ||
	    api->db_commit(self) != SB_OK) {
		api->db_rollback(self);
		return (-1);
	}
	publish("telephony.call.status", ids);
	return (0);
}

/* The callbacks that came before the job recorded sid: applied now. */
static int
pending_apply(const char *ids, const char *provider, const char *sid,
    int *changed)
{
	struct sb_db_res	*r;
	const char		*params[2] = { provider, sid };
	json_t			*f;
	int			 i, c;

	r = api->db_query(self, "DELETE FROM telephony_call_pending WHERE "
	    "provider = $1 AND provider_call_id = $2 RETURNING status, "
	    "fields::text, id", 2, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (-1);
	}
	for (i = 0; i < api->db_rows(r); i++) {
		f = json_loads(api->db_value(r, i, 1), 0, NULL);
		if (status_apply(ids, provider, strcmp(api->db_value(r, i, 0),
		    "recording") == 0 ? NULL : api->db_value(r, i, 0),
		    sb_jstr(f, "cause"), sb_jstr(f, "duration"),
		    sb_jstr(f, "recording"), NULL, 1, &c) == -1) {
			json_decref(f);
			api->db_free(r);
			return (-1);
		}
		json_decref(f);
		*changed |= c;
	}
	api->db_free(r);
	return (0);
}

/* ---- the place job ---- */

struct placectx {
	struct sb_job	*job;
	char		 ids[24];
	char		 list[256];
	const char	*next;
	const char	*provider;
	char		*to;
	char		*connect_to;
	char		*message;
	int		 record;
	int		 retry;
	unsigned int	 retry_after;
};

static void	place_next(struct placectx *);

static void
zfree(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static void
ctx_free(struct placectx *c)
{
	zfree(c->to);
	zfree(c->connect_to);
	zfree(c->message);
	free(c);
}

static void
call_of(const struct placectx *c, struct tel_call *out)
{
	memset(out, 0, sizeof(*out));
	out->id = strtoll(c->ids, NULL, 10);
	out->to = c->to;
	out->connect_to = c->connect_to;
	out->message = c->message;
	out->record = c->record;
}

static int
hangup_enqueue(const char *ids)
{
	struct sb_job_opts	 opts;
	json_t			*payload;
	char			 key[64];
	int64_t			 rc;

	memset(&opts, 0, sizeof(opts));
	(void)snprintf(key, sizeof(key), "telephony.hangup:%s", ids);
	opts.idempotency_key = key;
	if ((payload = json_pack("{s:I}", "id",
	    (json_int_t)strtoll(ids, NULL, 10))) == NULL)
		return (-1);
	rc = api->job_enqueue(self, HANGUP_KIND, payload, &opts);
	json_decref(payload);
	return (rc == -1 ? -1 : 0);
}

static void
placed(struct sb_plugin *p, const struct tel_send_result *res, void *arg)
{
	struct placectx		*c = arg;
	struct sb_db_res	*r;
	const char		*params[4], *from;
	char			*from_s = NULL, *from_i = NULL;
	int			 changed = 0, hang;

	(void)p;
	switch (res->outcome) {
	case TEL_ACCEPTED:
		if ((from = tel_from_number(c->provider)) != NULL) {
			from_s = api->seal(self, from, strlen(from));
			from_i = tel_phone_index(from);
		}
		params[0] = c->ids;
		params[1] = res->provider_message_id;
		params[2] = from_s;
		params[3] = from_i;
		if (api->db_begin(self) != SB_OK)
			goto dberr;
		if (tel_sid_lock("call", c->provider,
		    res->provider_message_id) == -1) {
			api->db_rollback(self);
			goto dberr;
		}
		r = api->db_query(self, "UPDATE telephony_calls SET "
		    "provider_call_id = $2, from_sealed = $3, from_index = $4, "
		    "started_at = now(), inflight = false, updated_at = now() "
		    "WHERE id = $1::bigint RETURNING hangup_requested", 4,
		    params);
		if (!api->db_ok(r) || api->db_rows(r) != 1) {
			api->db_free(r);
			api->db_rollback(self);
			goto dberr;
		}
		hang = strcmp(api->db_value(r, 0, 0), "t") == 0;
		api->db_free(r);
		if (status_apply(c->ids, c->provider, res->status != NULL ?
		    res->status : "initiated", NULL, NULL, NULL, NULL, 0,
		    &changed) == -1 || pending_apply(c->ids, c->provider,
		    res->provider_message_id, &changed) == -1 ||
		    (hang && hangup_enqueue(c->ids) == -1) ||
		    api->db_commit(self) != SB_OK) {
			api->db_rollback(self);
			goto dberr;
		}
		publish("telephony.call.status", c->ids);
		api->job_done(c->job, json_pack("{s:s}", "provider",
		    c->provider));
		break;
	case TEL_REFUSED:
	case TEL_RETRY:
		api->log(self, SB_LOG_INFO, "call %s: %s did not take it (%s)",
		    c->ids, c->provider, res->detail != NULL ? res->detail :
		    "refused");
		params[0] = c->ids;
		(void)sb_db_count(api, self, "UPDATE telephony_calls SET "
		    "inflight = false WHERE id = $1::bigint RETURNING 1", 1,
		    params);
		if (res->outcome == TEL_RETRY) {
			c->retry = 1;
			if (res->retry_after > c->retry_after)
				c->retry_after = res->retry_after;
		}
		place_next(c);
		return;
	case TEL_REJECTED:
		if (status_set(c->ids, "failed", res->error_code != NULL ?
		    res->error_code : "rejected", res->detail, res->error_code,
		    res->error_message) == -1)
			goto dberr;
		api->job_done(c->job, json_pack("{s:s}", "status", "failed"));
		break;
	case TEL_AMBIGUOUS:
		if (status_set(c->ids, "failed", "unknown", res->detail != NULL ?
		    res->detail : "the provider may have placed the call; not "
		    "placed again", NULL, NULL) == -1)
			goto dberr;
		api->job_done(c->job, json_pack("{s:s}", "status", "failed"));
		break;
	}
	free(from_s);
	free(from_i);
	ctx_free(c);
	return;
dberr:
	/* Left inflight: the job's next run will not place it again. */
	free(from_s);
	free(from_i);
	api->job_retry(c->job, "database error", 0);
	ctx_free(c);
}

static void
place_next(struct placectx *c)
{
	const struct tel_provider	*tp = NULL;
	struct tel_call			 call;
	const char			*s, *e, *why, *params[2];

	call_of(c, &call);
	for (s = c->next; s != NULL && *s != '\0'; s = *e == ',' ? e + 1 : e) {
		e = s + strcspn(s, ",");
		tp = tel_provider_find(s, (size_t)(e - s));
		if (tel_provider_ready(tp, TEL_CHAN_VOICE) &&
		    tp->place_call != NULL && (tp->call_ok == NULL ||
		    tp->call_ok(&call, &why))) {
			c->next = *e == ',' ? e + 1 : e;
			break;
		}
		tp = NULL;
	}
	if (tp == NULL) {
		c->next = NULL;
		if (api->job_attempt(c->job) >= PLACE_ATTEMPTS) {
			if (status_set(c->ids, "failed", "no_provider", "no "
			    "provider took the call", NULL, NULL) == -1)
				api->job_retry(c->job, "database error", 0);
			else
				api->job_done(c->job, NULL);
		} else
			api->job_retry(c->job, c->retry ? "provider asked to "
			    "retry" : "no provider took the call",
			    c->retry_after);
		ctx_free(c);
		return;
	}
	c->provider = tp->name;
	params[0] = c->ids;
	params[1] = tp->name;
	/* From here the request may leave: a lost worker means never
	 * again. */
	switch (sb_db_count(api, self, "UPDATE telephony_calls SET inflight = "
	    "true, provider = $2, updated_at = now() WHERE id = $1::bigint AND "
	    "status = 'queued' AND NOT inflight RETURNING 1", 2, params)) {
	case 1:
		break;
	case 0:
		/* Hung up (canceled) or erased meanwhile. */
		api->job_done(c->job, NULL);
		ctx_free(c);
		return;
	default:
		api->job_retry(c->job, "database error", 0);
		ctx_free(c);
		return;
	}
	if (tp->place_call(self, &call, placed, c) != SB_OK) {
		params[0] = c->ids;
		(void)sb_db_count(api, self, "UPDATE telephony_calls SET "
		    "inflight = false WHERE id = $1::bigint RETURNING 1", 1,
		    params);
		place_next(c);
	}
}

static void
place_run(struct sb_job *job)
{
	struct sb_db_res	*r;
	struct placectx		*c;
	json_int_t		 id = sb_jint(api->job_payload(job), "id");
	const char		*params[1];

	if (id <= 0) {
		api->job_fail(job, "payload.id is not an id");
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		api->job_retry(job, "out of memory", 0);
		return;
	}
	c->job = job;
	(void)snprintf(c->ids, sizeof(c->ids), "%lld", (long long)id);
	params[0] = c->ids;
	r = api->db_query(self, "SELECT status, inflight, provider, to_sealed, "
	    "connect_to_sealed, message_sealed, record FROM telephony_calls "
	    "WHERE id = $1::bigint", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		api->job_retry(job, "database error", 0);
		ctx_free(c);
		return;
	}
	if (api->db_rows(r) != 1 ||
	    strcmp(api->db_value(r, 0, 0), "queued") != 0) {
		/* Erased, hung up before it was placed, or placed. */
		api->db_free(r);
		api->job_done(job, NULL);
		ctx_free(c);
		return;
	}
	if (strcmp(api->db_value(r, 0, 1), "t") == 0) {
		api->db_free(r);
		if (status_set(c->ids, "failed", "unknown", "placing was "
		    "interrupted after its request may have left; not placed "
		    "again", NULL, NULL) == -1)
			api->job_retry(job, "database error", 0);
		else
			api->job_done(job, json_pack("{s:s}", "status",
			    "failed"));
		ctx_free(c);
		return;
	}
	c->to = api->unseal(self, api->db_value(r, 0, 3), NULL);
	if (!api->db_isnull(r, 0, 4))
		c->connect_to = api->unseal(self, api->db_value(r, 0, 4), NULL);
	if (!api->db_isnull(r, 0, 5))
		c->message = api->unseal(self, api->db_value(r, 0, 5), NULL);
	c->record = strcmp(api->db_value(r, 0, 6), "t") == 0;
	if (c->to == NULL || (!api->db_isnull(r, 0, 4) &&
	    c->connect_to == NULL) || (!api->db_isnull(r, 0, 5) &&
	    c->message == NULL) || tel_candidates("voice",
	    sb_jstr(api->job_payload(job), "provider"), c->to,
	    c->list, sizeof(c->list)) == -1) {
		api->db_free(r);
		if (status_set(c->ids, "failed", "no_route", c->to == NULL ?
		    "cannot unseal the call" : "no route for this number",
		    NULL, NULL) == -1)
			api->job_retry(job, "database error", 0);
		else
			api->job_done(job, NULL);
		ctx_free(c);
		return;
	}
	api->db_free(r);
	c->next = c->list;
	place_next(c);
}

/* ---- hangup ---- */

static void
call_hangup(struct sb_req *req)
{
	const struct tel_provider	*tp;
	struct sb_db_res		*r;
	const char			*id = sb_positive_id(api->req_param(req,
					    "id"));
	const char			*params[1], *st;
	json_t				*m;
	int				 dberr, code = 202;

	if (id == NULL) {
		api->respond_error(req, 404, "NOT_FOUND", "no such call", NULL);
		return;
	}
	params[0] = id;
	if (api->db_begin(self) != SB_OK) {
		tel_err_db(req);
		return;
	}
	r = api->db_query(self, "SELECT status, inflight, provider, "
	    "provider_call_id FROM telephony_calls WHERE id = $1::bigint FOR "
	    "UPDATE", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		goto dberr;
	}
	if (api->db_rows(r) != 1) {
		api->db_free(r);
		api->db_rollback(self);
		api->respond_error(req, 404, "NOT_FOUND", "no such call", NULL);
		return;
	}
	st = api->db_value(r, 0, 0);
	if (terminal(st)) {
		api->db_free(r);
		api->db_rollback(self);
		api->respond_error(req, 409, "CONFLICT", "the call has ended",
		    NULL);
		return;
	}
	tp = api->db_isnull(r, 0, 2) ? NULL : tel_provider_find(
	    api->db_value(r, 0, 2), strlen(api->db_value(r, 0, 2)));
	if (api->db_isnull(r, 0, 3) && strcmp(api->db_value(r, 0, 1), "f") ==
	    0) {
		/* Not placed yet, nor being placed: it never will be. */
		api->db_free(r);
		if (status_apply(id, NULL, "canceled", "canceled", NULL, NULL,
		    "hung up before it was placed", 0, &dberr) == -1)
			goto dberr;
		code = 200;
	} else if (tp != NULL && tp->hangup == NULL) {
		api->db_free(r);
		api->db_rollback(self);
		api->respond_error(req, 409, "CONFLICT", "this call's provider "
		    "offers no way to end a call", NULL);
		return;
	} else if (api->db_isnull(r, 0, 3)) {
		/* Being placed: the place job asks for the hangup once the
		 * provider has the call. */
		api->db_free(r);
		if (sb_db_count(api, self, "UPDATE telephony_calls SET "
		    "hangup_requested = true WHERE id = $1::bigint RETURNING 1",
		    1, params) != 1)
			goto dberr;
	} else {
		api->db_free(r);
		if (hangup_enqueue(id) == -1)
			goto dberr;
	}
	if (api->db_commit(self) != SB_OK)
		goto dberr;
	if (code == 200)
		publish("telephony.call.status", id);
	if ((m = call_load(id, 1, &dberr)) == NULL)
		tel_err_db(req);
	else
		api->respond_json(req, code, m);
	return;
dberr:
	api->db_rollback(self);
	tel_err_db(req);
}

static void
hung(struct sb_plugin *p, const struct tel_send_result *res, void *arg)
{
	struct sb_job	*job = arg;

	(void)p;
	switch (res->outcome) {
	case TEL_ACCEPTED:
		api->job_done(job, NULL);
		break;
	case TEL_REJECTED:
		/* The provider says it has ended (or knows no such call):
		 * its callback brings the final status. */
		api->job_done(job, json_pack("{s:s}", "detail",
		    res->detail != NULL ? res->detail : "rejected"));
		break;
	default:
		api->job_retry(job, res->detail != NULL ? res->detail :
		    "the provider did not take the hangup", res->retry_after);
		break;
	}
}

static void
hangup_run(struct sb_job *job)
{
	const struct tel_provider	*tp;
	struct sb_db_res		*r;
	struct tel_call			 c;
	char				 ids[24], sid[80], st[16];
	const char			*params[1];

	(void)snprintf(ids, sizeof(ids), "%lld",
	    (long long)sb_jint(api->job_payload(job), "id"));
	params[0] = ids;
	r = api->db_query(self, "SELECT status, provider, provider_call_id "
	    "FROM telephony_calls WHERE id = $1::bigint", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		api->job_retry(job, "database error", 0);
		return;
	}
	if (api->db_rows(r) != 1 || terminal(api->db_value(r, 0, 0)) ||
	    api->db_isnull(r, 0, 1) || api->db_isnull(r, 0, 2) ||
	    (tp = tel_provider_find(api->db_value(r, 0, 1),
	    strlen(api->db_value(r, 0, 1)))) == NULL || tp->hangup == NULL) {
		api->db_free(r);
		api->job_done(job, NULL);
		return;
	}
	(void)snprintf(st, sizeof(st), "%s", api->db_value(r, 0, 0));
	(void)snprintf(sid, sizeof(sid), "%s", api->db_value(r, 0, 2));
	api->db_free(r);
	memset(&c, 0, sizeof(c));
	c.id = strtoll(ids, NULL, 10);
	c.status = st;
	if (tp->hangup(self, sid, &c, hung, job) != SB_OK)
		api->job_retry(job, "cannot ask the provider", 0);
}

/* ---- webhooks ---- */

/*
 * One provider callback about call sid: applied to the call, or kept for
 * the place job when it has not recorded the sid yet.  st NULL: only a
 * recording.
 */
static void
callback(struct sb_req *req, const char *prov, const char *sid,
    const char *st, const char *cause, const char *duration,
    const char *recording)
{
	struct sb_db_res	*r;
	const char		*params[4];
	char			 ids[24];
	json_t			*f;
	char			*fs;
	int			 changed = 0;

	if (sid == NULL || strlen(sid) > 64 || (st == NULL &&
	    (recording == NULL || *recording == '\0'))) {
		tel_hook_ok(req, prov);
		return;
	}
	if (api->db_begin(self) != SB_OK) {
		tel_err_db(req);
		return;
	}
	if (tel_sid_lock("call", prov, sid) == -1)
		goto dberr;
	params[0] = sid;
	params[1] = prov;
	r = api->db_query(self, "SELECT id FROM telephony_calls WHERE "
	    "provider = $2 AND provider_call_id = $1", 2, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		goto dberr;
	}
	if (api->db_rows(r) != 1) {
		/* Before the place job recorded the sid: kept for it. */
		api->db_free(r);
		f = json_pack("{s:s?, s:s?, s:s?}", "cause", cause, "duration",
		    duration, "recording", recording);
		fs = f != NULL ? json_dumps(f, JSON_COMPACT) : NULL;
		json_decref(f);
		params[0] = prov;
		params[1] = sid;
		params[2] = st != NULL ? st : "recording";
		params[3] = fs;
		if (fs == NULL || sb_db_count(api, self, "INSERT INTO "
		    "telephony_call_pending (provider, provider_call_id, status, "
		    "fields) VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT DO "
		    "NOTHING RETURNING 1", 4, params) == -1 ||
		    api->db_commit(self) != SB_OK) {
			free(fs);
			goto dberr;
		}
		free(fs);
		tel_hook_ok(req, prov);
		return;
	}
	(void)snprintf(ids, sizeof(ids), "%s", api->db_value(r, 0, 0));
	api->db_free(r);
	if (status_apply(ids, prov, st, cause, duration, recording, NULL, 1,
	    &changed) == -1 || api->db_commit(self) != SB_OK)
		goto dberr;
	if (changed)
		publish("telephony.call.status", ids);
	tel_hook_ok(req, prov);
	return;
dberr:
	api->db_rollback(self);
	tel_err_db(req);
}

/*
 * A call to our Twilio number (its Voice URL is this webhook): logged as
 * an inbound call with the caller found or created as a customer, once
 * per CallSid, and answered with TwiML: bridged to inbound_connect_to
 * when set, else an empty <Response/> (Twilio ends the call).  Its status
 * callbacks, when the number has them, update it like any call's.
 */
static void
inbound_call(struct sb_req *req, json_t *f)
{
	struct sb_db_res	*r;
	const char		*sid = sb_jstr(f, "CallSid"), *st, *params[9];
	const char		*conn = api->config_get(self, "inbound_connect_to");
	char			 from[32], to[32], cids[24], ids[24];
	char			*fs = NULL, *fi = NULL, *ts = NULL, *ti = NULL;
	char			*esc = NULL, *xml = NULL;
	int64_t			 cid;
	int			 created = 0;

	st = sb_jstr(f, "CallStatus");
	if (st == NULL || status_rank(st) < 1 || status_rank(st) > 3)
		st = "ringing";
	if (sid == NULL || strlen(sid) > 64 || sb_jstr(f, "From") == NULL ||
	    sb_jstr(f, "To") == NULL ||
	    tel_normalise(sb_jstr(f, "From"), from, sizeof(from)) != SB_OK ||
	    tel_normalise(sb_jstr(f, "To"), to, sizeof(to)) != SB_OK) {
		/* A withheld or SIP caller: nothing to file it under. */
		tel_twiml(req, TEL_TWIML_EMPTY);
		return;
	}
	fs = api->seal(self, from, strlen(from));
	ts = api->seal(self, to, strlen(to));
	fi = tel_phone_index(from);
	ti = tel_phone_index(to);
	if (fs == NULL || ts == NULL || fi == NULL || ti == NULL) {
		api->respond_error(req, 503, "UNAVAILABLE", "no data key",
		    NULL);
		goto done;
	}
	if (api->db_begin(self) != SB_OK)
		goto dberr;
	if (tel_sid_lock("call", "twilio", sid) == -1 ||
	    (cid = tel_dir->find_or_create(self, from, NULL)) == -1)
		goto rollback;
	(void)snprintf(cids, sizeof(cids), "%lld", (long long)cid);
	params[0] = ts;
	params[1] = ti;
	params[2] = fs;
	params[3] = fi;
	params[4] = sid;
	params[5] = cids;
	params[6] = st;
	r = api->db_query(self, "INSERT INTO telephony_calls (direction, "
	    "to_sealed, to_index, from_sealed, from_index, provider, "
	    "provider_call_id, customer_id, status, started_at) VALUES "
	    "('inbound', $1, $2, $3, $4, 'twilio', $5, $6::bigint, $7, now()) "
	    "ON CONFLICT DO NOTHING RETURNING id", 7, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		goto rollback;
	}
	if (api->db_rows(r) == 1) {
		created = 1;
		(void)snprintf(ids, sizeof(ids), "%s", api->db_value(r, 0, 0));
	}
	api->db_free(r);
	if ((created && event_add(ids, st, "inbound", "twilio:inbound",
	    NULL) == -1) || api->db_commit(self) != SB_OK)
		goto rollback;
	if (created)
		publish("telephony.call.created", ids);
	if (conn != NULL && *conn != '\0' && (esc = tel_xml_escape(conn)) !=
	    NULL && asprintf(&xml, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
	    "<Response><Dial>%s%s%s</Dial></Response>",
	    strncmp(conn, "sip:", 4) == 0 ? "<Sip>" : "<Number>", esc,
	    strncmp(conn, "sip:", 4) == 0 ? "</Sip>" : "</Number>") != -1)
		tel_twiml(req, xml);
	else
		tel_twiml(req, TEL_TWIML_EMPTY);
	goto done;
rollback:
	api->db_rollback(self);
dberr:
	tel_err_db(req);
done:
	explicit_bzero(from, sizeof(from));
	explicit_bzero(to, sizeof(to));
	free(fs);
	free(fi);
	free(ts);
	free(ti);
	free(esc);
	free(xml);
}

/*
 * Twilio: CallStatus is already ours (queued, initiated, ringing,
 * in-progress, completed, busy, no-answer, failed, canceled); `queued`
 * says nothing new.  CallDuration on the end; RecordingUrl on the
 * recording's own callback (RecordingStatus).  The hangup cause of a
 * call that did not complete is its status, or the SIP code Twilio
 * reports.
 */
static void
webhook_twilio_voice(struct sb_req *req)
{
	const char	*cs, *rec, *sip, *cause = NULL;
	char		 sipbuf[32];
	json_t		*f;

	if ((f = tel_twilio_hook(req)) == NULL)
		return;
	cs = sb_jstr(f, "CallStatus");
	rec = sb_jstr(f, "RecordingUrl");
	if (sb_jstr(f, "RecordingStatus") != NULL) {
		/* The recording's callback: its status is not the call's. */
		if (strcmp(sb_jstr(f, "RecordingStatus"), "completed") != 0)
			rec = NULL;
		cs = NULL;
	}
	if (cs != NULL && (status_rank(cs) <= 0))
		cs = NULL;
	if (cs != NULL && terminal(cs)) {
		sip = sb_jstr(f, "SipResponseCode");
		if (strcmp(cs, "completed") == 0)
			cause = "normal_clearing";
		else if (sip != NULL && strspn(sip, "0123456789") ==
		    strlen(sip) && strlen(sip) <= 3 && *sip != '\0') {
			(void)snprintf(sipbuf, sizeof(sipbuf), "sip_%s", sip);
			cause = sipbuf;
		} else
			cause = cs;
	}
	/* A call to our number asks its Voice URL what to do: no
	 * CallbackSource, Direction inbound. */
	if (sb_jstr(f, "CallbackSource") == NULL && sb_jstr(f,
	    "RecordingStatus") == NULL && sb_jstr(f, "Direction") != NULL &&
	    strcmp(sb_jstr(f, "Direction"), "inbound") == 0)
		inbound_call(req, f);
	else
		callback(req, "twilio", sb_jstr(f, "CallSid"), cs, cause,
		    cs != NULL && strcmp(cs, "completed") == 0 ?
		    sb_jstr(f, "CallDuration") : NULL, rec);
	json_decref(f);
}

/*
 * Exotel: Status completed, failed, busy or no-answer once the call is
 * over (EventType terminal, or no EventType from the plain callback);
 * EventType answered means in-progress.  ConversationDuration is the
 * time both legs talked.
 */
static void
webhook_exotel_voice(struct sb_req *req)
{
	const char	*st, *ev, *our = NULL;
	json_t		*f;

	if ((f = tel_exotel_hook(req)) == NULL)
		return;
	st = sb_jstr(f, "Status");
	ev = sb_jstr(f, "EventType");
	if (ev != NULL && strcasecmp(ev, "answered") == 0)
		our = "in-progress";
	else if (st != NULL && (strcmp(st, "completed") == 0 ||
	    strcmp(st, "failed") == 0 || strcmp(st, "busy") == 0 ||
	    strcmp(st, "no-answer") == 0))
		our = st;
	else if (st != NULL && strcmp(st, "in-progress") == 0)
		our = "in-progress";
	callback(req, "exotel", sb_jstr(f, "CallSid"), our,
	    our != NULL && terminal(our) ? (strcmp(our, "completed") == 0 ?
	    "normal_clearing" : our) : NULL,
	    our != NULL && strcmp(our, "completed") == 0 ?
	    sb_jstr(f, "ConversationDuration") : NULL,
	    sb_jstr(f, "RecordingUrl"));
	json_decref(f);
}

/* Retention: callbacks for calls never recorded (not ours). */
static long long
pending_purge(struct sb_plugin *p, const char *cutoff)
{
	const char	*params[1] = { cutoff };

	return (sb_db_count(api, p, "DELETE FROM telephony_call_pending WHERE "
	    "received_at < $1::timestamptz RETURNING 1", 1, params));
}

static const struct sb_retention pending_retention = {
	.size = sizeof(struct sb_retention),
	.name = "pending_call_callbacks",
	.default_days = 2,
	.description = "Provider call status callbacks for call ids the "
	    "plugin never recorded",
	.purge = pending_purge,
};

/* ---- timeline, privacy, key rotation, stats ---- */

json_t *
tel_calls_timeline(struct sb_plugin *p, int64_t customer_id,
    const json_t *before, unsigned int limit)
{
	struct sb_timeline_args	 a;
	struct sb_db_res	*r;
	char			 summary[96];
	json_t			*out, *row;
	int			 i;

	sb_timeline_args(&a, customer_id, before, limit);
	r = api->db_query(p, "SELECT id, direction, status, duration_s, "
	    SB_SQL_TS("created_at") " AS at FROM telephony_calls WHERE "
	    SB_TIMELINE_WHERE("call") " ORDER BY created_at DESC, id DESC "
	    "LIMIT $5::int", 5, a.params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (NULL);
	}
	out = json_array();
	for (i = 0; i < api->db_rows(r); i++) {
		if (api->db_isnull(r, i, 3))
			(void)snprintf(summary, sizeof(summary), "%s call, %s",
			    strcmp(api->db_value(r, i, 1), "inbound") == 0 ?
			    "Inbound" : "Outbound", api->db_value(r, i, 2));
		else
			(void)snprintf(summary, sizeof(summary), "%s call, %s, "
			    "%s s", strcmp(api->db_value(r, i, 1), "inbound") ==
			    0 ? "Inbound" : "Outbound", api->db_value(r, i, 2),
			    api->db_value(r, i, 3));
		row = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:s}",
		    "channel", "call", "kind", "call", "id",
		    (json_int_t)strtoll(api->db_value(r, i, 0), NULL, 10),
		    "direction", api->db_value(r, i, 1),
		    "status", api->db_value(r, i, 2),
		    "summary", summary, "at", api->db_value(r, i, 4));
		if (row != NULL)
			json_array_append_new(out, row);
	}
	api->db_free(r);
	return (out);
}

/* kind 0: param is a customer id; 1: a phone number's blind index. */
json_t *
tel_calls_export(struct sb_plugin *p, int kind, const char *param)
{
	struct sb_db_res	*r;
	json_t			*arr;
	int			 i;

	r = api->db_query(p, kind == 0 ? "SELECT " CALL_COLS " FROM "
	    "telephony_calls WHERE customer_id = $1::bigint ORDER BY id" :
	    "SELECT " CALL_COLS " FROM telephony_calls WHERE to_index = $1 OR "
	    "from_index = $1 ORDER BY id", 1, &param);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (NULL);
	}
	arr = json_array();
	for (i = 0; i < api->db_rows(r); i++)
		json_array_append_new(arr, call_json(api->db_row_json(r, i)));
	api->db_free(r);
	return (arr);
}

long long
tel_calls_erase(struct sb_plugin *p, int kind, const char *param)
{
	return (sb_db_count(api, p, kind == 0 ? "DELETE FROM telephony_calls "
	    "WHERE customer_id = $1::bigint RETURNING 1" : "DELETE FROM "
	    "telephony_calls WHERE to_index = $1 OR from_index = $1 "
	    "RETURNING 1", 1, &param));
}

/* Re-seal the numbers, bridge targets and messages of up to batch calls
 * after state.calls_after: 1 while there are more. */
int
tel_calls_rekey(struct sb_plugin *p, json_t *state, unsigned int batch,
    unsigned int *resealed)
{
	static const char *const cols[] = { "to_sealed", "from_sealed",
		"connect_to_sealed", "message_sealed", NULL };

	return (sb_rekey_table(api, p, "telephony_calls", cols, state,
	    "calls_after", batch, resealed));
}

int
tel_calls_stats(struct sb_plugin *p, json_t *out)
{
	json_t	*j;

	j = sb_db_json(api, p, "SELECT json_build_object('calls', (SELECT "
	    "coalesce(json_agg(x), '[]') FROM (SELECT coalesce(provider, "
	    "'none') AS provider, status, direction, count(*) AS count FROM "
	    "telephony_calls GROUP BY 1, 2, 3 ORDER BY 1, 2, 3) x))::text", 0,
	    NULL);
	if (j == NULL)
		return (SB_ERROR);
	json_object_update(out, j);
	json_decref(j);
	return (SB_OK);
}

/* ---- setup ---- */

int
tel_calls_setup(struct sb_plugin *p)
{
	static const char *const pace_keys[] = { "twilio_calls_per_second",
		"exotel_calls_per_second", NULL };
	const char	*v;
	char		*end;
	long long	 n;
	double		 d;
	size_t		 i;

	api = tel_api;
	self = p;
	n = api->config_int(p, "calls_per_minute", 10);
	if (n < 0 || n > 100000) {
		api->log(p, SB_LOG_ERROR, "calls_per_minute must be 0..100000");
		return (SB_ERROR);
	}
	calls_per_minute = (unsigned int)n;
	for (i = 0; pace_keys[i] != NULL; i++) {
		v = api->config_get(p, pace_keys[i]);
		if (v == NULL || *v == '\0')
			continue;
		d = strtod(v, &end);
		if (*end != '\0' || d < 0 || d > 1000) {
			api->log(p, SB_LOG_ERROR, "%s must be a number 0..1000 "
			    "(0: no pace)", pace_keys[i]);
			return (SB_ERROR);
		}
	}
	v = api->config_get(p, "inbound_connect_to");
	if (v != NULL && *v != '\0') {
		char	out[208];

		if (connect_norm(v, out, sizeof(out)) == -1 ||
		    strcmp(out, v) != 0) {
			api->log(p, SB_LOG_ERROR, "inbound_connect_to must be an "
			    "E.164 number or a sip: URI");
			return (SB_ERROR);
		}
	}
	if (api->permission_add(p, "voice.read", "Read calls, their events "
	    "and statistics") != SB_OK ||
	    api->permission_add(p, "voice.place", "Place and end calls") !=
	    SB_OK ||
	    api->routes_add(p, routes) != SB_OK ||
	    api->job_kind_add(p, &place_kind) != SB_OK ||
	    api->job_kind_add(p, &hangup_kind) != SB_OK ||
	    api->retention_add(p, &pending_retention) != SB_OK ||
	    api->event_declare(p, "telephony.call.created", "A call was "
	    "queued (room telephony; no numbers)") != SB_OK ||
	    api->event_declare(p, "telephony.call.status", "A call changed "
	    "status (room telephony)") != SB_OK)
		return (SB_ERROR);
	return (SB_OK);
}
