/*
 * Conversations (API.md "WhatsApp"): one open conversation per customer
 * number, NEW (the customer wrote, nobody answered) -> ACTIVE (an agent
 * answered, or the customer wrote again after the window closed) ->
 * EXPIRED (24 h since the customer's last message) -> CLOSED (by an
 * agent; the customer writing again starts a new conversation).  The
 * window is the customer's last message's time (Meta's timestamp) plus
 * 24 h; a delayed job per window end moves the conversation to EXPIRED
 * on time, and a periodic sweep catches any the jobs missed.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <switchboard/plugin.h>
#include <switchboard/helpers.h>

#include "wa.h"

#define api	wa_api
#define self	wa_self

#define EXPIRE_KIND	"whatsapp.conversation_expire"
#define SWEEP_KIND	"whatsapp.conversation_expire_sweep"
#define SWEEP_EVERY_S	60

static void	conv_list(struct sb_req *);
static void	conv_get(struct sb_req *);
static void	conv_messages(struct sb_req *);
static void	conv_assign(struct sb_req *);
static void	conv_close(struct sb_req *);
static void	conv_read(struct sb_req *);
static void	expire_run(struct sb_job *);

static const struct sb_field assign_body[] = {
	{ .name = "user_id", .type = SB_T_INT, .flags = SB_F_REQUIRED |
	  SB_F_NULLABLE | SB_F_RANGE, .min = 1, .max = INT64_MAX,
	  .description = "The staff user to assign; null unassigns" },
	SB_FIELD_END
};

static const struct sb_route routes[] = {
	{ .method = "GET", .path = "/api/v1/whatsapp/conversations",
	  .permission = "whatsapp.read", .handler = conv_list,
	  .summary = "Conversations, latest activity first (?status=, "
	  "comma-separated; ?assigned_to=<id>|me|none)" },
	{ .method = "GET", .path = "/api/v1/whatsapp/conversations/{id}",
	  .permission = "whatsapp.read", .handler = conv_get,
	  .summary = "One conversation" },
	{ .method = "GET",
	  .path = "/api/v1/whatsapp/conversations/{id}/messages",
	  .permission = "whatsapp.read", .handler = conv_messages,
	  .summary = "A conversation's messages, oldest first (?after_id=)" },
	{ .method = "PATCH",
	  .path = "/api/v1/whatsapp/conversations/{id}/assign",
	  .permission = "whatsapp.send", .handler = conv_assign,
	  .body = assign_body, .summary = "Assign to a staff user (or "
	  "unassign with null)" },
	{ .method = "PATCH",
	  .path = "/api/v1/whatsapp/conversations/{id}/close",
	  .permission = "whatsapp.send", .handler = conv_close,
	  .summary = "Close (409 when already closed)" },
	{ .method = "PATCH",
	  .path = "/api/v1/whatsapp/conversations/{id}/read",
	  .permission = "whatsapp.read", .handler = conv_read,
	  .summary = "Mark the conversation read (unread = 0)" },
	SB_ROUTE_END
};

static const struct sb_job_kind expire_kind = {
	.name = EXPIRE_KIND, .run = expire_run, .max_attempts = 8,
	.timeout_s = 30, .backoff_s = 2
};

static const struct sb_job_kind sweep_kind = {
	.name = SWEEP_KIND, .run = expire_run, .max_attempts = 1,
	.timeout_s = 60, .interval_s = SWEEP_EVERY_S
};

/* ---- conversations as the API shows them ---- */

#define CONV_COLS "c.id, c.customer_id, c.wa_sealed, c.status, " \
	"c.assigned_to, c.profile_name AS customer_name, " \
	SB_SQL_TS("c.last_inbound_at") " AS last_inbound_at, " \
	SB_SQL_TS("c.window_expires_at") " AS window_expires_at, " \
	SB_SQL_TS("c.last_message_at") " AS last_message_at, c.unread, " \
	SB_SQL_TS("c.created_at") " AS created_at, " \
	SB_SQL_TS("c.updated_at") " AS updated_at, " \
	"(SELECT json_build_object('id', l.id, 'type', l.type, 'direction', " \
	"l.direction, 'status', l.status, 'text', coalesce(l.text_sealed, " \
	"l.caption_sealed), 'template', l.template->>'name', 'created_at', " \
	SB_SQL_TS("l.created_at") ") FROM whatsapp_messages l WHERE " \
	"l.conversation_id = c.id ORDER BY l.id DESC LIMIT 1) AS last_message"

/* A row of CONV_COLS (stolen) as the API's conversation. */
static json_t *
conv_json(json_t *row)
{
	json_t	*last;
	char	*wa, *text;

	if (row == NULL)
		return (NULL);
	wa = api->unseal(self, sb_jstr(row, "wa_sealed"), NULL);
	json_object_set_new(row, "wa_id", wa != NULL ? json_string(wa + 1) :
	    json_null());
	json_object_set_new(row, "phone", wa != NULL ? json_string(wa) :
	    json_null());
	free(wa);
	json_object_del(row, "wa_sealed");
	last = json_object_get(row, "last_message");
	if (json_is_object(last) && sb_jstr(last, "text") != NULL) {
		text = api->unseal(self, sb_jstr(last, "text"), NULL);
		json_object_set_new(last, "text", text != NULL ?
		    json_string(text) : json_null());
		free(text);
	}
	if (json_is_object(last) && json_is_null(json_object_get(last,
	    "template")))
		json_object_del(last, "template");
	return (row);
}

json_t *
wa_conv_load(int64_t id, int *dberr)
{
	struct sb_db_res	*r;
	const char		*params[1];
	char			 ids[24];
	json_t			*c = NULL;

	(void)snprintf(ids, sizeof(ids), "%lld", (long long)id);
	params[0] = ids;
	*dberr = 0;
	r = api->db_query(self, "SELECT " CONV_COLS " FROM "
	    "whatsapp_conversations c WHERE c.id = $1::bigint", 1, params);
	if (!api->db_ok(r))
		*dberr = 1;
	else if (api->db_rows(r) == 1)
		c = conv_json(api->db_row_json(r, 0));
	api->db_free(r);
	return (c);
}

void
wa_conv_room(char *out, size_t len, int64_t id)
{
	(void)snprintf(out, len, WA_ROOM ":%lld", (long long)id);
}

/* A conversation as the whatsapp room sees it: no number, name or text
 * (events reach every plugin, and the audit log keeps them). */
static json_t *
conv_event(json_t *c)
{
	static const char *const keys[] = { "id", "customer_id", "status",
		"assigned_to", "last_inbound_at", "window_expires_at",
		"last_message_at", "unread", "created_at", "updated_at", NULL };
	json_t	*e = json_object(), *last;
	size_t	 i;

	for (i = 0; e != NULL && keys[i] != NULL; i++)
		if (json_object_get(c, keys[i]) != NULL)
			json_object_set(e, keys[i], json_object_get(c,
			    keys[i]));
	last = json_object_get(c, "last_message");
	if (e != NULL && json_is_object(last))
		json_object_set_new(e, "last_message", json_pack("{s:O?, s:O?, "
		    "s:O?, s:O?, s:O?}", "id", json_object_get(last, "id"),
		    "type", json_object_get(last, "type"), "direction",
		    json_object_get(last, "direction"), "status",
		    json_object_get(last, "status"), "created_at",
		    json_object_get(last, "created_at")));
	return (e);
}

/* The conversation, as it is now, to the whatsapp room after the commit. */
int
wa_conv_pub(int64_t id, json_t *pubs)
{
	json_t	*c;
	int	 dberr;

	if ((c = wa_conv_load(id, &dberr)) == NULL)
		return (dberr ? -1 : 0);
	wa_pub_add(pubs, WA_ROOM, "whatsapp.conversation.updated",
	    conv_event(c));
	json_decref(c);
	return (0);
}

/* ---- the window ---- */

void
wa_conv_expire_at(int64_t id, const char *expires_unix)
{
	struct sb_job_opts	 opts;
	struct timespec		 ts;
	json_t			*payload;
	char			 key[96];
	long long		 at, now;

	if (expires_unix == NULL)
		return;
	at = strtoll(expires_unix, NULL, 10);
	(void)clock_gettime(CLOCK_REALTIME, &ts);
	now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	memset(&opts, 0, sizeof(opts));
	(void)snprintf(key, sizeof(key), "whatsapp.expire:%lld:%lld",
	    (long long)id, at);
	opts.idempotency_key = key;
	/* A little after the end, so that the database's now() is past it
	 * whatever the clocks' rounding. */
	opts.delay_ms = at * 1000 + 50 > now ? at * 1000 + 50 - now : 0;
	payload = json_pack("{s:I, s:I}", "id", (json_int_t)id, "end",
	    (json_int_t)at);
	if (payload == NULL || api->job_enqueue(self, EXPIRE_KIND, payload,
	    &opts) == -1)
		api->log(self, SB_LOG_WARN, "conversation %lld: the expiry job "
		    "could not be queued (the sweep will expire it)",
		    (long long)id);
	json_decref(payload);
}

/*
 * Conversation id is not expired yet at its job's run: a job for its
 * window's new end when the window moved forward (the customer wrote
 * again).  1 when the window is still the job's own (end: the clocks
 * disagree by a little; the caller runs the job again shortly), 0
 * otherwise, -1 on a database error.
 */
static int
follow(int64_t id, json_int_t end)
{
	struct sb_db_res	*r;
	const char		*params[1];
	char			 ids[24];
	int			 rc = 0;

	(void)snprintf(ids, sizeof(ids), "%lld", (long long)id);
	params[0] = ids;
	r = api->db_query(self, "SELECT ceil(extract(epoch FROM "
	    "window_expires_at))::bigint FROM whatsapp_conversations WHERE id "
	    "= $1::bigint AND status IN ('NEW', 'ACTIVE') AND "
	    "window_expires_at > now()", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (-1);
	}
	if (api->db_rows(r) == 1) {
		if (strtoll(api->db_value(r, 0, 0), NULL, 10) == end)
			rc = 1;
		else
			wa_conv_expire_at(id, api->db_value(r, 0, 0));
	}
	api->db_free(r);
	return (rc);
}

/* This expiry job once more in a second, as a new job (a retry would
 * count as a failed attempt). */
static int
again(struct sb_job *job)
{
	struct sb_job_opts	 opts;
	char			 key[64];

	memset(&opts, 0, sizeof(opts));
	(void)snprintf(key, sizeof(key), "whatsapp.expire+%lld",
	    (long long)api->job_id(job));
	opts.idempotency_key = key;
	opts.delay_ms = 1000;
	return (api->job_enqueue(self, EXPIRE_KIND, api->job_payload(job),
	    &opts) == -1 ? -1 : 0);
}

/*
 * EXPIRE_KIND ({id}: one conversation whose window should have ended) and
 * SWEEP_KIND (no payload: every conversation past its window).  A window
 * that moved forward since the job was queued gets a job for its new
 * end (one job per conversation at a time).
 */
static void
expire_run(struct sb_job *job)
{
	struct sb_db_res	*r;
	const char		*params[1];
	char			 ids[24];
	json_t			*pubs;
	json_int_t		 id = sb_jint(api->job_payload(job), "id");
	int			 i, n;

	(void)snprintf(ids, sizeof(ids), "%lld", (long long)id);
	params[0] = id > 0 ? ids : NULL;
	if (api->db_begin(self) != SB_OK) {
		api->job_retry(job, "database error", 0);
		return;
	}
	r = api->db_query(self, "UPDATE whatsapp_conversations SET status = "
	    "'EXPIRED', updated_at = now() WHERE id IN (SELECT id FROM "
	    "whatsapp_conversations WHERE status IN ('NEW', 'ACTIVE') AND "
	    "window_expires_at <= now() AND ($1::bigint IS NULL OR id = "
	    "$1::bigint) ORDER BY window_expires_at LIMIT 1000 FOR UPDATE "
	    "SKIP LOCKED) RETURNING id", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		api->db_rollback(self);
		api->job_retry(job, "database error", 0);
		return;
	}
	pubs = json_array();
	n = api->db_rows(r);
	for (i = 0; i < n; i++)
		if (wa_conv_pub(strtoll(api->db_value(r, i, 0), NULL, 10),
		    pubs) == -1)
			break;
	api->db_free(r);
	if (i < n || api->db_commit(self) != SB_OK) {
		api->db_rollback(self);
		json_decref(pubs);
		api->job_retry(job, "database error", 0);
		return;
	}
	wa_publish_all(pubs);
	json_decref(pubs);
	if (id > 0 && n == 0 && (n = follow(id, sb_jint(api->job_payload(job),
	    "end"))) != 0) {
		if (n == -1 || again(job) == -1) {
			api->job_retry(job, "database error", 0);
			return;
		}
		n = 0;
	}
	api->job_done(job, json_pack("{s:i}", "expired", n));
}

/* ---- the conversation of a message ---- */

int64_t
wa_conv_touch(int64_t customer_id, const char *e164, const char *index,
    const char *inbound_unix, unsigned int inbound_n, const char *name,
    int *created)
{
	struct sb_db_res	*r;
	const char		*params[6];
	char			 cids[24], ns[16], *wa_s = NULL;
	int64_t			 id = -1;
	int			 made = 0, pending = 1;

	*created = 0;
	params[0] = index;
	if (sb_db_count(api, self, "SELECT pg_advisory_xact_lock(hashtext("
	    "'whatsapp:' || $1))", 1, params) != 1)
		return (-1);
	(void)snprintf(cids, sizeof(cids), "%lld", (long long)customer_id);
	(void)snprintf(ns, sizeof(ns), "%u", inbound_n);
	/* The customer's time, never ahead of ours.  The old row (o) says
	 * whether an expiry job is waiting: none for a window that had
	 * ended or never began. */
	params[0] = index;
	params[1] = inbound_unix;
	params[2] = name != NULL && *name != '\0' ? name : NULL;
	params[3] = ns;
	r = api->db_query(self, "UPDATE whatsapp_conversations c SET "
	    "profile_name = coalesce($3, c.profile_name), last_inbound_at = "
	    "CASE WHEN $2::text IS NULL THEN c.last_inbound_at ELSE greatest("
	    "c.last_inbound_at, least(now(), to_timestamp($2::double "
	    "precision))) END, window_expires_at = CASE WHEN $2::text IS NULL "
	    "THEN c.window_expires_at ELSE greatest(c.window_expires_at, "
	    "least(now(), to_timestamp($2::double precision)) + interval "
	    "'24 hours') END, status = CASE WHEN $2::text IS NULL THEN (CASE "
	    "WHEN c.status = 'NEW' THEN 'ACTIVE' ELSE c.status END) WHEN "
	    "c.status = 'EXPIRED' AND least(now(), to_timestamp($2::double "
	    "precision)) + interval '24 hours' > now() THEN 'ACTIVE' ELSE "
	    "c.status END, unread = CASE WHEN $2::text IS NULL THEN 0 ELSE "
	    "c.unread + $4::int END, last_message_at = now(), updated_at = "
	    "now() FROM (SELECT id, status, window_expires_at FROM "
	    "whatsapp_conversations WHERE wa_index = $1 AND status <> "
	    "'CLOSED' FOR UPDATE) o WHERE c.id = o.id RETURNING c.id, "
	    "ceil(extract(epoch FROM c.window_expires_at))::bigint, c.status, "
	    "o.status = 'EXPIRED' OR o.window_expires_at IS NULL OR "
	    "o.window_expires_at <= now()", 4, params);
	if (!api->db_ok(r))
		goto done;
	if (api->db_rows(r) == 0) {
		api->db_free(r);
		if ((wa_s = api->seal(self, e164, strlen(e164))) == NULL)
			return (-1);
		params[0] = index;
		params[1] = inbound_unix;
		params[2] = cids;
		params[3] = wa_s;
		params[4] = name != NULL && *name != '\0' ? name : NULL;
		params[5] = ns;
		/* A new conversation: from a customer's message NEW; from a
		 * send ACTIVE, its window the one the customer's last
		 * message (in an earlier conversation) left open. */
		r = api->db_query(self, "WITH prev AS (SELECT max("
		    "last_inbound_at) AS at FROM whatsapp_conversations WHERE "
		    "wa_index = $1), t AS (SELECT CASE WHEN $2::text IS NULL "
		    "THEN (SELECT at FROM prev) ELSE least(now(), to_timestamp("
		    "$2::double precision)) END AS at) INSERT INTO "
		    "whatsapp_conversations (customer_id, wa_sealed, wa_index, "
		    "status, last_inbound_at, window_expires_at, "
		    "last_message_at, unread, profile_name) SELECT $3::bigint, "
		    "$4, $1, CASE WHEN $2::text IS NULL THEN 'ACTIVE' ELSE 'NEW' "
		    "END, t.at, t.at + interval '24 hours', now(), CASE WHEN "
		    "$2::text IS NULL THEN 0 ELSE $6::int END, $5 FROM t "
		    "RETURNING id, ceil(extract(epoch FROM window_expires_at))::"
		    "bigint, status, true", 6, params);
		if (!api->db_ok(r) || api->db_rows(r) != 1)
			goto done;
		made = 1;
	}
	id = strtoll(api->db_value(r, 0, 0), NULL, 10);
	/* One expiry job per window: a window that moves forward is
	 * followed by its job (expire_run). */
	pending = strcmp(api->db_value(r, 0, 3), "t") != 0;
	if (!pending && !api->db_isnull(r, 0, 1) &&
	    strcmp(api->db_value(r, 0, 2), "EXPIRED") != 0)
		wa_conv_expire_at(id, api->db_value(r, 0, 1));
	*created = made;
done:
	api->db_free(r);
	free(wa_s);
	return (id);
}

/* ---- routes ---- */

static const char *const statuses[] = { "NEW", "ACTIVE", "EXPIRED",
	"CLOSED", NULL };

/* ?status=NEW,ACTIVE as a JSON array text, or NULL; -1 after a 400. */
static int
status_filter(struct sb_req *req, char **out)
{
	const char	*v = api->req_query(req, "status"), *s, *e;
	json_t		*arr;
	size_t		 i, n;

	*out = NULL;
	if (v == NULL || *v == '\0')
		return (0);
	arr = json_array();
	for (s = v; arr != NULL; s = e + 1) {
		e = strchr(s, ',');
		n = e != NULL ? (size_t)(e - s) : strlen(s);
		for (i = 0; statuses[i] != NULL; i++)
			if (strlen(statuses[i]) == n &&
			    strncasecmp(statuses[i], s, n) == 0)
				break;
		if (statuses[i] == NULL) {
			json_decref(arr);
			wa_err_field(req, 400, "status", "INVALID_CHOICE",
			    "status is NEW, ACTIVE, EXPIRED or CLOSED (a comma "
			    "list allowed)");
			return (-1);
		}
		json_array_append_new(arr, json_string(statuses[i]));
		if (e == NULL)
			break;
	}
	*out = arr != NULL ? json_dumps(arr, JSON_COMPACT) : NULL;
	json_decref(arr);
	return (*out != NULL ? 0 : -1);
}

static json_t *
list_map(struct sb_req *req, json_t *row, void *arg)
{
	(void)req;
	(void)arg;
	return (conv_json(row));
}

static void
conv_list(struct sb_req *req)
{
	const struct sb_principal	*who = api->req_principal(req);
	struct sb_list			 list;
	struct sb_db_res		*r;
	const char			*params[6], *assigned, *cur_ts = NULL;
	char				*st = NULL, me[24], cts[40], cid[24];
	long long			 a, b;

	memset(&list, 0, sizeof(list));
	list.size = sizeof(list);
	if (api->list_parse(req, &list, 0) != SB_OK)
		return;
	if (status_filter(req, &st) == -1)
		return;
	assigned = api->req_query(req, "assigned_to");
	if (assigned != NULL && strcmp(assigned, "me") == 0) {
		(void)snprintf(me, sizeof(me), "%lld", (long long)who->id);
		assigned = me;
	} else if (assigned != NULL && strcmp(assigned, "none") != 0 &&
	    sb_positive_id(assigned) == NULL) {
		wa_err_field(req, 400, "assigned_to", "INVALID_FORMAT", "a "
		    "user id, me or none");
		goto done;
	}
	/* The cursor: "<activity in µs since the epoch>.<id>". */
	if (list.cursor != NULL) {
		char	end;

		if (sscanf(list.cursor, "%lld.%lld%c", &a, &b, &end) != 2 ||
		    a < 0 || b <= 0) {
			wa_err_field(req, 400, "cursor", "INVALID_FORMAT", "not "
			    "a cursor of this list");
			goto done;
		}
		(void)snprintf(cts, sizeof(cts), "%lld", a);
		(void)snprintf(cid, sizeof(cid), "%lld", b);
		cur_ts = cts;
	}
	params[0] = st;
	params[1] = assigned;
	params[2] = cur_ts;
	params[3] = cur_ts != NULL ? cid : NULL;
	params[4] = list.limit_plus_one;
	r = api->db_query(self, "SELECT " CONV_COLS ", (extract(epoch FROM "
	    "coalesce(c.last_message_at, c.created_at)) * 1000000)::bigint || "
	    "'.' || c.id AS _cursor FROM whatsapp_conversations c WHERE "
	    "($1::jsonb IS NULL OR $1::jsonb ? c.status) AND ($2::text IS NULL "
	    "OR ($2 = 'none' AND c.assigned_to IS NULL) OR c.assigned_to::text "
	    "= $2) AND ($3::bigint IS NULL OR ((extract(epoch FROM "
	    "coalesce(c.last_message_at, c.created_at)) * 1000000)::bigint, "
	    "c.id) < ($3::bigint, $4::bigint)) ORDER BY (extract(epoch FROM "
	    "coalesce(c.last_message_at, c.created_at)) * 1000000)::bigint "
	    "DESC, c.id DESC LIMIT $5::int", 5, params);
	/* list_respond takes r. */
	api->list_respond(req, r, &list, "_cursor", list_map, NULL);
done:
	free(st);
}

/* The conversation of the {id} path, answered 404 when none. */
static json_t *
conv_of_req(struct sb_req *req, const char **ids)
{
	json_t	*c;
	int	 dberr;

	if ((*ids = sb_positive_id(api->req_param(req, "id"))) == NULL) {
		api->respond_error(req, 404, "NOT_FOUND", "no such "
		    "conversation", NULL);
		return (NULL);
	}
	if ((c = wa_conv_load(strtoll(*ids, NULL, 10), &dberr)) == NULL) {
		if (dberr)
			wa_err_db(req);
		else
			api->respond_error(req, 404, "NOT_FOUND", "no such "
			    "conversation", NULL);
	}
	return (c);
}

static void
conv_get(struct sb_req *req)
{
	const char	*ids;
	json_t		*c;

	if ((c = conv_of_req(req, &ids)) != NULL)
		api->respond_json(req, 200, c);
}

static json_t *
msg_map(struct sb_req *req, json_t *row, void *arg)
{
	(void)req;
	(void)arg;
	return (wa_msg_json(row));
}

static void
conv_messages(struct sb_req *req)
{
	struct sb_list		 list;
	struct sb_db_res	*r;
	const char		*params[3], *ids, *after;
	json_t			*c;

	if ((c = conv_of_req(req, &ids)) == NULL)
		return;
	json_decref(c);
	memset(&list, 0, sizeof(list));
	list.size = sizeof(list);
	if (api->list_parse(req, &list, SB_LIST_ID_CURSOR) != SB_OK)
		return;
	after = api->req_query(req, "after_id");
	if (after != NULL && sb_positive_id(after) == NULL) {
		wa_err_field(req, 400, "after_id", "INVALID_FORMAT", "a "
		    "message id");
		return;
	}
	/* Oldest first: the cursor (or after_id) is the last id shown. */
	params[0] = ids;
	params[1] = list.cursor != NULL ? list.cursor : after;
	params[2] = list.limit_plus_one;
	r = api->db_query(self, "SELECT " WA_MSG_COLS ", m.id AS _cursor FROM "
	    "whatsapp_messages m WHERE m.conversation_id = $1::bigint AND "
	    "($2::bigint IS NULL OR m.id > $2::bigint) ORDER BY m.id LIMIT "
	    "$3::int", 3, params);
	api->list_respond(req, r, &list, "_cursor", msg_map, NULL);
}

/*
 * One UPDATE of the {id} conversation (sql with $1 the id and $2 arg),
 * answered with the conversation and published; 404 when there is none,
 * 409 with conflict when the update matched nothing.
 */
static void
conv_update(struct sb_req *req, const char *sql, const char *arg,
    const char *conflict)
{
	const char	*params[2], *ids;
	json_t		*c, *pubs;
	long long	 n;
	int		 dberr;

	if ((c = conv_of_req(req, &ids)) == NULL)
		return;
	json_decref(c);
	params[0] = ids;
	params[1] = arg;
	if ((n = sb_db_count(api, self, sql, 2, params)) == -1) {
		wa_err_db(req);
		return;
	}
	if (n == 0) {
		api->respond_error(req, 409, "CONFLICT", conflict, NULL);
		return;
	}
	if ((c = wa_conv_load(strtoll(ids, NULL, 10), &dberr)) == NULL) {
		wa_err_db(req);
		return;
	}
	pubs = json_array();
	wa_pub_add(pubs, WA_ROOM, "whatsapp.conversation.updated",
	    conv_event(c));
	wa_publish_all(pubs);
	json_decref(pubs);
	api->respond_json(req, 200, c);
}

static void
conv_assign(struct sb_req *req)
{
	json_t		*b = api->req_json(req);
	const char	*params[1];
	char		 uid[24];
	long long	 n;

	if (json_is_integer(json_object_get(b, "user_id"))) {
		(void)snprintf(uid, sizeof(uid), "%lld",
		    (long long)sb_jint(b, "user_id"));
		params[0] = uid;
		n = sb_db_count(api, self, "SELECT 1 FROM users WHERE id = "
		    "$1::bigint AND is_active", 1, params);
		if (n == -1) {
			wa_err_db(req);
			return;
		}
		if (n == 0) {
			wa_err_field(req, 422, "user_id", "NOT_FOUND", "no such "
			    "active user");
			return;
		}
		conv_update(req, "UPDATE whatsapp_conversations SET "
		    "assigned_to = $2::bigint, updated_at = now() WHERE id = "
		    "$1::bigint RETURNING 1", uid, NULL);
	} else
		conv_update(req, "UPDATE whatsapp_conversations SET "
		    "assigned_to = NULL, updated_at = now() WHERE id = "
		    "$1::bigint AND $2::text IS NULL RETURNING 1", NULL, NULL);
}

static void
conv_close(struct sb_req *req)
{
	conv_update(req, "UPDATE whatsapp_conversations SET status = "
	    "'CLOSED', unread = 0, updated_at = now() WHERE id = $1::bigint "
	    "AND status <> 'CLOSED' AND $2::text IS NULL RETURNING 1", NULL,
	    "the conversation is already closed");
}

static void
conv_read(struct sb_req *req)
{
	conv_update(req, "UPDATE whatsapp_conversations SET unread = 0, "
	    "updated_at = now() WHERE id = $1::bigint AND $2::text IS NULL "
	    "RETURNING 1", NULL, NULL);
}

int
wa_conv_setup(struct sb_plugin *p)
{
	if (api->routes_add(p, routes) != SB_OK ||
	    api->job_kind_add(p, &expire_kind) != SB_OK ||
	    api->job_kind_add(p, &sweep_kind) != SB_OK)
		return (SB_ERROR);
	return (SB_OK);
}
