/*
 * Meta's webhook (API.md "WhatsApp"): the verification GET, and the POST
 * of messages and statuses, verified with the app secret over the raw
 * bytes (X-Hub-Signature-256) before anything is parsed.  The POST only
 * parses (payload.c), seals what is personal and writes one row per
 * message or status into the durable inbox, in one statement, and
 * answers 200; a drain job applies the inbox in batches: conversations,
 * messages, customers, statuses.  Every item is idempotent on its
 * WhatsApp message id (and status), so a payload delivered twice changes
 * nothing the second time.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include <switchboard/plugin.h>
#include <switchboard/helpers.h>

#include "wa.h"

#define api	wa_api
#define self	wa_self

#define DRAIN_KIND	"whatsapp.inbox_drain"
#define SWEEP_KIND	"whatsapp.inbox_sweep"
#define DRAIN_BATCH	500
#define DRAIN_BUCKET_MS	50
#define DRAIN_MARGIN_MS	5
#define SWEEP_EVERY_S	10
#define HOOK_BODY_MAX	(3 * 1024 * 1024)

static void	hook_verify(struct sb_req *);
static void	hook_post(struct sb_req *);
static void	drain_run(struct sb_job *);

static const struct sb_route routes[] = {
	{ .method = "GET", .path = "/api/v1/whatsapp/webhook",
	  .flags = SB_ROUTE_PUBLIC, .handler = hook_verify,
	  .rate = { .requests = 60, .seconds = 60 },
	  .summary = "Meta's webhook verification (hub.mode, "
	  "hub.verify_token, hub.challenge)" },
	{ .method = "POST", .path = "/api/v1/whatsapp/webhook",
	  .flags = SB_ROUTE_PUBLIC | SB_ROUTE_WEBHOOK, .handler = hook_post,
	  .body_max = HOOK_BODY_MAX,
	  .summary = "Meta's messages and statuses (X-Hub-Signature-256)" },
	SB_ROUTE_END
};

static const struct sb_job_kind drain_kind = {
	.name = DRAIN_KIND, .run = drain_run, .max_attempts = 8,
	.timeout_s = 60, .backoff_s = 1
};

static const struct sb_job_kind sweep_kind = {
	.name = SWEEP_KIND, .run = drain_run, .max_attempts = 1,
	.timeout_s = 60, .interval_s = SWEEP_EVERY_S
};

/* ---- verification ---- */

static int
same(const char *a, const char *b)
{
	size_t	n = strlen(a);

	return (n == strlen(b) && CRYPTO_memcmp(a, b, n) == 0);
}

static void
hook_verify(struct sb_req *req)
{
	const char	*mode = api->req_query(req, "hub.mode");
	const char	*token = api->req_query(req, "hub.verify_token");
	const char	*challenge = api->req_query(req, "hub.challenge");
	size_t		 i, n;

	if (mode == NULL || strcmp(mode, "subscribe") != 0 ||
	    challenge == NULL || (n = strlen(challenge)) == 0 || n > 256) {
		api->respond_error(req, 400, "VALIDATION_ERROR", "a "
		    "verification needs hub.mode=subscribe and hub.challenge",
		    NULL);
		return;
	}
	for (i = 0; i < n; i++)
		if (challenge[i] <= ' ' || challenge[i] > '~') {
			api->respond_error(req, 400, "VALIDATION_ERROR",
			    "hub.challenge must be printable", NULL);
			return;
		}
	if (wa_conf.verify_token == NULL || token == NULL ||
	    !same(token, wa_conf.verify_token)) {
		api->respond_error(req, 403, "FORBIDDEN", "the verify token "
		    "does not match", NULL);
		return;
	}
	api->respond_raw(req, 200, "text/plain; charset=utf-8", challenge, n);
}

/* ---- the POST: into the inbox ---- */

/* The drain of this 50 ms bucket is due at its end. */
static void
drain_wake(void)
{
	static long long	 last = -1;
	struct sb_job_opts	 opts;
	struct timespec		 ts;
	long long		 now, bucket;
	char			 key[64];

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	bucket = now / DRAIN_BUCKET_MS;
	if (bucket == last)
		return;
	memset(&opts, 0, sizeof(opts));
	(void)snprintf(key, sizeof(key), "whatsapp.inbox@%lld", bucket);
	opts.idempotency_key = key;
	opts.delay_ms = (bucket + 1) * DRAIN_BUCKET_MS - now + DRAIN_MARGIN_MS;
	if (api->job_enqueue(self, DRAIN_KIND, NULL, &opts) != -1)
		last = bucket;
}

/* it.key (a string) sealed into it.key_sealed; -1 without a key. */
static int
seal_field(json_t *it, const char *key, const char *sealed_key)
{
	const char	*v = sb_jstr(it, key);
	char		*s;

	if (v == NULL)
		return (0);
	if ((s = api->seal(self, v, strlen(v))) == NULL)
		return (-1);
	json_object_set_new(it, sealed_key, json_string(s));
	free(s);
	json_object_del(it, key);
	return (0);
}

/*
 * An item of wa_payload_parse as an inbox row {dedupe, kind, fields}:
 * the customer's number sealed with its blind index, texts sealed.
 * NULL for an item that is not for our number; -1 in *bad without a key.
 */
static json_t *
inbox_row(json_t *it, int *bad)
{
	const char	*kind, *pid;
	json_t		*row;
	char		 e164[32], dedupe[192], *index;

	/* A constant: the item's own string goes with json_object_del. */
	kind = strcmp(sb_jstr(it, "kind"), "status") == 0 ? "status" :
	    "message";
	pid = sb_jstr(it, "phone_number_id");
	if (wa_conf.phone_number_id != NULL && (pid == NULL ||
	    strcmp(pid, wa_conf.phone_number_id) != 0))
		return (NULL);
	json_object_del(it, "phone_number_id");
	if (strcmp(kind, "status") == 0) {
		/* The recipient is ours already; not kept. */
		json_object_del(it, "recipient_id");
		(void)snprintf(dedupe, sizeof(dedupe), "s:%s:%s",
		    sb_jstr(it, "id"), sb_jstr(it, "status"));
	} else {
		if (wa_e164_from_waid(sb_jstr(it, "from"), e164,
		    sizeof(e164)) == -1)
			return (NULL);
		if ((index = wa_phone_index(e164)) == NULL) {
			*bad = 1;
			return (NULL);
		}
		json_object_set_new(it, "from", json_string(e164));
		json_object_set_new(it, "from_index", json_string(index));
		free(index);
		explicit_bzero(e164, sizeof(e164));
		if (seal_field(it, "from", "from_sealed") == -1 ||
		    seal_field(it, "text", "text_sealed") == -1 ||
		    seal_field(it, "caption", "caption_sealed") == -1) {
			*bad = 1;
			return (NULL);
		}
		(void)snprintf(dedupe, sizeof(dedupe), "m:%s",
		    sb_jstr(it, "id"));
	}
	json_object_del(it, "kind");
	row = json_pack("{s:s, s:s, s:O}", "d", dedupe, "k", kind, "f", it);
	return (row);
}

static void
hook_post(struct sb_req *req)
{
	const void	*body;
	const char	*params[1];
	json_t		*items, *rows, *it, *row;
	char		 err[128], *rows_s;
	size_t		 len, skipped = 0, i;
	long long	 n;
	int		 bad = 0;

	if (wa_conf.app_secret == NULL) {
		api->respond_error(req, 503, "UNAVAILABLE", "the webhook is not "
		    "configured (app_secret)", NULL);
		return;
	}
	body = api->req_body(req, &len);
	if (!wa_signature_ok(wa_conf.app_secret, body != NULL ? body : "",
	    len, api->req_header(req, "x-hub-signature-256"))) {
		api->respond_error(req, 401, "UNAUTHENTICATED", "missing or bad "
		    "X-Hub-Signature-256", NULL);
		return;
	}
	if ((items = wa_payload_parse(body, len, &skipped, err,
	    sizeof(err))) == NULL) {
		api->respond_error(req, 400, "VALIDATION_ERROR", err, NULL);
		return;
	}
	if (skipped > 0)
		api->log(self, SB_LOG_WARN, "webhook: %zu item(s) left out "
		    "(malformed or not handled)", skipped);
	rows = json_array();
	json_array_foreach(items, i, it) {
		if ((row = inbox_row(it, &bad)) != NULL)
			json_array_append_new(rows, row);
		if (bad)
			break;
	}
	json_decref(items);
	if (bad) {
		json_decref(rows);
		api->respond_error(req, 503, "UNAVAILABLE", "no data key",
		    NULL);
		return;
	}
	if (json_array_size(rows) == 0) {
		json_decref(rows);
		api->respond_json(req, 200, json_pack("{s:i}", "received", 0));
		return;
	}
	rows_s = json_dumps(rows, JSON_COMPACT);
	json_decref(rows);
	if (rows_s == NULL) {
		wa_err_db(req);
		return;
	}
	params[0] = rows_s;
	n = sb_db_count(api, self, "INSERT INTO whatsapp_inbox (dedupe, kind, "
	    "fields) SELECT r->>'d', r->>'k', r->'f' FROM jsonb_array_elements("
	    "$1::jsonb) AS a (r) ON CONFLICT (dedupe) DO NOTHING RETURNING 1",
	    1, params);
	explicit_bzero(rows_s, strlen(rows_s));
	free(rows_s);
	if (n == -1) {
		wa_err_db(req);
		return;
	}
	if (n > 0)
		drain_wake();
	api->respond_json(req, 200, json_pack("{s:I}", "received",
	    (json_int_t)n));
}

/* ---- statuses ---- */

static int
rank(const char *st)
{
	static const char *const order[] = { "queued", "sent", "failed",
		"delivered", "read", NULL };
	int	i;

	for (i = 0; st != NULL && order[i] != NULL; i++)
		if (strcmp(st, order[i]) == 0)
			return (i);
	return (-1);
}

/* The message id of biz_opaque "sb:<id>", or 0. */
static int64_t
opaque_id(const char *biz_opaque)
{
	const char	*id;

	if (biz_opaque == NULL || strncmp(biz_opaque, "sb:", 3) != 0 ||
	    (id = sb_positive_id(biz_opaque + 3)) == NULL)
		return (0);
	return (strtoll(id, NULL, 10));
}

int
wa_status_apply(int64_t msg_id, const char *wamid, const char *st,
    const char *at_unix, json_t *error, const char *biz_opaque,
    json_t *pubs)
{
	struct sb_db_res	*r;
	const char		*params[6];
	char			 ids[24], codes[24], detail[1400], *fs;
	json_t			*m, *f;
	long long		 n;
	int			 was, now;

	if ((now = rank(st)) <= 0)
		return (0);
	if (msg_id <= 0 && wamid == NULL)
		return (0);
	if (msg_id > 0)
		(void)snprintf(ids, sizeof(ids), "%lld", (long long)msg_id);
	params[0] = msg_id > 0 ? ids : NULL;
	params[1] = wamid;
	r = api->db_query(self, "SELECT id, status FROM whatsapp_messages "
	    "WHERE direction = 'outbound' AND CASE WHEN $1::bigint IS NOT NULL "
	    "THEN id = $1::bigint ELSE wa_message_id = $2 END FOR UPDATE", 2,
	    params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (-1);
	}
	if (api->db_rows(r) == 0 && msg_id <= 0 && opaque_id(biz_opaque) > 0) {
		/* Adopted: the send whose answer was lost. */
		api->db_free(r);
		(void)snprintf(ids, sizeof(ids), "%lld",
		    (long long)opaque_id(biz_opaque));
		params[0] = ids;
		params[1] = wamid;
		r = api->db_query(self, "UPDATE whatsapp_messages SET "
		    "wa_message_id = $2, inflight_at = NULL, sent_at = "
		    "coalesce(sent_at, now()), updated_at = now() WHERE id = "
		    "$1::bigint AND direction = 'outbound' AND wa_message_id IS "
		    "NULL RETURNING id, status", 2, params);
		if (!api->db_ok(r)) {
			api->db_free(r);
			return (-1);
		}
		if (api->db_rows(r) == 1)
			api->log(self, SB_LOG_INFO, "message %s adopted from "
			    "Meta's status webhook", ids);
	}
	if (api->db_rows(r) == 0) {
		api->db_free(r);
		if (wamid == NULL)
			return (0);
		/* Not ours yet (the send job has not recorded Graph's
		 * answer), or never ours: kept for a while. */
		f = json_pack("{s:s?, s:O?, s:s?}", "at", at_unix, "error",
		    error, "biz_opaque", biz_opaque);
		fs = f != NULL ? json_dumps(f, JSON_COMPACT) : NULL;
		json_decref(f);
		params[0] = wamid;
		params[1] = st;
		params[2] = fs != NULL ? fs : "{}";
		n = sb_db_count(api, self, "INSERT INTO whatsapp_status_pending "
		    "(wa_message_id, status, fields) VALUES ($1, $2, $3::jsonb) "
		    "ON CONFLICT DO NOTHING RETURNING 1", 3, params);
		free(fs);
		return (n < 0 ? -1 : 0);
	}
	(void)snprintf(ids, sizeof(ids), "%s", api->db_value(r, 0, 0));
	was = rank(api->db_value(r, 0, 1));
	api->db_free(r);
	detail[0] = '\0';
	if (error != NULL)
		(void)snprintf(detail, sizeof(detail), "%lld %s%s%s",
		    (long long)sb_jint(error, "code"),
		    sb_jstr(error, "title") != NULL ? sb_jstr(error, "title") :
		    "", sb_jstr(error, "detail") != NULL ? ": " : "",
		    sb_jstr(error, "detail") != NULL ? sb_jstr(error,
		    "detail") : "");
	if (now <= was) {
		size_t	l = strlen(detail);

		(void)snprintf(detail + l, sizeof(detail) - l, "%slate: status "
		    "unchanged", l > 0 ? "; " : "");
	}
	params[0] = ids;
	params[1] = st;
	params[2] = detail[0] != '\0' ? detail : NULL;
	params[3] = at_unix;
	n = sb_db_count(api, self, "INSERT INTO whatsapp_message_events "
	    "(message_id, status, detail, at) VALUES ($1::bigint, $2, $3, "
	    "CASE WHEN $4::text IS NULL THEN now() ELSE least(now(), "
	    "to_timestamp($4::double precision)) END) ON CONFLICT DO NOTHING "
	    "RETURNING 1", 4, params);
	if (n <= 0)
		return (n < 0 ? -1 : 0);	/* a replay: nothing new */
	if (now <= was)
		return (0);
	(void)snprintf(codes, sizeof(codes), "%lld",
	    (long long)sb_jint(error, "code"));
	params[0] = ids;
	params[1] = st;
	params[2] = error != NULL ? codes : NULL;
	params[3] = sb_jstr(error, "title");
	params[4] = sb_jstr(error, "detail");
	r = api->db_query(self, "UPDATE whatsapp_messages m SET status = $2, "
	    "error_code = coalesce($3::int, error_code), error_title = "
	    "coalesce($4, error_title), error_detail = coalesce($5, "
	    "error_detail), updated_at = now() WHERE id = $1::bigint "
	    "RETURNING m.id, m.conversation_id, m.customer_id, m.direction, "
	    "m.type, m.status, m.error_code, m.error_title, m.error_detail, "
	    "m.wa_message_id, m.sent_by, m.media_id, m.template, "
	    SB_SQL_TS("m.created_at") " AS created_at, "
	    SB_SQL_TS("m.updated_at") " AS updated_at, (SELECT c.assigned_to "
	    "FROM whatsapp_conversations c WHERE c.id = m.conversation_id) "
	    "AS assigned_to", 5, params);
	if (!api->db_ok(r) || api->db_rows(r) != 1) {
		api->db_free(r);
		return (-1);
	}
	/* The event from the row as updated: no second read. */
	m = wa_msg_json(api->db_row_json(r, 0));
	api->db_free(r);
	wa_msg_publish(pubs, "whatsapp.message.status", m);
	json_decref(m);
	return (0);
}

int
wa_status_pending_apply(int64_t msg_id, const char *wamid, json_t *pubs)
{
	struct sb_db_res	*r;
	const char		*params[1] = { wamid };
	json_t			*f;
	int			 i, rc = 0;

	r = api->db_query(self, "DELETE FROM whatsapp_status_pending WHERE "
	    "wa_message_id = $1 RETURNING status, fields", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (-1);
	}
	for (i = 0; rc == 0 && i < api->db_rows(r); i++) {
		f = json_loads(api->db_value(r, i, 1), 0, NULL);
		rc = wa_status_apply(msg_id, wamid, api->db_value(r, i, 0),
		    sb_jstr(f, "at"), json_object_get(f, "error"), NULL, pubs);
		json_decref(f);
	}
	api->db_free(r);
	return (rc);
}

/* Retention: statuses for message ids never recorded (not ours). */
static long long
pending_purge(struct sb_plugin *p, const char *cutoff)
{
	const char	*params[1] = { cutoff };

	return (sb_db_count(api, p, "DELETE FROM whatsapp_status_pending "
	    "WHERE received_at < $1::timestamptz RETURNING 1", 1, params));
}

static const struct sb_retention pending_retention = {
	.size = sizeof(struct sb_retention),
	.name = "pending_statuses",
	.default_days = 2,
	.description = "Meta's status webhooks for message ids the plugin "
	    "never recorded",
	.purge = pending_purge,
};

/* ---- messages ---- */

/* The payload column of an inbound message: what its type carries. */
static json_t *
inbound_payload(json_t *f)
{
	static const char *const keys[] = { "location", "reaction",
		"interactive", "raw_type", "context", NULL };
	json_t	*pl = json_object(), *media;
	size_t	 i;

	for (i = 0; keys[i] != NULL; i++)
		if (json_object_get(f, keys[i]) != NULL)
			json_object_set(pl, keys[i], json_object_get(f,
			    keys[i]));
	if ((media = json_object_get(f, "media")) != NULL)
		json_object_set_new(pl, "media", json_pack("{s:O?, s:O?}",
		    "mime_type", json_object_get(media, "mime_type"),
		    "filename", json_object_get(media, "filename")));
	return (pl);
}

/*
 * The inbound messages of one customer number in a drain's batch (fields
 * of each, in order; replays already left out), inside the drain's
 * transaction and under the number's lock: the customer found or
 * created, the conversation touched once for all of them, the messages
 * written in one statement (a wamid already stored adds nothing), their
 * media fetched by jobs; whatsapp.message.created for each and
 * whatsapp.conversation.updated appended to pubs.
 */
static int
messages_apply(const char *index, json_t *group, json_t *pubs)
{
	struct sb_db_res	*r;
	const char		*params[3], *name = NULL;
	char			 cids[24], convs[24], ts[24], *from, *rows_s;
	json_t			*rows, *f, *pl, *m;
	json_int_t		 latest = 0;
	int64_t			 cid, conv;
	size_t			 i;
	int			 created, k, rc = -1;

	f = json_array_get(group, 0);
	if ((from = api->unseal(self, sb_jstr(f, "from_sealed"), NULL)) ==
	    NULL) {
		api->log(self, SB_LOG_WARN, "inbox: messages that cannot be "
		    "unsealed are dropped");
		return (0);
	}
	rows = json_array();
	json_array_foreach(group, i, f) {
		if (sb_jint(f, "timestamp") > latest)
			latest = sb_jint(f, "timestamp");
		if (sb_jstr(f, "name") != NULL && *sb_jstr(f, "name") != '\0')
			name = sb_jstr(f, "name");
		pl = inbound_payload(f);
		json_array_append_new(rows, json_pack("{s:s?, s:s?, s:s?, s:s?, "
		    "s:o, s:s, s:I, s:i}", "type", sb_jstr(f, "type"),
		    "text_sealed", sb_jstr(f, "text_sealed"), "caption_sealed",
		    sb_jstr(f, "caption_sealed"), "graph_media_id",
		    sb_jstr(json_object_get(f, "media"), "id"), "payload",
		    json_object_size(pl) > 0 ? pl : (json_decref(pl),
		    json_null()), "wamid", sb_jstr(f, "id"), "ts",
		    sb_jint(f, "timestamp"), "ord", (int)i));
	}
	(void)snprintf(ts, sizeof(ts), "%lld", (long long)latest);
	rows_s = json_dumps(rows, JSON_COMPACT);
	json_decref(rows);
	if (rows_s == NULL)
		goto out;
	if ((cid = wa_dir->find_or_create(self, from, NULL)) == -1)
		goto out;
	if ((conv = wa_conv_touch(cid, from, index, ts,
	    (unsigned int)json_array_size(group), name, &created)) == -1)
		goto out;
	/* A new conversation: the customer's record learns their WhatsApp
	 * id (the number's digits) if it has not yet. */
	if (created && SB_SERVICE_HAS(wa_dir, struct sb_customers_directory,
	    wa_id_set) && wa_dir->wa_id_set(self, cid, from + 1) == -1)
		goto out;
	(void)snprintf(cids, sizeof(cids), "%lld", (long long)cid);
	(void)snprintf(convs, sizeof(convs), "%lld", (long long)conv);
	params[0] = convs;
	params[1] = cids;
	params[2] = rows_s;
	r = api->db_query(self, "WITH v AS (SELECT * FROM jsonb_to_recordset("
	    "$3::jsonb) AS x (type text, text_sealed text, caption_sealed "
	    "text, graph_media_id text, payload jsonb, wamid text, ts bigint, "
	    "ord int)), m AS (INSERT INTO whatsapp_messages (conversation_id, "
	    "customer_id, direction, type, text_sealed, caption_sealed, "
	    "graph_media_id, payload, wa_message_id, status, created_at) "
	    "SELECT $1::bigint, $2::bigint, 'inbound', type, text_sealed, "
	    "caption_sealed, graph_media_id, payload, wamid, 'received', "
	    "least(now(), to_timestamp(ts)) FROM v ORDER BY ord ON CONFLICT "
	    "DO NOTHING RETURNING id, conversation_id, customer_id, direction, "
	    "type, status, wa_message_id, graph_media_id, created_at, "
	    "updated_at), e AS (INSERT INTO whatsapp_message_events "
	    "(message_id, status, at) SELECT id, 'received', created_at FROM "
	    "m) SELECT m.id, m.conversation_id, m.customer_id, m.direction, "
	    "m.type, m.status, m.wa_message_id, m.graph_media_id IS NOT NULL "
	    "AS _media, " SB_SQL_TS("m.created_at") " AS created_at, "
	    SB_SQL_TS("m.updated_at") " AS updated_at, (SELECT assigned_to "
	    "FROM whatsapp_conversations WHERE id = $1::bigint) AS "
	    "assigned_to FROM m ORDER BY m.id", 3, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		goto out;
	}
	for (k = 0; k < api->db_rows(r); k++) {
		m = api->db_row_json(r, k);
		if (json_is_true(json_object_get(m, "_media")) &&
		    wa_media_fetch_enqueue(sb_jint(m, "id")) == -1) {
			json_decref(m);
			api->db_free(r);
			goto out;
		}
		json_object_del(m, "_media");
		json_object_set_new(m, "error", json_null());
		wa_msg_publish(pubs, "whatsapp.message.created", m);
		json_decref(m);
	}
	api->db_free(r);
	if (wa_conv_pub(conv, pubs) == -1)
		goto out;
	rc = 0;
out:
	explicit_bzero(from, strlen(from));
	free(from);
	free(rows_s);
	return (rc);
}

/* The wamids of the batch's messages already stored (replays), as an
 * object wamid -> true; NULL on a database error. */
static json_t *
stored_of(json_t *rows)
{
	struct sb_db_res	*r;
	const char		*params[1];
	json_t			*ids, *row, *out;
	char			*ids_s;
	size_t			 i;
	int			 k;

	ids = json_array();
	json_array_foreach(rows, i, row)
		if (strcmp(sb_jstr(row, "k"), "message") == 0)
			json_array_append(ids, json_object_get(json_object_get(
			    row, "f"), "id"));
	out = json_object();
	if (json_array_size(ids) == 0) {
		json_decref(ids);
		return (out);
	}
	ids_s = json_dumps(ids, JSON_COMPACT);
	json_decref(ids);
	params[0] = ids_s;
	r = api->db_query(self, "SELECT wa_message_id FROM whatsapp_messages "
	    "WHERE wa_message_id IN (SELECT jsonb_array_elements_text("
	    "$1::jsonb))", 1, params);
	free(ids_s);
	if (!api->db_ok(r)) {
		api->db_free(r);
		json_decref(out);
		return (NULL);
	}
	for (k = 0; k < api->db_rows(r); k++)
		json_object_set_new(out, api->db_value(r, k, 0), json_true());
	api->db_free(r);
	return (out);
}

/* ---- the drain ---- */

/*
 * Up to DRAIN_BATCH rows of the inbox, oldest first, taken (FOR UPDATE
 * SKIP LOCKED: drains on other workers take others), applied and deleted
 * in one transaction, then published.  The advisory locks of every
 * message id and customer number the batch touches are taken first, in
 * one order, so that two drains never wait on each other in a cycle.  A
 * full batch enqueues the next drain at once.
 */
static void
drain_run(struct sb_job *job)
{
	struct sb_db_res	*r;
	struct sb_job_opts	 opts;
	const char		*params[1];
	char			 lim[16], key[64], lk[200];
	json_t			*rows = NULL, *locks = NULL, *pubs = NULL;
	json_t			*stored = NULL, *groups = NULL, *row, *f;
	json_t			*group;
	const char		*index;
	size_t			 i;
	int			 n;

	(void)snprintf(lim, sizeof(lim), "%d", DRAIN_BATCH);
	params[0] = lim;
	if (api->db_begin(self) != SB_OK) {
		api->job_retry(job, "database error", 0);
		return;
	}
	r = api->db_query(self, "WITH d AS (DELETE FROM whatsapp_inbox WHERE "
	    "id IN (SELECT id FROM whatsapp_inbox ORDER BY id LIMIT $1::int "
	    "FOR UPDATE SKIP LOCKED) RETURNING id, kind, fields) "
	    "SELECT coalesce(json_agg(json_build_object('k', kind, 'f', fields) "
	    "ORDER BY id), '[]')::text FROM d", 1, params);
	if (!api->db_ok(r) || api->db_rows(r) != 1) {
		api->db_free(r);
		goto dberr;
	}
	rows = json_loads(api->db_value(r, 0, 0), 0, NULL);
	api->db_free(r);
	if ((n = (int)json_array_size(rows)) == 0) {
		api->db_rollback(self);
		json_decref(rows);
		api->job_done(job, NULL);
		return;
	}
	locks = json_array();
	pubs = json_array();
	json_array_foreach(rows, i, row) {
		f = json_object_get(row, "f");
		if (strcmp(sb_jstr(row, "k"), "status") == 0)
			(void)snprintf(lk, sizeof(lk), "whatsapp-msg:%s",
			    sb_jstr(f, "id"));
		else
			(void)snprintf(lk, sizeof(lk), "whatsapp:%s",
			    sb_jstr(f, "from_index"));
		json_array_append_new(locks, json_string(lk));
	}
	if (sb_db_lock_keys(api, self, locks) == -1)
		goto dberr;
	/* Messages by customer number, in order, without replays. */
	if ((stored = stored_of(rows)) == NULL)
		goto dberr;
	groups = json_object();
	json_array_foreach(rows, i, row) {
		json_t	*g;

		f = json_object_get(row, "f");
		if (strcmp(sb_jstr(row, "k"), "message") != 0 ||
		    json_object_get(stored, sb_jstr(f, "id")) != NULL)
			continue;
		/* A wamid twice in one batch (replayed before the drain). */
		json_object_set_new(stored, sb_jstr(f, "id"), json_true());
		if ((g = json_object_get(groups, sb_jstr(f, "from_index"))) ==
		    NULL) {
			g = json_array();
			json_object_set_new(groups, sb_jstr(f, "from_index"), g);
		}
		json_array_append(g, f);
	}
	json_object_foreach(groups, index, group)
		if (messages_apply(index, group, pubs) == -1)
			goto dberr;
	json_array_foreach(rows, i, row) {
		char	 ats[24];

		f = json_object_get(row, "f");
		if (strcmp(sb_jstr(row, "k"), "status") != 0)
			continue;
		(void)snprintf(ats, sizeof(ats), "%lld",
		    (long long)sb_jint(f, "timestamp"));
		if (wa_status_apply(0, sb_jstr(f, "id"), sb_jstr(f, "status"),
		    ats, json_object_get(f, "error"), sb_jstr(f,
		    "biz_opaque_callback_data"), pubs) == -1)
			goto dberr;
	}
	if (api->db_commit(self) != SB_OK)
		goto dberr;
	wa_publish_all(pubs);
	if (n == DRAIN_BATCH) {
		memset(&opts, 0, sizeof(opts));
		(void)snprintf(key, sizeof(key), "whatsapp.inbox+%lld",
		    (long long)api->job_id(job));
		opts.idempotency_key = key;
		(void)api->job_enqueue(self, DRAIN_KIND, NULL, &opts);
	}
	json_decref(rows);
	json_decref(locks);
	json_decref(pubs);
	json_decref(stored);
	json_decref(groups);
	api->job_done(job, json_pack("{s:i}", "applied", n));
	return;
dberr:
	/* The rows come back with the rollback; applied again later. */
	api->db_rollback(self);
	json_decref(rows);
	json_decref(locks);
	json_decref(pubs);
	json_decref(stored);
	json_decref(groups);
	api->job_retry(job, "database error", 0);
}

int
wa_hook_setup(struct sb_plugin *p)
{
	if (api->routes_add(p, routes) != SB_OK ||
	    api->job_kind_add(p, &drain_kind) != SB_OK ||
	    api->job_kind_add(p, &sweep_kind) != SB_OK ||
	    api->retention_add(p, &pending_retention) != SB_OK)
		return (SB_ERROR);
	return (SB_OK);
}
