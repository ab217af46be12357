/*
 * Sending (API.md "WhatsApp"): the send routes, which check the 24-hour
 * window before anything is written, and the durable send job, which
 * talks to Graph's /<phone_number_id>/messages.
 *
 * Never twice: Graph takes no idempotency key, so every send carries
 * biz_opaque_callback_data "sb:<message id>", which Meta echoes in the
 * message's status webhooks.  The job marks the message in flight before
 * its request leaves; a job that finds it still in flight (its worker
 * died, or the answer timed out) waits up to inflight_grace_s for a
 * status webhook to name the message (hook.c adopts it) and only then
 * sends it again.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <switchboard/plugin.h>
#include <switchboard/helpers.h>

#include "wa.h"

#define api	wa_api
#define self	wa_self

#define SEND_KIND	"whatsapp.send"
#define SEND_ATTEMPTS	10

static void	msg_send(struct sb_req *);
static void	msg_template(struct sb_req *);
static void	msg_get(struct sb_req *);
static void	send_run(struct sb_job *);

static const char *const send_types[] = { "text", "image", "document",
	"audio", "video", "sticker", NULL };

#define TARGET_FIELDS \
	{ .name = "to", .type = SB_T_STRING, .flags = SB_F_NULLABLE, \
	  .max_len = 64, .description = "The customer's number (E.164, " \
	  "normalised); one of to, customer_id, conversation_id" }, \
	{ .name = "customer_id", .type = SB_T_INT, .flags = SB_F_NULLABLE | \
	  SB_F_RANGE, .min = 1, .max = INT64_MAX }, \
	{ .name = "conversation_id", .type = SB_T_INT, .flags = \
	  SB_F_NULLABLE | SB_F_RANGE, .min = 1, .max = INT64_MAX }

static const struct sb_field send_body[] = {
	TARGET_FIELDS,
	{ .name = "type", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .choices = send_types },
	{ .name = "text", .type = SB_T_STRING, .flags = SB_F_NULLABLE,
	  .min_len = 1, .max_len = WA_TEXT_MAX, .description = "type text: "
	  "1..4096 characters" },
	{ .name = "media_id", .type = SB_T_INT, .flags = SB_F_NULLABLE |
	  SB_F_RANGE, .min = 1, .max = INT64_MAX, .description = "Media "
	  "types: an item of the media plugin" },
	{ .name = "caption", .type = SB_T_STRING, .flags = SB_F_NULLABLE,
	  .max_len = WA_CAPTION_MAX },
	{ .name = "preview_url", .type = SB_T_BOOL, .flags = SB_F_NULLABLE },
	SB_FIELD_END
};

static const struct sb_field template_body[] = {
	TARGET_FIELDS,
	{ .name = "name", .type = SB_T_STRING, .flags = SB_F_REQUIRED |
	  SB_F_NONEMPTY, .max_len = 512 },
	{ .name = "language", .type = SB_T_STRING, .flags = SB_F_REQUIRED |
	  SB_F_NONEMPTY, .max_len = 16, .description = "e.g. en_US" },
	{ .name = "components", .type = SB_T_ARRAY, .flags = SB_F_NULLABLE,
	  .max_len = 16, .item_type = SB_T_OBJECT, .description = "Graph's "
	  "template components with their parameters" },
	SB_FIELD_END
};

static const struct sb_route routes[] = {
	{ .method = "POST", .path = "/api/v1/whatsapp/messages",
	  .permission = "whatsapp.send", .handler = msg_send,
	  .body = send_body, .summary = "Send a text or media message "
	  "(202: queued; 409 field window outside the 24-hour window)" },
	{ .method = "POST", .path = "/api/v1/whatsapp/messages/template",
	  .permission = "whatsapp.send", .handler = msg_template,
	  .body = template_body, .body_max = 65536,
	  .summary = "Send an approved template (202: queued; allowed at any "
	  "time)" },
	{ .method = "GET", .path = "/api/v1/whatsapp/messages/{id}",
	  .permission = "whatsapp.read", .handler = msg_get,
	  .summary = "One message with its status events" },
	SB_ROUTE_END
};

/* The lease (timeout_s) is set in setup from timeout_ms: a media upload
 * and the send, with room to spare. */
static struct sb_job_kind send_kind = {
	.name = SEND_KIND, .run = send_run, .max_attempts = SEND_ATTEMPTS,
	.backoff_s = 2
};

/* ---- messages as the API shows them ---- */

json_t *
wa_msg_json(json_t *row)
{
	json_t		*pl, *v, *media;
	const char	*k;
	char		*url;
	json_int_t	 mid;

	if (row == NULL)
		return (NULL);
	sb_unseal_into(api, self, row, "text_sealed", "text");
	sb_unseal_into(api, self, row, "caption_sealed", "caption");
	if (json_object_get(row, "error_code") != NULL &&
	    !json_is_null(json_object_get(row, "error_code")))
		json_object_set_new(row, "error", json_pack("{s:O, s:O, s:O}",
		    "code", json_object_get(row, "error_code"), "title",
		    json_object_get(row, "error_title"), "detail",
		    json_object_get(row, "error_detail")));
	else
		json_object_set_new(row, "error", json_null());
	json_object_del(row, "error_code");
	json_object_del(row, "error_title");
	json_object_del(row, "error_detail");
	/* The payload's parts are the message's own fields (location,
	 * reaction, interactive, raw_type, context, media_error). */
	pl = json_object_get(row, "payload");
	media = NULL;
	if (json_is_object(pl)) {
		json_object_foreach(pl, k, v) {
			if (strcmp(k, "media") == 0)
				media = json_copy(v);
			else
				json_object_set(row, k, v);
		}
	}
	json_object_del(row, "payload");
	mid = sb_jint(row, "media_id");
	if (mid > 0) {
		if (media == NULL)
			media = json_object();
		json_object_set_new(media, "id", json_integer(mid));
		/* A signed URL: an <img> or a download link needs no token. */
		url = wa_media->signed_url(self, mid, 0);
		json_object_set_new(media, "url", url != NULL ?
		    json_string(url) : json_null());
		free(url);
	}
	if (media != NULL)
		json_object_set_new(row, "media", media);
	return (row);
}

/* The message's events, oldest first. */
static json_t *
events_of(const char *ids, int *dberr)
{
	const char	*params[1] = { ids };
	json_t		*e;

	e = sb_db_json(api, self, "SELECT coalesce(json_agg(json_build_object("
	    "'status', status, 'at', " SB_SQL_TS("at") ", 'detail', detail) "
	    "ORDER BY id), '[]')::text FROM whatsapp_message_events WHERE "
	    "message_id = $1::bigint", 1, params);
	*dberr = e == NULL;
	return (e);
}

json_t *
wa_msg_load(int64_t id, int *dberr)
{
	struct sb_db_res	*r;
	const char		*params[1];
	char			 ids[24];
	json_t			*m = NULL, *ev;

	(void)snprintf(ids, sizeof(ids), "%lld", (long long)id);
	params[0] = ids;
	*dberr = 0;
	r = api->db_query(self, "SELECT " WA_MSG_COLS " FROM whatsapp_messages "
	    "m WHERE m.id = $1::bigint", 1, params);
	if (!api->db_ok(r))
		*dberr = 1;
	else if (api->db_rows(r) == 1)
		m = wa_msg_json(api->db_row_json(r, 0));
	api->db_free(r);
	if (m == NULL)
		return (NULL);
	if ((ev = events_of(ids, dberr)) == NULL) {
		json_decref(m);
		return (NULL);
	}
	json_object_set_new(m, "events", ev);
	return (m);
}

/*
 * Events carry no personal content: the bus hands them to every plugin
 * (the audit log keeps them for good), so a room sees ids, status and
 * error, and fetches the message for its text.
 */
static const char *const msg_pub_keys[] = { "id", "conversation_id",
	"customer_id", "direction", "type", "status", "error", "wa_message_id",
	"sent_by", "assigned_to", "media_id", "created_at", "updated_at",
	NULL };

void
wa_msg_publish(json_t *pubs, const char *name, json_t *m)
{
	json_t	*e;
	size_t	 i;
	char	 room[48];

	if (m == NULL || (e = json_object()) == NULL)
		return;
	for (i = 0; msg_pub_keys[i] != NULL; i++)
		if (json_object_get(m, msg_pub_keys[i]) != NULL)
			json_object_set(e, msg_pub_keys[i],
			    json_object_get(m, msg_pub_keys[i]));
	if (json_is_object(json_object_get(m, "template")))
		json_object_set(e, "template_name", json_object_get(
		    json_object_get(m, "template"), "name"));
	wa_conv_room(room, sizeof(room), sb_jint(m, "conversation_id"));
	wa_pub_add(pubs, room, name, e);
}

static void
msg_get(struct sb_req *req)
{
	const char	*ids;
	json_t		*m;
	int		 dberr;

	if ((ids = sb_positive_id(api->req_param(req, "id"))) == NULL ||
	    (m = wa_msg_load(strtoll(ids, NULL, 10), &dberr)) == NULL) {
		if (ids != NULL && dberr)
			wa_err_db(req);
		else
			api->respond_error(req, 404, "NOT_FOUND", "no such "
			    "message", NULL);
		return;
	}
	api->respond_json(req, 200, m);
}

/* ---- the send routes ---- */

/* Where a send goes: the customer and their WhatsApp number. */
struct target {
	int64_t		 customer_id;
	char		 e164[32];
	char		*index;
};

/*
 * The body's to | customer_id | conversation_id (exactly one) as a
 * target, inside the open transaction (a number new to us becomes a
 * customer).  0, or -1 after answering.
 */
static int
target_of(struct sb_req *req, json_t *b, struct target *t)
{
	struct sb_db_res	*r;
	const char		*params[1], *to;
	json_t			*c;
	char			 ids[24], *wa;
	int			 n, dberr;

	memset(t, 0, sizeof(*t));
	to = sb_jstr(b, "to");
	n = (to != NULL) + json_is_integer(json_object_get(b, "customer_id")) +
	    json_is_integer(json_object_get(b, "conversation_id"));
	if (n != 1) {
		wa_err_field(req, 422, "to", n == 0 ? "REQUIRED" : "CONFLICT",
		    "give exactly one of to, customer_id and conversation_id");
		return (-1);
	}
	if (to != NULL) {
		if (api->phone_e164(self, to, NULL, t->e164,
		    sizeof(t->e164)) != SB_OK) {
			wa_err_field(req, 422, "to", "INVALID_FORMAT", "not a "
			    "valid phone number");
			return (-1);
		}
		if ((t->customer_id = wa_dir->find_or_create(self, t->e164,
		    NULL)) == -1) {
			wa_err_db(req);
			return (-1);
		}
	} else if (json_is_integer(json_object_get(b, "customer_id"))) {
		t->customer_id = sb_jint(b, "customer_id");
		if ((c = wa_dir->get(self, t->customer_id, &dberr)) == NULL) {
			if (dberr)
				wa_err_db(req);
			else
				wa_err_field(req, 422, "customer_id",
				    "NOT_FOUND", "no such customer");
			return (-1);
		}
		to = sb_jstr(c, "phone");
		if (to == NULL || api->phone_e164(self, to, NULL, t->e164,
		    sizeof(t->e164)) != SB_OK) {
			json_decref(c);
			wa_err_field(req, 422, "customer_id", "NO_PHONE",
			    "the customer has no phone number");
			return (-1);
		}
		json_decref(c);
	} else {
		(void)snprintf(ids, sizeof(ids), "%lld",
		    (long long)sb_jint(b, "conversation_id"));
		params[0] = ids;
		r = api->db_query(self, "SELECT customer_id, wa_sealed FROM "
		    "whatsapp_conversations WHERE id = $1::bigint", 1, params);
		if (!api->db_ok(r)) {
			api->db_free(r);
			wa_err_db(req);
			return (-1);
		}
		if (api->db_rows(r) != 1) {
			api->db_free(r);
			wa_err_field(req, 422, "conversation_id", "NOT_FOUND",
			    "no such conversation");
			return (-1);
		}
		t->customer_id = strtoll(api->db_value(r, 0, 0), NULL, 10);
		wa = api->unseal(self, api->db_value(r, 0, 1), NULL);
		api->db_free(r);
		if (wa == NULL || strlen(wa) >= sizeof(t->e164)) {
			free(wa);
			wa_err_db(req);
			return (-1);
		}
		(void)snprintf(t->e164, sizeof(t->e164), "%s", wa);
		free(wa);
	}
	if ((t->index = wa_phone_index(t->e164)) == NULL) {
		api->respond_error(req, 503, "UNAVAILABLE", "no data key",
		    NULL);
		return (-1);
	}
	return (0);
}

/* The window of the customer's number is open (their last message was
 * less than 24 h ago): 1, 0, or -1 on a database error. */
static int
window_open(const char *index)
{
	const char	*params[1] = { index };

	return ((int)sb_db_count(api, self, "SELECT 1 FROM "
	    "whatsapp_conversations WHERE wa_index = $1 AND window_expires_at "
	    "> now() LIMIT 1", 1, params));
}

/* The per-user and per-customer budget: 0 after answering 429. */
static int
rate_ok(struct sb_req *req, const struct target *t)
{
	const struct sb_principal	*who = api->req_principal(req);
	char				 key[160], ra[16];
	unsigned int			 retry = 0;

	if (wa_conf.messages_per_minute == 0)
		return (1);
	(void)snprintf(key, sizeof(key), "whatsapp:user:%d:%lld",
	    (int)who->kind, (long long)who->id);
	if (api->rate_hit(self, key, wa_conf.messages_per_minute, 60,
	    &retry) == 0) {
		(void)snprintf(key, sizeof(key), "whatsapp:to:%s", t->index);
		if (api->rate_hit(self, key, wa_conf.messages_per_minute, 60,
		    &retry) == 0)
			return (1);
	}
	(void)snprintf(ra, sizeof(ra), "%u", retry > 0 ? retry : 1);
	api->resp_header(req, "Retry-After", ra);
	api->respond_error(req, 429, "RATE_LIMITED", "too many WhatsApp "
	    "messages; try again later", NULL);
	return (0);
}

/*
 * The common end of both send routes, inside the open transaction: the
 * conversation touched, the message written queued with its event and
 * its job, committed, published and answered 202.  Rolls back and
 * answers on any failure.
 */
static void
queue_message(struct sb_req *req, struct target *t, const char *type,
    const char *text, const char *caption, json_t *tmpl, int64_t media_id,
    json_t *payload)
{
	const struct sb_principal	*who = api->req_principal(req);
	struct sb_job_opts		 opts;
	struct sb_db_res		*r;
	const char			*params[9];
	char				 convs[24], cids[24], mids[24], by[24];
	char				 key[64], *text_s = NULL, *cap_s = NULL;
	char				*tmpl_s = NULL, *pl_s = NULL;
	json_t				*pubs, *m = NULL, *jp;
	int64_t				 conv, id;
	int				 created, dberr;

	pubs = json_array();
	if ((text != NULL && (text_s = api->seal(self, text,
	    strlen(text))) == NULL) || (caption != NULL &&
	    (cap_s = api->seal(self, caption, strlen(caption))) == NULL)) {
		api->db_rollback(self);
		api->respond_error(req, 503, "UNAVAILABLE", "no data key",
		    NULL);
		goto done;
	}
	if ((conv = wa_conv_touch(t->customer_id, t->e164, t->index, NULL, 0,
	    NULL, &created)) == -1)
		goto dberr;
	if (tmpl != NULL)
		tmpl_s = json_dumps(tmpl, JSON_COMPACT);
	if (payload != NULL && json_object_size(payload) > 0)
		pl_s = json_dumps(payload, JSON_COMPACT);
	(void)snprintf(convs, sizeof(convs), "%lld", (long long)conv);
	(void)snprintf(cids, sizeof(cids), "%lld", (long long)t->customer_id);
	(void)snprintf(mids, sizeof(mids), "%lld", (long long)media_id);
	(void)snprintf(by, sizeof(by), "%lld", (long long)who->id);
	params[0] = convs;
	params[1] = cids;
	params[2] = type;
	params[3] = text_s;
	params[4] = cap_s;
	params[5] = tmpl_s;
	params[6] = media_id > 0 ? mids : NULL;
	params[7] = pl_s;
	params[8] = who->kind == SB_ACTOR_USER ? by : NULL;
	r = api->db_query(self, "WITH m AS (INSERT INTO whatsapp_messages ("
	    "conversation_id, customer_id, direction, type, text_sealed, "
	    "caption_sealed, template, media_id, payload, status, sent_by) "
	    "VALUES ($1::bigint, $2::bigint, 'outbound', $3, $4, $5, "
	    "$6::jsonb, $7::bigint, $8::jsonb, 'queued', $9::bigint) "
	    "RETURNING id), e AS (INSERT INTO whatsapp_message_events "
	    "(message_id, status) SELECT id, 'queued' FROM m) SELECT id FROM m",
	    9, params);
	if (!api->db_ok(r) || api->db_rows(r) != 1) {
		api->db_free(r);
		goto dberr;
	}
	id = strtoll(api->db_value(r, 0, 0), NULL, 10);
	api->db_free(r);
	if (wa_conv_pub(conv, pubs) == -1)
		goto dberr;
	memset(&opts, 0, sizeof(opts));
	(void)snprintf(key, sizeof(key), "whatsapp.send:%lld", (long long)id);
	opts.idempotency_key = key;
	jp = json_pack("{s:I}", "id", (json_int_t)id);
	if (jp == NULL || api->job_enqueue(self, SEND_KIND, jp, &opts) == -1 ||
	    (m = wa_msg_load(id, &dberr)) == NULL ||
	    api->db_commit(self) != SB_OK) {
		json_decref(jp);
		json_decref(m);
		m = NULL;
		goto dberr;
	}
	json_decref(jp);
	wa_msg_publish(pubs, "whatsapp.message.created", m);
	wa_publish_all(pubs);
	api->respond_json(req, 202, m);
	goto done;
dberr:
	api->db_rollback(self);
	wa_err_db(req);
done:
	json_decref(pubs);
	free(text_s);
	free(cap_s);
	free(tmpl_s);
	free(pl_s);
}

static void
msg_send(struct sb_req *req)
{
	struct target	 t;
	json_t		*b = api->req_json(req), *meta = NULL, *payload = NULL;
	const char	*type = sb_jstr(b, "type"), *text, *caption;
	int64_t		 media_id = 0;
	int		 w;

	memset(&t, 0, sizeof(t));
	text = sb_jstr(b, "text");
	caption = sb_jstr(b, "caption");
	if (!wa_send_ready()) {
		api->respond_error(req, 503, "UNAVAILABLE", "WhatsApp is not "
		    "configured (access_token, phone_number_id)", NULL);
		return;
	}
	if (strcmp(type, "text") == 0) {
		if (text == NULL) {
			wa_err_field(req, 422, "text", "REQUIRED", "a text "
			    "message needs its text");
			return;
		}
		caption = NULL;
	} else {
		if (!json_is_integer(json_object_get(b, "media_id"))) {
			wa_err_field(req, 422, "media_id", "REQUIRED", "a media "
			    "message needs media_id");
			return;
		}
		media_id = sb_jint(b, "media_id");
		if (caption != NULL && (strcmp(type, "audio") == 0 ||
		    strcmp(type, "sticker") == 0)) {
			wa_err_field(req, 422, "caption", "NOT_ALLOWED",
			    "WhatsApp takes no caption on audio or stickers");
			return;
		}
		text = NULL;
	}
	if (api->db_begin(self) != SB_OK) {
		wa_err_db(req);
		return;
	}
	if (target_of(req, b, &t) == -1)
		goto fail;
	/* The window, before anything is written. */
	if ((w = window_open(t.index)) == -1) {
		wa_err_db(req);
		goto fail;
	}
	if (w == 0) {
		wa_err_field(req, 409, "window", "WINDOW_CLOSED", "more than "
		    "24 hours since the customer's last message: only a "
		    "template may be sent");
		goto fail;
	}
	if (!rate_ok(req, &t))
		goto fail;
	if (media_id > 0) {
		if (wa_media_check(req, media_id, type, &meta) == -1)
			goto fail;
		payload = json_pack("{s:{s:O, s:O}}", "media", "mime_type",
		    json_object_get(meta, "mime_type"), "filename",
		    json_object_get(meta, "filename"));
	}
	if (json_is_true(json_object_get(b, "preview_url"))) {
		if (payload == NULL)
			payload = json_object();
		json_object_set_new(payload, "preview_url", json_true());
	}
	queue_message(req, &t, type, text, caption, NULL, media_id, payload);
	goto done;
fail:
	api->db_rollback(self);
done:
	json_decref(meta);
	json_decref(payload);
	free(t.index);
	explicit_bzero(t.e164, sizeof(t.e164));
}

static void
msg_template(struct sb_req *req)
{
	struct target	 t;
	json_t		*b = api->req_json(req), *tmpl;
	const char	*name = sb_jstr(b, "name"), *lang = sb_jstr(b, "language");
	json_t		*comps = json_object_get(b, "components");

	memset(&t, 0, sizeof(t));
	if (!wa_send_ready()) {
		api->respond_error(req, 503, "UNAVAILABLE", "WhatsApp is not "
		    "configured (access_token, phone_number_id)", NULL);
		return;
	}
	if (json_is_null(comps))
		comps = NULL;
	if (wa_template_check(req, name, lang, comps) == -1)
		return;
	if (api->db_begin(self) != SB_OK) {
		wa_err_db(req);
		return;
	}
	if (target_of(req, b, &t) == -1 || !rate_ok(req, &t)) {
		api->db_rollback(self);
		goto done;
	}
	tmpl = json_pack("{s:s, s:s, s:O}", "name", name, "language", lang,
	    "components", comps != NULL ? comps : json_array());
	/* json_pack's O on a new array adds a reference: drop ours. */
	if (comps == NULL && tmpl != NULL)
		json_decref(json_object_get(tmpl, "components"));
	queue_message(req, &t, "template", NULL, NULL, tmpl, 0, NULL);
	json_decref(tmpl);
done:
	free(t.index);
	explicit_bzero(t.e164, sizeof(t.e164));
}

/* ---- the send job ---- */

struct sendctx {
	struct sb_job	*job;
	int64_t		 id;
	char		 ids[24];
	char		 conv[24];
	char		*body;		/* the request's JSON */
};

static void	send_graph(struct sendctx *, const char *graph_media_id);

static void
ctx_free(struct sendctx *c)
{
	if (c->body != NULL) {
		explicit_bzero(c->body, strlen(c->body));
		free(c->body);
	}
	free(c);
}

/* Graph's codes that mean "later": throttling and Meta's own trouble. */
static int
retryable_code(long long code)
{
	return (code == 1 || code == 2 || code == 4 || code == 80007 ||
	    code == 130429 || code == 131000 || code == 131016 ||
	    code == 131048 || code == 131056 || code == 133004);
}

/*
 * The message ends `failed` with Graph's error (code, title, detail): an
 * event, published.  In its own transaction.  0 or -1.
 */
static int
mark_failed(struct sendctx *c, long long code, const char *title,
    const char *detail)
{
	json_t		*err, *pubs;
	char		 codes[24];
	int		 rc;

	(void)snprintf(codes, sizeof(codes), "%lld", code);
	err = json_pack("{s:I, s:s?, s:s?}", "code", (json_int_t)code, "title",
	    title, "detail", detail);
	pubs = json_array();
	rc = -1;
	if (api->db_begin(self) != SB_OK)
		goto out;
	{
		const char	*params[1] = { c->ids };

		if (sb_db_count(api, self, "UPDATE whatsapp_messages SET "
		    "inflight_at = NULL WHERE id = $1::bigint RETURNING 1", 1,
		    params) == -1) {
			api->db_rollback(self);
			goto out;
		}
	}
	if (wa_status_apply(c->id, NULL, "failed", NULL, err, NULL, pubs) ==
	    -1) {
		api->db_rollback(self);
		goto out;
	}
	if (api->db_commit(self) != SB_OK) {
		api->db_rollback(self);
		goto out;
	}
	wa_publish_all(pubs);
	rc = 0;
out:
	json_decref(err);
	json_decref(pubs);
	return (rc);
}

/* "(#131047) Re-engagement message" -> "Re-engagement message". */
static const char *
title_of(const char *message)
{
	const char	*p;

	if (message != NULL && message[0] == '(' && message[1] == '#' &&
	    (p = strstr(message, ") ")) != NULL)
		return (p + 2);
	return (message);
}

/* Clear the in-flight mark: the request certainly did not leave. */
static void
inflight_clear(struct sendctx *c)
{
	const char	*params[1] = { c->ids };

	(void)sb_db_count(api, self, "UPDATE whatsapp_messages SET "
	    "inflight_at = NULL WHERE id = $1::bigint AND wa_message_id IS "
	    "NULL RETURNING 1", 1, params);
}

/* A retryable failure: later, or failed on the last attempt. */
static void
later(struct sendctx *c, long long code, const char *title,
    const char *detail, unsigned int retry_after)
{
	if (api->job_attempt(c->job) >= SEND_ATTEMPTS) {
		if (mark_failed(c, code, title, detail) == -1) {
			api->job_retry(c->job, "database error", 0);
			ctx_free(c);
			return;
		}
		api->job_done(c->job, json_pack("{s:s}", "result", "failed"));
		ctx_free(c);
		return;
	}
	api->job_retry(c->job, title != NULL ? title : "retry", retry_after);
	ctx_free(c);
}

/* Graph took the message: its id recorded, the message sent. */
static int
accepted(struct sendctx *c, const char *wamid)
{
	const char	*params[2];
	json_t		*pubs;
	long long	 n;

	pubs = json_array();
	params[0] = c->ids;
	params[1] = wamid;
	if (api->db_begin(self) != SB_OK)
		goto fail;
	/* A status webhook may have adopted the message meanwhile: the same
	 * id, nothing else to record. */
	n = sb_db_count(api, self, "UPDATE whatsapp_messages SET "
	    "wa_message_id = $2, inflight_at = NULL, sent_at = now(), "
	    "updated_at = now() WHERE id = $1::bigint AND (wa_message_id IS "
	    "NULL OR wa_message_id = $2) RETURNING 1", 2, params);
	if (n != 1)
		goto fail_tx;
	if (wa_status_apply(c->id, wamid, "sent", NULL, NULL, NULL, pubs) ==
	    -1 || wa_status_pending_apply(c->id, wamid, pubs) == -1)
		goto fail_tx;
	if (api->db_commit(self) != SB_OK)
		goto fail_tx;
	wa_publish_all(pubs);
	json_decref(pubs);
	return (0);
fail_tx:
	api->db_rollback(self);
fail:
	json_decref(pubs);
	return (-1);
}

static void
graph_done(struct sb_plugin *p, const struct sb_http_response *res,
    void *arg)
{
	struct sendctx	*c = arg;
	json_t		*j = NULL, *err;
	const char	*wamid, *e;
	long long	 code;

	(void)p;
	if (res->status == 0) {
		e = res->error != NULL ? res->error : "no response";
		if (strcmp(e, "circuit open") == 0 || strstr(e, "connect") !=
		    NULL || strstr(e, "resolve") != NULL) {
			inflight_clear(c);
			later(c, 0, "Graph unreachable", e, 0);
			return;
		}
		/* The request may have been taken: wait for the webhook. */
		api->log(self, SB_LOG_WARN, "message %s: no answer from Graph "
		    "(%s); waiting for its status webhook before sending "
		    "again", c->ids, e);
		api->job_retry(c->job, e, wa_conf.inflight_grace_s);
		ctx_free(c);
		return;
	}
	if (res->body_len > 0)
		j = json_loadb(res->body, res->body_len, 0, NULL);
	if (res->status == 200) {
		wamid = json_string_value(json_object_get(json_array_get(
		    json_object_get(j, "messages"), 0), "id"));
		if (wamid == NULL || strlen(wamid) > WA_WAMID_MAX) {
			/* Taken, but we cannot tell its id: the webhook
			 * will (biz_opaque_callback_data). */
			api->log(self, SB_LOG_WARN, "message %s: Graph's answer "
			    "has no message id", c->ids);
			api->job_done(c->job, NULL);
			ctx_free(c);
			json_decref(j);
			return;
		}
		if (accepted(c, wamid) == -1)
			api->job_retry(c->job, "database error", 0);
		else
			api->job_done(c->job, json_pack("{s:s}", "wamid",
			    wamid));
		ctx_free(c);
		json_decref(j);
		return;
	}
	err = json_object_get(j, "error");
	code = json_is_integer(json_object_get(err, "code")) ?
	    json_integer_value(json_object_get(err, "code")) : 0;
	e = title_of(sb_jstr(err, "message"));
	if (e == NULL)
		e = res->status >= 500 ? "Graph server error" : "Graph refused "
		    "the message";
	inflight_clear(c);
	if (res->status == 429 || res->status >= 500 || retryable_code(code))
		later(c, code != 0 ? code : res->status, e,
		    sb_jstr(json_object_get(err, "error_data"), "details"),
		    res->retry_after);
	else {
		if (mark_failed(c, code != 0 ? code : res->status, e,
		    sb_jstr(json_object_get(err, "error_data"), "details")) ==
		    -1)
			api->job_retry(c->job, "database error", 0);
		else
			api->job_done(c->job, json_pack("{s:s, s:I}",
			    "result", "failed", "code", (json_int_t)code));
		ctx_free(c);
	}
	json_decref(j);
}

static void
media_ready(const char *graph_id, int retryable, const char *err, void *arg)
{
	struct sendctx	*c = arg;

	if (graph_id != NULL) {
		send_graph(c, graph_id);
		return;
	}
	if (retryable)
		later(c, 0, "media upload failed", err, 0);
	else {
		if (mark_failed(c, 0, "media upload refused", err) == -1)
			api->job_retry(c->job, "database error", 0);
		else
			api->job_done(c->job, json_pack("{s:s}", "result",
			    "failed"));
		ctx_free(c);
	}
}

/* The message's Graph request body (c->body), built from its row. */
static int
build_body(struct sendctx *c, json_t *row, const char *graph_media_id)
{
	json_t		*b, *o, *pl;
	const char	*type = sb_jstr(row, "type");
	char		*to, *text, *cap;

	if ((to = api->unseal(self, sb_jstr(row, "wa_sealed"), NULL)) == NULL)
		return (-1);
	b = json_pack("{s:s, s:s, s:s, s:s, s:s}", "messaging_product",
	    "whatsapp", "recipient_type", "individual", "to", to + 1, "type",
	    type, "biz_opaque_callback_data", "");
	free(to);
	if (b == NULL)
		return (-1);
	json_object_set_new(b, "biz_opaque_callback_data",
	    json_sprintf("sb:%s", c->ids));
	pl = json_object_get(row, "payload");
	if (strcmp(type, "text") == 0) {
		text = api->unseal(self, sb_jstr(row, "text_sealed"), NULL);
		o = json_pack("{s:s?, s:b}", "body", text, "preview_url",
		    json_is_true(json_object_get(pl, "preview_url")));
		free(text);
	} else if (strcmp(type, "template") == 0) {
		json_t *t = json_object_get(row, "template");

		o = json_pack("{s:O, s:{s:O}, s:O}", "name",
		    json_object_get(t, "name"), "language", "code",
		    json_object_get(t, "language"), "components",
		    json_is_array(json_object_get(t, "components")) ?
		    json_object_get(t, "components") : json_array());
	} else {
		o = json_pack("{s:s}", "id", graph_media_id);
		cap = sb_jstr(row, "caption_sealed") != NULL ? api->unseal(self,
		    sb_jstr(row, "caption_sealed"), NULL) : NULL;
		if (o != NULL && cap != NULL)
			json_object_set_new(o, "caption", json_string(cap));
		free(cap);
		if (o != NULL && strcmp(type, "document") == 0 &&
		    sb_jstr(json_object_get(pl, "media"), "filename") != NULL)
			json_object_set(o, "filename", json_object_get(
			    json_object_get(pl, "media"), "filename"));
	}
	if (o == NULL || json_object_set_new(b, type, o) == -1) {
		json_decref(b);
		return (-1);
	}
	c->body = json_dumps(b, JSON_COMPACT);
	json_decref(b);
	return (c->body != NULL ? 0 : -1);
}

static void
send_graph(struct sendctx *c, const char *graph_media_id)
{
	struct sb_http_request	 r;
	struct sb_http_header	 h[2];
	struct sb_db_res	*res;
	const char		*params[1] = { c->ids };
	char			 url[512], auth[1024], path[64];
	json_t			*row;

	res = api->db_query(self, "SELECT m.type, m.text_sealed, "
	    "m.caption_sealed, m.template, m.payload, c.wa_sealed FROM "
	    "whatsapp_messages m JOIN whatsapp_conversations c ON c.id = "
	    "m.conversation_id WHERE m.id = $1::bigint", 1, params);
	if (!api->db_ok(res) || api->db_rows(res) != 1) {
		api->db_free(res);
		api->job_retry(c->job, "database error", 0);
		ctx_free(c);
		return;
	}
	row = api->db_row_json(res, 0);
	api->db_free(res);
	if (build_body(c, row, graph_media_id) == -1) {
		json_decref(row);
		api->job_retry(c->job, "the message cannot be read", 0);
		ctx_free(c);
		return;
	}
	json_decref(row);
	(void)snprintf(path, sizeof(path), "%s/messages",
	    wa_conf.phone_number_id);
	if (wa_graph_url(url, sizeof(url), path) == -1 ||
	    wa_auth_header(auth, sizeof(auth)) == -1) {
		later(c, 0, "WhatsApp is not configured", NULL, 60);
		return;
	}
	/* In flight from here: a lost answer is never resent blindly. */
	if (sb_db_count(api, self, "UPDATE whatsapp_messages SET inflight_at "
	    "= now(), attempts = attempts + 1 WHERE id = $1::bigint AND "
	    "wa_message_id IS NULL RETURNING 1", 1, params) != 1) {
		api->job_retry(c->job, "database error", 0);
		ctx_free(c);
		return;
	}
	memset(&r, 0, sizeof(r));
	h[0].name = "Authorization";
	h[0].value = auth;
	h[1].name = "Content-Type";
	h[1].value = "application/json";
	r.method = "POST";
	r.url = url;
	r.headers = h;
	r.nheaders = 2;
	r.body = c->body;
	r.body_len = strlen(c->body);
	r.timeout_ms = wa_conf.timeout_ms;
	r.upstream = "whatsapp";
	r.max_response = 65536;
	if (api->http_send(self, &r, graph_done, c) != SB_OK) {
		explicit_bzero(auth, sizeof(auth));
		inflight_clear(c);
		later(c, 0, "the request could not be made", NULL, 0);
		return;
	}
	explicit_bzero(auth, sizeof(auth));
}

static void
send_run(struct sb_job *job)
{
	struct sb_db_res	*r;
	struct sendctx		*c;
	const char		*params[2];
	char			 graph_id[160];
	json_int_t		 id = sb_jint(api->job_payload(job), "id");
	long long		 age, media_id;
	int			 rc;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		api->job_retry(job, "out of memory", 0);
		return;
	}
	c->job = job;
	c->id = id;
	(void)snprintf(c->ids, sizeof(c->ids), "%lld", (long long)id);
	params[0] = c->ids;
	r = api->db_query(self, "SELECT status, wa_message_id IS NOT NULL, "
	    "CASE WHEN inflight_at IS NULL THEN -1 ELSE extract(epoch FROM "
	    "now() - inflight_at)::bigint END, type, coalesce(media_id, 0) "
	    "FROM whatsapp_messages WHERE id = $1::bigint AND direction = "
	    "'outbound'", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		api->job_retry(job, "database error", 0);
		ctx_free(c);
		return;
	}
	if (api->db_rows(r) != 1 || strcmp(api->db_value(r, 0, 0),
	    "queued") != 0 || strcmp(api->db_value(r, 0, 1), "t") == 0) {
		/* Gone (erased), sent, adopted from a webhook or failed. */
		api->db_free(r);
		api->job_done(job, json_pack("{s:s}", "result", "nothing to "
		    "do"));
		ctx_free(c);
		return;
	}
	age = strtoll(api->db_value(r, 0, 2), NULL, 10);
	media_id = strtoll(api->db_value(r, 0, 4), NULL, 10);
	api->db_free(r);
	if (age >= 0 && age < (long long)wa_conf.inflight_grace_s) {
		/* A request of an earlier run may have reached Meta: its
		 * status webhook would name the message.  Wait for it. */
		api->job_retry(job, "in flight: waiting for Meta's status "
		    "webhook", (unsigned int)(wa_conf.inflight_grace_s - age));
		ctx_free(c);
		return;
	}
	if (age >= 0)
		api->log(self, SB_LOG_INFO, "message %s: no word from Meta "
		    "%lld s after a lost answer; sending it again", c->ids, age);
	if (!wa_send_ready()) {
		later(c, 0, "WhatsApp is not configured", NULL, 60);
		return;
	}
	if (media_id > 0) {
		rc = wa_media_graph_id(media_id, graph_id, sizeof(graph_id),
		    media_ready, c);
		if (rc == -2)
			media_ready(NULL, 0, "the attachment no longer exists",
			    c);
		else if (rc == -1)
			later(c, 0, "media upload could not start", NULL, 0);
		else if (rc == 1)
			send_graph(c, graph_id);
		return;
	}
	send_graph(c, NULL);
}

int
wa_send_setup(struct sb_plugin *p)
{
	send_kind.timeout_s = 2 * wa_conf.timeout_ms / 1000 + 10;
	if (api->routes_add(p, routes) != SB_OK ||
	    api->job_kind_add(p, &send_kind) != SB_OK)
		return (SB_ERROR);
	return (SB_OK);
}
