/*
 * The calls plugin: video, audio and screen-share calls on a concierge
 * query, through Daily.co (API.md, "Calls").  A donor asks for a call, staff
 * accept it (or start one directly); the plugin creates a private Daily
 * room that expires and two meeting tokens scoped to it, one per side,
 * and keeps them sealed in the database.  A session moves CREATED ->
 * STARTED -> ENDED through session_legal() only, whether a participant,
 * Daily's webhook or the expiry sweep moves it; every such change writes a
 * CALL_STARTED / CALL_ENDED message into the query's thread, and an ended
 * session's room is deleted at Daily by a durable job.
 *
 * The query and its thread belong to concierge: calls reads and writes
 * them only through concierge's "concierge.thread" service
 * (<switchboard/services/concierge.h>), which runs on this worker's
 * connection, so the thread message is part of calls' own transaction.
 */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <switchboard/plugin.h>
#include <switchboard/helpers.h>
#include <switchboard/services/concierge.h>

static const struct sb_host_api	*api;
/* concierge.thread, set by the host once setup() has succeeded. */
static const struct sb_service	*thread_svc;
#define THREAD	((const struct sb_concierge_thread *)thread_svc)

#define TS(c)	SB_SQL_TS(c)
#define R_COLS	"id, query_id, mode, message, status, handled_by, " \
		TS("created_at") " AS created_at, " \
		TS("updated_at") " AS updated_at"
/* A session row as the API shows it, then what only the plugin reads:
 * session_out() strips those before anything leaves. */
#define S_COLS	"id, query_id, request_id, admin_id, room_name, room_url, " \
		"mode, status, " TS("started_at") " AS started_at, " \
		TS("ended_at") " AS ended_at, " \
		TS("expires_at") " AS expires_at, " \
		TS("created_at") " AS created_at, " \
		TS("updated_at") " AS updated_at, " \
		"donor_id, admin_token, donor_token"

#define OPEN_QUERY(s)	((s) != NULL && (strcmp((s), "IN_PROGRESS") == 0 || \
			 strcmp((s), "TRANSFERRED") == 0))

/*
 * What Daily takes in a meeting token.  user_id: at most 36 characters
 * (documented), while a donor id may have 100, so a donor's is a digest
 * (donor_user_id()).  user_name: Daily documents no limit; display names
 * (up to 200 characters here) are cut well short of any plausible one.
 */
#define DAILY_USER_ID_MAX	36
#define DONOR_DIGEST_CHARS	22	/* base64url: 132 bits of SHA-256 */
#define USER_NAME_MAX		64	/* characters */
_Static_assert(sizeof("donor:") - 1 + DONOR_DIGEST_CHARS <= DAILY_USER_ID_MAX,
    "a donor's user_id must fit Daily's limit");
_Static_assert(sizeof("staff:-9223372036854775808") - 1 <= DAILY_USER_ID_MAX,
    "a staff user_id must fit Daily's limit");

/* From here an X-Webhook-Timestamp is in milliseconds (1e11 seconds is
 * the year 5138; 1e11 milliseconds was in 1973). */
#define WEBHOOK_TS_MS_FROM	100000000000LL

enum mode { MODE_VIDEO, MODE_AUDIO, MODE_SCREEN };

static const char *const modes[] = { "VIDEO", "AUDIO", "SCREEN", NULL };
static const char *const mode_labels[] = { "Video call", "Audio call",
    "Screen-share call" };
static const char *const session_statuses[] = { "CREATED", "STARTED",
    "ENDED", NULL };

/*
 * One accept (or direct start) in flight: three calls to Daily, one
 * after the other, then one transaction.  Owned by the HTTP callbacks;
 * call_free() on every path.
 */
struct call {
	struct sb_plugin	*p;
	struct sb_req		*req;
	enum mode		 mode;
	json_int_t		 query_id;
	json_int_t		 admin_id;
	char			*admin_name;
	char			*donor_id;
	char			*donor_name;
	char			 admin_uid[DAILY_USER_ID_MAX + 1];
	char			 donor_uid[DAILY_USER_ID_MAX + 1];
	json_t			*request;	/* claimed request, or NULL */
	char			 room[64];
	long long		 exp;		/* unix seconds */
	int			 room_sent;	/* Daily may hold the room */
	char			*room_url;
	char			*admin_token;
	char			*donor_token;
};

static void	r_create(struct sb_req *);
static void	r_list(struct sb_req *);
static void	r_accept(struct sb_req *);
static void	r_reject(struct sb_req *);
static void	r_cancel(struct sb_req *);
static void	s_start(struct sb_req *);
static void	s_list(struct sb_req *);
static void	s_status(struct sb_req *);
static void	s_end(struct sb_req *);
static void	webhook(struct sb_req *);
static void	delete_room_run(struct sb_job *);
static void	cleanup_run(struct sb_job *);

static void	call_start(struct call *);
static void	call_room_done(struct sb_plugin *,
		    const struct sb_http_response *, void *);
static void	call_admin_token_done(struct sb_plugin *,
		    const struct sb_http_response *, void *);
static void	call_donor_token_done(struct sb_plugin *,
		    const struct sb_http_response *, void *);
static void	call_finish(struct call *);
static void	call_fail(struct call *, int, const char *, const char *);
static void	call_free(struct call *);
static void	delete_room_done(struct sb_plugin *,
		    const struct sb_http_response *, void *);

static const struct sb_config_key config_keys[] = {
	{ .key = "daily_api_url", .default_value = "https://api.daily.co/v1",
	  .description = "Daily REST API base URL" },
	{ .key = "daily_api_key", .flags = SB_CONF_SECRET,
	  .description = "Daily API key; without it the routes that call "
	  "Daily answer 503" },
	{ .key = "webhook_secret", .flags = SB_CONF_SECRET,
	  .description = "The Daily webhook's base64 HMAC secret; without it "
	  "the webhook answers 503" },
	{ .key = "room_ttl", .default_value = "3600",
	  .description = "Seconds a room and its tokens live (Daily exp)" },
	{ .key = "max_participants", .default_value = "2",
	  .description = "Daily max_participants of each room" },
	{ .key = "daily_timeout_ms", .default_value = "10000",
	  .description = "Timeout of each call to Daily" },
	{ .key = "cleanup_interval", .default_value = "300",
	  .description = "Seconds between two sweeps for expired sessions" },
	{ .key = "webhook_tolerance", .default_value = "300",
	  .description = "Seconds a webhook timestamp may be off from now" },
	SB_CONFIG_END
};

/* Not const: setup() sets the lease from daily_timeout_ms. */
static struct sb_job_kind delete_room_kind = {
	.name = "calls.delete_room", .run = delete_room_run,
	.max_attempts = 8, .timeout_s = 25, .backoff_s = 5
};

/* Not const: setup() sets interval_s from cleanup_interval. */
static struct sb_job_kind cleanup_kind = {
	.name = "calls.cleanup", .run = cleanup_run,
	.max_attempts = 3, .timeout_s = 60, .interval_s = 300
};

static const struct sb_field request_body[] = {
	{ .name = "mode", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .max_len = 16, .choices = modes,
	  .description = "VIDEO, AUDIO or SCREEN" },
	{ .name = "message", .type = SB_T_STRING, .flags = SB_F_NULLABLE,
	  .max_len = 1000, .description = "A note for the staff" },
	SB_FIELD_END
};

static const struct sb_field start_body[] = {
	{ .name = "mode", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .max_len = 16, .choices = modes,
	  .description = "VIDEO, AUDIO or SCREEN" },
	SB_FIELD_END
};

static const struct sb_field status_body[] = {
	{ .name = "status", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .max_len = 16, .choices = session_statuses,
	  .description = "STARTED or ENDED" },
	SB_FIELD_END
};

#define CB	"/api/v1/communication/call"
static const struct sb_route routes[] = {
	{ .method = "POST", .path = CB "/{query_id}/request",
	  .flags = SB_ROUTE_DONOR, .handler = r_create,
	  .summary = "Ask for a call (owning donor)", .body = request_body,
	  .body_max = 8192 },
	{ .method = "GET", .path = CB "/{query_id}/requests",
	  .flags = SB_ROUTE_STAFF, .handler = r_list,
	  .summary = "A query's call requests, newest first" },
	{ .method = "POST", .path = CB "/{query_id}/accept-request",
	  .permission = "calls.handle", .handler = r_accept,
	  .summary = "Accept the query's pending call request" },
	{ .method = "POST",
	  .path = CB "/{query_id}/accept-request/{request_id}",
	  .permission = "calls.handle", .handler = r_accept,
	  .summary = "Accept a call request" },
	{ .method = "POST",
	  .path = CB "/{query_id}/reject-request/{request_id}",
	  .permission = "calls.handle", .handler = r_reject,
	  .summary = "Reject a call request" },
	{ .method = "POST",
	  .path = CB "/{query_id}/cancel-request/{request_id}",
	  .flags = SB_ROUTE_DONOR, .handler = r_cancel,
	  .summary = "Cancel a call request (owning donor)" },
	{ .method = "POST", .path = CB "/{query_id}",
	  .permission = "calls.handle", .handler = s_start,
	  .summary = "Start a call directly", .body = start_body,
	  .body_max = 4096 },
	{ .method = "GET", .path = "/api/v1/communication/calls/{query_id}",
	  .flags = SB_ROUTE_AUTHENTICATED, .handler = s_list,
	  .summary = "A query's call sessions (staff or the owning donor)" },
	{ .method = "PUT", .path = CB "/{room_name}/status",
	  .flags = SB_ROUTE_AUTHENTICATED, .handler = s_status,
	  .summary = "Move a session (participants)", .body = status_body,
	  .body_max = 4096 },
	{ .method = "POST", .path = CB "/{room_name}/end",
	  .flags = SB_ROUTE_AUTHENTICATED, .handler = s_end,
	  .summary = "End a session and delete its room (participants)" },
	{ .method = "POST", .path = "/api/v1/webhooks/daily",
	  .flags = SB_ROUTE_PUBLIC | SB_ROUTE_WEBHOOK, .handler = webhook,
	  .summary = "Daily webhook (HMAC-verified)", .body_max = 65536 },
	SB_ROUTE_END
};

/* Configuration, read once in setup() (inherited by the workers). */
static char		daily_url[512];
static char		daily_auth[512];	/* "Bearer <key>", or "" */
static unsigned char	hook_key[256];		/* decoded webhook_secret */
static size_t		hook_key_len;		/* 0: webhook not configured */
static long long	room_ttl, max_participants, webhook_tolerance;
static unsigned int	daily_timeout_ms;

/* ---- helpers ---- */

static void
err_db(struct sb_req *req)
{
	api->respond_error(req, 503, "UNAVAILABLE", "database unavailable",
	    NULL);
}

static void
err_query(struct sb_req *req)
{
	api->respond_error(req, 404, "NOT_FOUND", "no such query", NULL);
}

/* A positive id of at most 18 digits, or NULL. */
static const char *
param_id(struct sb_req *req, const char *name)
{
	return (sb_positive_id(api->req_param(req, name)));
}

/* Daily's room-name alphabet; ours are "sb-q<id>-<hex>". */
static int
room_name_valid(const char *s)
{
	size_t	i;

	if (s == NULL || *s == '\0' || strlen(s) > 128)
		return (0);
	for (i = 0; s[i] != '\0'; i++) {
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' &&
		    s[i] != '_')
			return (0);
	}
	return (1);
}

/*
 * A donor's Daily user_id: "donor:" and the first DONOR_DIGEST_CHARS of
 * base64url(SHA-256(donor_id)).  The same donor gets the same id on every
 * call (Daily's meeting events can be matched up), the id fits Daily's 36
 * characters whatever the donor id's length, and the donor id itself is
 * not handed to Daily.  0, or -1 when hashing fails.
 */
static int
donor_user_id(const char *donor_id, char *out, size_t len)
{
	unsigned char	md[EVP_MAX_MD_SIZE];
	unsigned char	b64[((EVP_MAX_MD_SIZE + 2) / 3) * 4 + 1];
	unsigned int	mdlen = 0;
	size_t		i;

	if (len < sizeof("donor:") + DONOR_DIGEST_CHARS ||
	    EVP_Digest(donor_id, strlen(donor_id), md, &mdlen, EVP_sha256(),
	    NULL) != 1 || mdlen < 32)
		return (-1);
	(void)EVP_EncodeBlock(b64, md, (int)mdlen);
	for (i = 0; i < DONOR_DIGEST_CHARS; i++) {
		if (b64[i] == '+')
			b64[i] = '-';
		else if (b64[i] == '/')
			b64[i] = '_';
	}
	snprintf(out, len, "donor:%.*s", DONOR_DIGEST_CHARS, (char *)b64);
	return (0);
}

/*
 * Cut s (UTF-8) to at most max characters, before a lead byte, so what
 * is left is still valid UTF-8 for jansson and Daily.
 */
static void
name_clip(char *s, size_t max)
{
	size_t	i, n = 0;

	for (i = 0; s[i] != '\0'; i++) {
		if (((unsigned char)s[i] & 0xc0) != 0x80 && n++ == max) {
			s[i] = '\0';
			return;
		}
	}
}

static int
mode_parse(const char *s)
{
	int	i;

	for (i = 0; s != NULL && modes[i] != NULL; i++) {
		if (strcmp(modes[i], s) == 0)
			return (i);
	}
	return (-1);
}

static int
daily_ready(struct sb_req *req)
{
	if (daily_auth[0] != '\0')
		return (1);
	api->respond_error(req, 503, "UNAVAILABLE", "calls are not "
	    "configured: set daily_api_key", NULL);
	return (0);
}

/* Accepting and starting make the caller a participant: a person. */
static int
staff_user(struct sb_req *req)
{
	if (api->req_principal(req)->kind == SB_ACTOR_USER)
		return (1);
	api->respond_error(req, 403, "FORBIDDEN", "only a staff user can "
	    "take part in a call", NULL);
	return (0);
}

/*
 * The query in {query_id}: id, donor, donor_id, status, assigned_to and
 * whether it has a live session.  Answers and returns NULL when it is
 * missing or the caller is a donor who does not own it.
 */
static json_t *
query_for(struct sb_req *req)
{
	struct sb_plugin		*p = api->req_plugin(req);
	const struct sb_principal	*who = api->req_principal(req);
	struct sb_db_res		*r;
	const char			*params[1];
	json_t				*q;
	int				 dberr;

	if ((params[0] = param_id(req, "query_id")) == NULL) {
		err_query(req);
		return (NULL);
	}
	q = THREAD->query_get(p, strtoll(params[0], NULL, 10), 0, &dberr);
	if (dberr) {
		err_db(req);
		return (NULL);
	}
	if (q == NULL || (who->kind == SB_ACTOR_DONOR &&
	    (who->donor_id == NULL || sb_jstr(q, "donor_id") == NULL ||
	    strcmp(who->donor_id, sb_jstr(q, "donor_id")) != 0))) {
		json_decref(q);
		err_query(req);
		return (NULL);
	}
	r = api->db_query(p, "SELECT EXISTS (SELECT 1 FROM calls_sessions "
	    "WHERE query_id = $1::bigint AND status <> 'ENDED')", 1, params);
	if (!api->db_ok(r) || api->db_rows(r) != 1) {
		api->db_free(r);
		json_decref(q);
		err_db(req);
		return (NULL);
	}
	json_object_set_new(q, "live", json_boolean(strcmp(api->db_value(r,
	    0, 0), "t") == 0));
	api->db_free(r);
	return (q);
}

/* A call needs an open query; a new session, no live one. */
static int
query_callable(struct sb_req *req, json_t *q, int new_session)
{
	char	msg[128];

	if (!OPEN_QUERY(sb_jstr(q, "status"))) {
		snprintf(msg, sizeof(msg), "no calls on a query that is %s",
		    sb_jstr(q, "status") != NULL ? sb_jstr(q, "status") : "gone");
		api->respond_error(req, 409, "CONFLICT", msg, NULL);
		return (0);
	}
	if (new_session && json_is_true(json_object_get(q, "live"))) {
		api->respond_error(req, 409, "CONFLICT", "the query already "
		    "has a call in progress", NULL);
		return (0);
	}
	return (1);
}

/*
 * Publish an event to everyone who follows the query: its room, the
 * agents, its assignee and, for sessions, the staff user in the call.
 */
static void
publish_call(struct sb_plugin *p, json_int_t qid, json_int_t admin_id,
    const char *event, json_t *data)
{
	json_t			*q, *ev;
	char			 room[48];
	json_int_t		 assignee = 0;
	int			 dberr;

	if ((q = THREAD->query_get(p, qid, 0, &dberr)) != NULL)
		assignee = sb_jint(q, "assigned_to");
	/* The event says who had the query when it happened (null: nobody),
	 * fixed before the caller hears back: a notification fanned out
	 * after a later accept still goes to the recipients of this moment.
	 * Without the query (a database error) the key is absent. */
	if ((ev = json_copy(data)) == NULL) {
		json_decref(q);
		return;
	}
	if (q != NULL)
		json_object_set_new(ev, "assigned_to", assignee > 0 ?
		    json_integer(assignee) : json_null());
	json_decref(q);

	snprintf(room, sizeof(room), "query:%lld", (long long)qid);
	api->publish_room(p, room, event, 1, ev);
	api->publish_room(p, "agents", event, 1, ev);
	if (assignee > 0) {
		snprintf(room, sizeof(room), "user:%lld", (long long)assignee);
		api->publish_room(p, room, event, 1, ev);
	}
	if (admin_id > 0 && admin_id != assignee) {
		snprintf(room, sizeof(room), "user:%lld", (long long)admin_id);
		api->publish_room(p, room, event, 1, ev);
	}
	json_decref(ev);
}

/* The room's deletion at Daily: once per room, whoever asks. */
static int
enqueue_delete(struct sb_plugin *p, const char *room)
{
	struct sb_job_opts	 opts;
	json_t			*payload;
	int64_t			 id;

	memset(&opts, 0, sizeof(opts));
	opts.idempotency_key = room;
	payload = json_pack("{s:s}", "room_name", room);
	id = api->job_enqueue(p, "calls.delete_room", payload, &opts);
	json_decref(payload);
	if (id == -1)
		api->log(p, SB_LOG_ERROR, "cannot enqueue the deletion of "
		    "room %s", room);
	return (id == -1 ? -1 : 0);
}

/* ---- requests ---- */

/* Why a request could not be moved: answers 404 or 409. */
static void
request_conflict(struct sb_req *req, const char *rid, const char *qid)
{
	struct sb_db_res	*r;
	const char		*params[2] = { rid, qid };
	char			 msg[128];

	r = api->db_query(api->req_plugin(req), "SELECT status, "
	    "coalesce(claimed_until > now(), false) FROM calls_requests "
	    "WHERE id = $1::bigint AND query_id = $2::bigint", 2, params);
	if (!api->db_ok(r))
		err_db(req);
	else if (api->db_rows(r) == 0)
		api->respond_error(req, 404, "NOT_FOUND", "no such call "
		    "request", NULL);
	else {
		if (strcmp(api->db_value(r, 0, 0), "PENDING") == 0 &&
		    strcmp(api->db_value(r, 0, 1), "t") == 0)
			snprintf(msg, sizeof(msg), "the call request is being "
			    "accepted");
		else
			snprintf(msg, sizeof(msg), "the call request is %s",
			    api->db_value(r, 0, 0));
		api->respond_error(req, 409, "CONFLICT", msg,
		    sb_field_error("status", "CONFLICT",
		    api->db_value(r, 0, 0)));
	}
	api->db_free(r);
}

/*
 * PENDING and unclaimed -> status (REJECTED, CANCELLED): one conditional
 * UPDATE, so it cannot overtake an accept in flight.
 */
static void
request_close(struct sb_req *req, const char *status, const char *event)
{
	struct sb_plugin		*p = api->req_plugin(req);
	const struct sb_principal	*who = api->req_principal(req);
	struct sb_db_res		*r;
	const char			*params[4];
	char				 uid[32];
	json_t				*q, *row;

	if ((q = query_for(req)) == NULL)
		return;
	json_decref(q);
	if ((params[0] = param_id(req, "request_id")) == NULL) {
		api->respond_error(req, 404, "NOT_FOUND", "no such call "
		    "request", NULL);
		return;
	}
	snprintf(uid, sizeof(uid), "%lld", (long long)who->id);
	params[1] = api->req_param(req, "query_id");
	params[2] = status;
	params[3] = who->kind == SB_ACTOR_USER ? uid : NULL;
	r = api->db_query(p, "UPDATE calls_requests SET status = $3, "
	    "handled_by = $4::bigint, updated_at = now() WHERE id = "
	    "$1::bigint AND query_id = $2::bigint AND status = 'PENDING' AND "
	    "(claimed_until IS NULL OR claimed_until < now()) RETURNING "
	    R_COLS, 4, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		err_db(req);
		return;
	}
	if (api->db_rows(r) == 0) {
		api->db_free(r);
		request_conflict(req, params[0], params[1]);
		return;
	}
	row = api->db_row_json(r, 0);
	api->db_free(r);
	publish_call(p, sb_jint(row, "query_id"), 0, event, row);
	api->respond_json(req, 200, row);
}

static void
r_create(struct sb_req *req)
{
	struct sb_plugin		*p = api->req_plugin(req);
	const struct sb_principal	*who = api->req_principal(req);
	json_t				*body = api->req_json(req), *q, *row;
	struct sb_db_res		*r;
	const char			*params[4];
	int				 dup;

	if ((q = query_for(req)) == NULL)
		return;
	if (!query_callable(req, q, 0)) {
		json_decref(q);
		return;
	}
	json_decref(q);
	params[0] = api->req_param(req, "query_id");
	params[1] = who->donor_id;
	params[2] = sb_jstr(body, "mode");
	params[3] = sb_jstr(body, "message");
	if (mode_parse(params[2]) == -1) {
		api->respond_error(req, 422, "VALIDATION_ERROR", "the request "
		    "body has invalid fields", sb_field_error("mode",
		    "INVALID_CHOICE", "one of VIDEO, AUDIO, SCREEN"));
		return;
	}
	r = api->db_query(p, "INSERT INTO calls_requests (query_id, donor_id, "
	    "mode, message) VALUES ($1::bigint, $2, $3, $4) RETURNING " R_COLS,
	    4, params);
	if (!api->db_ok(r) || api->db_rows(r) != 1) {
		/* The sqlstate lives in r: decide before freeing it. */
		dup = api->db_sqlstate(r) != NULL &&
		    strcmp(api->db_sqlstate(r), "23505") == 0;
		api->db_free(r);
		if (dup)
			api->respond_error(req, 409, "CONFLICT", "the query "
			    "already has a pending call request", NULL);
		else
			err_db(req);
		return;
	}
	row = api->db_row_json(r, 0);
	api->db_free(r);
	publish_call(p, sb_jint(row, "query_id"), 0, "calls.request.created",
	    row);
	api->respond_json(req, 201, row);
}

static void
r_list(struct sb_req *req)
{
	struct sb_list	 list;
	const char	*params[3];
	json_t		*q;

	if ((q = query_for(req)) == NULL)
		return;
	json_decref(q);
	if (api->list_parse(req, &list, SB_LIST_ID_CURSOR) != SB_OK)
		return;
	params[0] = api->req_param(req, "query_id");
	params[1] = list.cursor;
	params[2] = list.limit_plus_one;
	api->list_respond(req, api->db_query(api->req_plugin(req), "SELECT "
	    R_COLS " FROM calls_requests WHERE query_id = $1::bigint AND "
	    "($2::bigint IS NULL OR id < $2::bigint) ORDER BY id DESC LIMIT "
	    "$3::bigint", 3, params), &list, "id", NULL, NULL);
}

static void
r_reject(struct sb_req *req)
{
	request_close(req, "REJECTED", "calls.request.rejected");
}

static void
r_cancel(struct sb_req *req)
{
	request_close(req, "CANCELLED", "calls.request.cancelled");
}

/* The staff user's display name for Daily; caller frees. */
static char *
staff_name(struct sb_plugin *p, const struct sb_principal *who)
{
	struct sb_db_res	*r;
	const char		*params[1];
	char			 uid[32], *name = NULL;

	snprintf(uid, sizeof(uid), "%lld", (long long)who->id);
	params[0] = uid;
	r = api->db_query(p, "SELECT coalesce(nullif(name, ''), username) "
	    "FROM users WHERE id = $1::bigint", 1, params);
	if (api->db_rows(r) == 1 && api->db_value(r, 0, 0) != NULL)
		name = strdup(api->db_value(r, 0, 0));
	api->db_free(r);
	if (name == NULL)
		name = strdup(who->name != NULL ? who->name : uid);
	return (name);
}

/* A call to make for query q (answered already on NULL). */
static struct call *
call_new(struct sb_req *req, json_t *q, enum mode mode)
{
	const struct sb_principal	*who = api->req_principal(req);
	struct call			*c;
	unsigned char			 rnd[8];
	char				 hex[sizeof(rnd) * 2 + 1];
	size_t				 i;

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    RAND_bytes(rnd, sizeof(rnd)) != 1) {
		free(c);
		api->respond_error(req, 503, "UNAVAILABLE", "out of "
		    "resources", NULL);
		return (NULL);
	}
	c->p = api->req_plugin(req);
	c->req = req;
	c->mode = mode;
	c->query_id = sb_jint(q, "id");
	c->admin_id = who->id;
	c->admin_name = staff_name(c->p, who);
	c->donor_id = strdup(sb_jstr(q, "donor_id"));
	c->donor_name = strdup(sb_jstr(q, "donor"));
	if (c->admin_name == NULL || c->donor_id == NULL ||
	    c->donor_name == NULL || donor_user_id(c->donor_id, c->donor_uid,
	    sizeof(c->donor_uid)) == -1) {
		call_free(c);
		api->respond_error(req, 503, "UNAVAILABLE", "out of "
		    "resources", NULL);
		return (NULL);
	}
	snprintf(c->admin_uid, sizeof(c->admin_uid), "staff:%lld",
	    (long long)c->admin_id);
	name_clip(c->admin_name, USER_NAME_MAX);
	name_clip(c->donor_name, USER_NAME_MAX);
	for (i = 0; i < sizeof(rnd); i++)
		snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
	snprintf(c->room, sizeof(c->room), "sb-q%lld-%s",
	    (long long)c->query_id, hex);
	c->exp = (long long)time(NULL) + room_ttl;
	return (c);
}

static void
r_accept(struct sb_req *req)
{
	struct sb_plugin		*p = api->req_plugin(req);
	const struct sb_principal	*who = api->req_principal(req);
	struct sb_db_res		*r;
	const char			*params[4];
	char				 rid[32], uid[32], hold[32];
	json_t				*q, *row;
	struct call			*c;
	int				 mode;

	if (api->req_param(req, "request_id") != NULL &&
	    param_id(req, "request_id") == NULL) {
		api->respond_error(req, 404, "NOT_FOUND", "no such call "
		    "request", NULL);
		return;
	}
	if (!daily_ready(req))
		return;
	if ((q = query_for(req)) == NULL)
		return;
	/* What is asked about first, then whether this caller may join. */
	if (!query_callable(req, q, 1) || !staff_user(req)) {
		json_decref(q);
		return;
	}
	params[0] = api->req_param(req, "query_id");
	if (api->req_param(req, "request_id") != NULL)
		snprintf(rid, sizeof(rid), "%s", api->req_param(req,
		    "request_id"));
	else {
		r = api->db_query(p, "SELECT id FROM calls_requests WHERE "
		    "query_id = $1::bigint AND status = 'PENDING'", 1, params);
		if (!api->db_ok(r) || api->db_rows(r) != 1) {
			if (api->db_ok(r))
				api->respond_error(req, 404, "NOT_FOUND",
				    "the query has no pending call request",
				    NULL);
			else
				err_db(req);
			api->db_free(r);
			json_decref(q);
			return;
		}
		snprintf(rid, sizeof(rid), "%s", api->db_value(r, 0, 0));
		api->db_free(r);
	}

	/* The claim outlives the three Daily calls (and a slow commit): a
	 * claim past its time is a dead worker's, free for another. */
	snprintf(uid, sizeof(uid), "%lld", (long long)who->id);
	snprintf(hold, sizeof(hold), "%.3f",
	    (double)daily_timeout_ms * 3 / 1000.0 + 5);
	params[0] = rid;
	params[1] = api->req_param(req, "query_id");
	params[2] = uid;
	params[3] = hold;
	r = api->db_query(p, "UPDATE calls_requests SET claimed_by = "
	    "$3::bigint, claimed_until = now() + make_interval(secs => "
	    "$4::float8) WHERE id = $1::bigint AND query_id = $2::bigint AND "
	    "status = 'PENDING' AND (claimed_until IS NULL OR claimed_until < "
	    "now()) RETURNING " R_COLS, 4, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		json_decref(q);
		err_db(req);
		return;
	}
	if (api->db_rows(r) == 0) {
		api->db_free(r);
		json_decref(q);
		request_conflict(req, rid, params[1]);
		return;
	}
	row = api->db_row_json(r, 0);
	api->db_free(r);
	mode = mode_parse(sb_jstr(row, "mode"));
	if ((c = call_new(req, q, mode == -1 ? MODE_VIDEO :
	    (enum mode)mode)) == NULL) {
		/* Answered; let the next accept have it at once. */
		params[1] = uid;
		r = api->db_query(p, "UPDATE calls_requests SET claimed_by = "
		    "NULL, claimed_until = NULL WHERE id = $1::bigint AND "
		    "claimed_by = $2::bigint AND status = 'PENDING'", 2,
		    params);
		api->db_free(r);
		json_decref(row);
		json_decref(q);
		return;
	}
	c->request = row;
	json_decref(q);
	api->req_defer(req);
	call_start(c);
}

/* ---- sessions ---- */

/*
 * The session state machine, the one place it is decided: may a session
 * in `from` move to `to`?
 */
static int
session_legal(const char *from, const char *to)
{
	if (strcmp(to, "STARTED") == 0)
		return (strcmp(from, "CREATED") == 0);
	if (strcmp(to, "ENDED") == 0)
		return (strcmp(from, "CREATED") == 0 ||
		    strcmp(from, "STARTED") == 0);
	return (0);
}

/*
 * A session as it leaves the plugin (a new object): without the sealed
 * tokens and donor_id and, when who is not NULL, with "token": the
 * caller's own side unsealed, or null.  An event (who NULL) has no token.
 */
static json_t *
session_out(struct sb_plugin *p, json_t *row, const struct sb_principal *who)
{
	json_t		*s;
	const char	*sealed = NULL, *d;
	char		*plain;

	if ((s = json_copy(row)) == NULL)
		return (NULL);
	json_object_del(s, "admin_token");
	json_object_del(s, "donor_token");
	json_object_del(s, "donor_id");
	if (who == NULL)
		return (s);
	d = sb_jstr(row, "donor_id");
	if (who->kind == SB_ACTOR_DONOR && who->donor_id != NULL &&
	    d != NULL && strcmp(who->donor_id, d) == 0)
		sealed = sb_jstr(row, "donor_token");
	else if (who->kind == SB_ACTOR_USER && who->id == sb_jint(row,
	    "admin_id"))
		sealed = sb_jstr(row, "admin_token");
	plain = sealed != NULL ? api->unseal(p, sealed, NULL) : NULL;
	if (sealed != NULL && plain == NULL)
		api->log(p, SB_LOG_WARN, "session %lld: a meeting token does "
		    "not unseal (data key changed?)",
		    (long long)sb_jint(row, "id"));
	json_object_set_new(s, "token", plain != NULL ? json_string(plain) :
	    json_null());
	free(plain);
	return (s);
}

/*
 * Inside an open transaction, with row (S_COLS) locked and the move
 * legal: set the status (started_at / ended_at = `at`, unix seconds as
 * text, or now() when NULL), write the thread message and, when the
 * session ended, enqueue its room's deletion.  Returns the updated row
 * with "message", or NULL on a database error (the caller rolls back).
 */
static json_t *
session_apply(struct sb_plugin *p, json_t *row, const char *to,
    const char *at)
{
	struct sb_db_res	*r;
	const char		*params[3];
	char			 id[32], content[128];
	json_t			*s, *m, *minutes;
	int			 mode, ended = strcmp(to, "ENDED") == 0;

	snprintf(id, sizeof(id), "%lld", (long long)sb_jint(row, "id"));
	params[0] = id;
	params[1] = to;
	params[2] = at;
	r = api->db_query(p, "UPDATE calls_sessions SET status = $2::text, "
	    "started_at = CASE WHEN $2::text = 'STARTED' THEN "
	    "coalesce(to_timestamp($3::float8), now()) ELSE started_at END, "
	    "ended_at = CASE WHEN $2::text = 'ENDED' THEN "
	    "coalesce(to_timestamp($3::float8), now()) ELSE ended_at END, "
	    "updated_at = now() WHERE id = $1::bigint RETURNING " S_COLS ", "
	    "greatest(round(extract(epoch FROM ended_at - started_at) / "
	    "60), 0)::int AS minutes", 3, params);
	if (!api->db_ok(r) || api->db_rows(r) != 1) {
		api->db_free(r);
		return (NULL);
	}
	s = api->db_row_json(r, 0);
	api->db_free(r);

	mode = mode_parse(sb_jstr(s, "mode"));
	minutes = json_object_get(s, "minutes");
	if (ended && json_is_integer(minutes))
		snprintf(content, sizeof(content), "%s ended (%lld min)",
		    mode_labels[mode == -1 ? 0 : mode],
		    (long long)json_integer_value(minutes));
	else
		snprintf(content, sizeof(content), "%s %s",
		    mode_labels[mode == -1 ? 0 : mode],
		    ended ? "ended" : "started");
	json_object_del(s, "minutes");

	/* concierge's thread, in this transaction (same connection). */
	m = THREAD->system_message(p, sb_jint(s, "query_id"), ended ?
	    "CALL_ENDED" : "CALL_STARTED", content);
	if (m == NULL) {
		json_decref(s);
		return (NULL);
	}
	json_object_set_new(s, "message", m);
	if (ended && enqueue_delete(p, sb_jstr(s, "room_name")) == -1) {
		json_decref(s);
		return (NULL);
	}
	return (s);
}

/* After the commit: calls.session.started / ended, without tokens. */
static void
session_publish(struct sb_plugin *p, json_t *s)
{
	json_t	*data;

	if ((data = session_out(p, s, NULL)) == NULL)
		return;
	publish_call(p, sb_jint(s, "query_id"), sb_jint(s, "admin_id"),
	    strcmp(sb_jstr(s, "status"), "ENDED") == 0 ? "calls.session.ended" :
	    "calls.session.started", data);
	json_decref(data);
}

/* Lock the session named room_name; NULL: none, or *dberr. */
static json_t *
session_lock(struct sb_plugin *p, const char *room, int *dberr)
{
	struct sb_db_res	*r;
	const char		*params[1] = { room };
	json_t			*s = NULL;

	*dberr = 0;
	r = api->db_query(p, "SELECT " S_COLS " FROM calls_sessions WHERE "
	    "room_name = $1 FOR UPDATE", 1, params);
	if (!api->db_ok(r))
		*dberr = 1;
	else if (api->db_rows(r) == 1)
		s = api->db_row_json(r, 0);
	api->db_free(r);
	return (s);
}

/*
 * A participant moves the session in {room_name} to `to`: its staff user
 * or its donor.  Another donor (or an unknown room) gets 404, another
 * staff member 403, an illegal move 409 naming the current status.
 */
static void
session_move(struct sb_req *req, const char *to)
{
	struct sb_plugin		*p = api->req_plugin(req);
	const struct sb_principal	*who = api->req_principal(req);
	const char			*room, *d;
	json_t				*cur, *s, *out;
	char				 msg[128];
	int				 dberr;

	room = api->req_param(req, "room_name");
	if (!room_name_valid(room)) {
		api->respond_error(req, 404, "NOT_FOUND", "no such call",
		    NULL);
		return;
	}
	if (api->db_begin(p) != SB_OK) {
		err_db(req);
		return;
	}
	cur = session_lock(p, room, &dberr);
	d = cur != NULL ? sb_jstr(cur, "donor_id") : NULL;
	if (dberr || cur == NULL || (who->kind == SB_ACTOR_DONOR &&
	    (who->donor_id == NULL || d == NULL ||
	    strcmp(who->donor_id, d) != 0))) {
		api->db_rollback(p);
		json_decref(cur);
		if (dberr)
			err_db(req);
		else
			api->respond_error(req, 404, "NOT_FOUND", "no such "
			    "call", NULL);
		return;
	}
	if (who->kind != SB_ACTOR_DONOR && (who->kind != SB_ACTOR_USER ||
	    who->id != sb_jint(cur, "admin_id"))) {
		api->db_rollback(p);
		json_decref(cur);
		api->respond_error(req, 403, "FORBIDDEN", "only the call's "
		    "participants may change it", NULL);
		return;
	}
	if (!session_legal(sb_jstr(cur, "status"), to)) {
		api->db_rollback(p);
		snprintf(msg, sizeof(msg), "cannot move a call that is %s to "
		    "%s", sb_jstr(cur, "status"), to);
		api->respond_error(req, 409, "CONFLICT", msg,
		    sb_field_error("status", "CONFLICT", sb_jstr(cur, "status")));
		json_decref(cur);
		return;
	}
	s = session_apply(p, cur, to, NULL);
	json_decref(cur);
	if (s == NULL || api->db_commit(p) != SB_OK) {
		api->db_rollback(p);
		json_decref(s);
		err_db(req);
		return;
	}
	session_publish(p, s);
	out = session_out(p, s, who);
	json_decref(s);
	if (out == NULL) {
		api->respond_error(req, 503, "UNAVAILABLE", "out of "
		    "resources", NULL);
		return;
	}
	api->respond_json(req, 200, out);
}

static void
s_status(struct sb_req *req)
{
	const char	*to = sb_jstr(api->req_json(req), "status");
	int		 i;

	for (i = 0; session_statuses[i] != NULL; i++) {
		if (strcmp(session_statuses[i], to) == 0)
			break;
	}
	if (session_statuses[i] == NULL) {
		api->respond_error(req, 422, "VALIDATION_ERROR", "the request "
		    "body has invalid fields", sb_field_error("status",
		    "INVALID_CHOICE", "one of CREATED, STARTED, ENDED"));
		return;
	}
	session_move(req, to);
}

static void
s_end(struct sb_req *req)
{
	session_move(req, "ENDED");
}

static void
s_start(struct sb_req *req)
{
	json_t		*q;
	struct call	*c;
	int		 mode;

	if ((mode = mode_parse(sb_jstr(api->req_json(req), "mode"))) == -1) {
		api->respond_error(req, 422, "VALIDATION_ERROR", "the request "
		    "body has invalid fields", sb_field_error("mode",
		    "INVALID_CHOICE", "one of VIDEO, AUDIO, SCREEN"));
		return;
	}
	if (!daily_ready(req))
		return;
	if ((q = query_for(req)) == NULL)
		return;
	if (!query_callable(req, q, 1) || !staff_user(req)) {
		json_decref(q);
		return;
	}
	c = call_new(req, q, (enum mode)mode);
	json_decref(q);
	if (c == NULL)
		return;
	api->req_defer(req);
	call_start(c);
}

/* list_respond's map: a session row as its reader may see it. */
static json_t *
s_list_row(struct sb_req *req, json_t *row, void *arg)
{
	json_t	*s;

	(void)arg;
	s = session_out(api->req_plugin(req), row, api->req_principal(req));
	json_decref(row);
	return (s);
}

static void
s_list(struct sb_req *req)
{
	struct sb_list	 list;
	const char	*params[3];
	json_t		*q;

	if ((q = query_for(req)) == NULL)
		return;
	json_decref(q);
	if (api->list_parse(req, &list, SB_LIST_ID_CURSOR) != SB_OK)
		return;
	params[0] = api->req_param(req, "query_id");
	params[1] = list.cursor;
	params[2] = list.limit_plus_one;
	api->list_respond(req, api->db_query(api->req_plugin(req), "SELECT "
	    S_COLS " FROM calls_sessions WHERE query_id = $1::bigint AND "
	    "($2::bigint IS NULL OR id < $2::bigint) ORDER BY id DESC LIMIT "
	    "$3::bigint", 3, params), &list, "id", s_list_row, NULL);
}

/* ---- the Daily client ---- */

/*
 * POST (or DELETE) {daily_api_url}{path} with the API key.  body may be
 * NULL; it is copied.  SB_ERROR when the request was refused (cb is then
 * never called).
 */
static int
daily_send(struct sb_plugin *p, const char *method, const char *path,
    json_t *body, sb_http_cb cb, void *arg)
{
	struct sb_http_header	 h[2];
	struct sb_http_request	 r;
	char			 url[768], *text = NULL;
	int			 rc;

	snprintf(url, sizeof(url), "%s%s", daily_url, path);
	h[0].name = "Authorization";
	h[0].value = daily_auth;
	h[1].name = "Content-Type";
	h[1].value = "application/json";
	memset(&r, 0, sizeof(r));
	r.method = method;
	r.url = url;
	r.headers = h;
	r.nheaders = body != NULL ? 2 : 1;
	r.timeout_ms = daily_timeout_ms;
	r.max_response = 65536;
	if (body != NULL) {
		if ((text = json_dumps(body, JSON_COMPACT)) == NULL)
			return (SB_ERROR);
		r.body = text;
		r.body_len = strlen(text);
	}
	rc = api->http_send(p, &r, cb, arg);
	free(text);
	return (rc);
}

/*
 * A Daily answer that must be a 2xx JSON object: returns it (caller
 * frees), or NULL with a short reason in why.
 */
static json_t *
daily_parse(const struct sb_http_response *res, char *why, size_t len)
{
	json_t	*o;

	if (res->status == 0) {
		snprintf(why, len, "%s", res->error != NULL ? res->error :
		    "no response");
		return (NULL);
	}
	if (res->status < 200 || res->status > 299) {
		snprintf(why, len, "HTTP %d", res->status);
		return (NULL);
	}
	o = json_loadb(res->body, res->body_len, 0, NULL);
	if (!json_is_object(o)) {
		json_decref(o);
		snprintf(why, len, "malformed response");
		return (NULL);
	}
	return (o);
}

/* A meeting token for one side of the call. */
static int
call_token(struct call *c, int owner, sb_http_cb cb)
{
	json_t	*props, *body;
	int	 rc;

	props = json_pack("{s:s, s:b, s:I, s:s, s:s}", "room_name", c->room,
	    "is_owner", owner, "exp", (json_int_t)c->exp, "user_name",
	    owner ? c->admin_name : c->donor_name, "user_id",
	    owner ? c->admin_uid : c->donor_uid);
	if (props == NULL)
		return (SB_ERROR);
	if (c->mode == MODE_AUDIO)
		json_object_set_new(props, "start_video_off", json_true());
	body = json_pack("{s:o}", "properties", props);
	rc = daily_send(c->p, "POST", "/meeting-tokens", body, cb, c);
	json_decref(body);
	return (rc);
}

/* (a) the room: private, expiring, sized and shaped by the mode. */
static void
call_start(struct call *c)
{
	json_t	*body;
	int	 rc;

	body = json_pack("{s:s, s:s, s:{s:I, s:I, s:b, s:b, s:b, s:b, s:b, "
	    "s:b}}", "name", c->room, "privacy", "private", "properties",
	    "exp", (json_int_t)c->exp,
	    "max_participants", (json_int_t)max_participants,
	    "eject_at_room_exp", 1,
	    "enable_screenshare", c->mode != MODE_AUDIO,
	    "start_video_off", c->mode != MODE_VIDEO,
	    "start_audio_off", 0,
	    "enable_prejoin_ui", 0,
	    "enable_knocking", 0);
	rc = body != NULL ? daily_send(c->p, "POST", "/rooms", body,
	    call_room_done, c) : SB_ERROR;
	json_decref(body);
	if (rc != SB_OK) {
		call_fail(c, 502, "UPSTREAM_ERROR", "Daily: request refused");
		return;
	}
	/* From here Daily may create the room even if we never hear back. */
	c->room_sent = 1;
}

static void
call_room_done(struct sb_plugin *p, const struct sb_http_response *res,
    void *arg)
{
	struct call	*c = arg;
	json_t		*o;
	const char	*name, *url;
	char		 why[128], msg[192];

	(void)p;
	if (res->status == 0 && res->error != NULL &&
	    strcmp(res->error, "circuit open") == 0)
		c->room_sent = 0;	/* never left this node */
	if ((o = daily_parse(res, why, sizeof(why))) == NULL) {
		snprintf(msg, sizeof(msg), "Daily: %s", why);
		call_fail(c, 502, "UPSTREAM_ERROR", msg);
		return;
	}
	name = sb_jstr(o, "name");
	url = sb_jstr(o, "url");
	if (name == NULL || strcmp(name, c->room) != 0 || url == NULL ||
	    (strncmp(url, "https://", 8) != 0 &&
	    strncmp(url, "http://", 7) != 0)) {
		json_decref(o);
		call_fail(c, 502, "UPSTREAM_ERROR", "Daily: unexpected room");
		return;
	}
	c->room_url = strdup(url);
	json_decref(o);
	if (c->room_url == NULL || call_token(c, 1,
	    call_admin_token_done) != SB_OK)
		call_fail(c, 502, "UPSTREAM_ERROR", "Daily: request refused");
}

/*
 * A token answer: {"token": "..."}; caller frees.  NULL after answering
 * through call_fail(), which freed c.
 */
static char *
call_token_parse(struct call *c, const struct sb_http_response *res)
{
	json_t		*o;
	const char	*t;
	char		 why[128], msg[192], *token = NULL;

	if ((o = daily_parse(res, why, sizeof(why))) == NULL) {
		snprintf(msg, sizeof(msg), "Daily: %s", why);
		call_fail(c, 502, "UPSTREAM_ERROR", msg);
		return (NULL);
	}
	if ((t = sb_jstr(o, "token")) == NULL || *t == '\0') {
		json_decref(o);
		call_fail(c, 502, "UPSTREAM_ERROR", "Daily: no token");
		return (NULL);
	}
	token = strdup(t);
	json_decref(o);
	if (token == NULL)
		call_fail(c, 503, "UNAVAILABLE", "out of resources");
	return (token);
}

static void
call_admin_token_done(struct sb_plugin *p, const struct sb_http_response *res,
    void *arg)
{
	struct call	*c = arg;
	char		*token;

	(void)p;
	/* Not straight into c: a failed parse has freed it. */
	if ((token = call_token_parse(c, res)) == NULL)
		return;
	c->admin_token = token;
	if (call_token(c, 0, call_donor_token_done) != SB_OK)
		call_fail(c, 502, "UPSTREAM_ERROR", "Daily: request refused");
}

static void
call_donor_token_done(struct sb_plugin *p, const struct sb_http_response *res,
    void *arg)
{
	struct call	*c = arg;
	char		*token;

	(void)p;
	if ((token = call_token_parse(c, res)) == NULL)
		return;
	c->donor_token = token;
	call_finish(c);
}

/*
 * Daily has the room and both tokens: record the session (tokens sealed)
 * and accept the request in one transaction, then tell everyone and
 * answer with the caller's view (the staff side's token).
 */
static void
call_finish(struct call *c)
{
	struct sb_plugin	*p = c->p;
	struct sb_db_res	*r;
	const char		*params[10], *st;
	char			 qid[32], rid[32], uid[32], exp[32];
	char			*admin_sealed, *donor_sealed;
	json_t			*s = NULL, *request = NULL, *out, *data;
	int			 dup, gone;

	admin_sealed = api->seal(p, c->admin_token, strlen(c->admin_token));
	donor_sealed = api->seal(p, c->donor_token, strlen(c->donor_token));
	if (admin_sealed == NULL || donor_sealed == NULL) {
		free(admin_sealed);
		free(donor_sealed);
		call_fail(c, 503, "UNAVAILABLE", "cannot store meeting tokens "
		    "(is the data key set?)");
		return;
	}
	snprintf(qid, sizeof(qid), "%lld", (long long)c->query_id);
	snprintf(rid, sizeof(rid), "%lld", (long long)sb_jint(c->request, "id"));
	snprintf(uid, sizeof(uid), "%lld", (long long)c->admin_id);
	snprintf(exp, sizeof(exp), "%lld", c->exp);
	params[0] = qid;
	params[1] = c->request != NULL ? rid : NULL;
	params[2] = uid;
	params[3] = c->donor_id;
	params[4] = c->room;
	params[5] = c->room_url;
	params[6] = modes[c->mode];
	params[7] = exp;
	params[8] = admin_sealed;
	params[9] = donor_sealed;
	if (api->db_begin(p) != SB_OK) {
		free(admin_sealed);
		free(donor_sealed);
		call_fail(c, 503, "UNAVAILABLE", "database unavailable");
		return;
	}
	r = api->db_query(p, "INSERT INTO calls_sessions (query_id, "
	    "request_id, admin_id, donor_id, room_name, room_url, mode, "
	    "expires_at, admin_token, donor_token) VALUES ($1::bigint, "
	    "$2::bigint, $3::bigint, $4, $5, $6, $7, to_timestamp($8::float8), "
	    "$9, $10) RETURNING " S_COLS, 10, params);
	free(admin_sealed);
	free(donor_sealed);
	if (!api->db_ok(r) || api->db_rows(r) != 1) {
		/* The sqlstate lives in r: decide before freeing it. */
		st = api->db_sqlstate(r);
		dup = st != NULL && strcmp(st, "23505") == 0;
		gone = st != NULL && strcmp(st, "23503") == 0;
		api->db_free(r);
		api->db_rollback(p);
		if (dup)
			call_fail(c, 409, "CONFLICT", "the query already has "
			    "a call in progress");
		else if (gone)
			call_fail(c, 404, "NOT_FOUND", "no such query");
		else
			call_fail(c, 503, "UNAVAILABLE", "database "
			    "unavailable");
		return;
	}
	s = api->db_row_json(r, 0);
	api->db_free(r);

	if (c->request != NULL) {
		params[0] = rid;
		params[1] = uid;
		r = api->db_query(p, "UPDATE calls_requests SET status = "
		    "'ACCEPTED', handled_by = $2::bigint, claimed_by = NULL, "
		    "claimed_until = NULL, updated_at = now() WHERE id = "
		    "$1::bigint AND status = 'PENDING' AND claimed_by = "
		    "$2::bigint RETURNING " R_COLS, 2, params);
		if (!api->db_ok(r) || api->db_rows(r) != 1) {
			dup = api->db_ok(r);
			api->db_free(r);
			api->db_rollback(p);
			json_decref(s);
			if (dup)
				call_fail(c, 409, "CONFLICT", "the call "
				    "request changed meanwhile");
			else
				call_fail(c, 503, "UNAVAILABLE", "database "
				    "unavailable");
			return;
		}
		request = api->db_row_json(r, 0);
		api->db_free(r);
	}
	if (api->db_commit(p) != SB_OK) {
		api->db_rollback(p);
		json_decref(request);
		json_decref(s);
		call_fail(c, 503, "UNAVAILABLE", "database unavailable");
		return;
	}

	if (request != NULL)
		publish_call(p, c->query_id, 0, "calls.request.accepted",
		    request);
	if ((data = session_out(p, s, NULL)) != NULL) {
		publish_call(p, c->query_id, c->admin_id,
		    "calls.session.created", data);
		json_decref(data);
	}
	/* The caller is the session's staff side: its token, as issued. */
	out = session_out(p, s, NULL);
	json_decref(s);
	if (out != NULL)
		json_object_set_new(out, "token", json_string(c->admin_token));
	if (request != NULL)
		api->respond_json(c->req, 201, json_pack("{s:o, s:o?}",
		    "request", request, "session", out));
	else
		api->respond_json(c->req, 201, json_pack("{s:o?}",
		    "session", out));
	call_free(c);
}

/*
 * Give up: free the request's claim (it stays PENDING), make sure a room
 * Daily may hold is deleted, answer and free c.  Never inside an open
 * transaction.
 */
static void
call_fail(struct call *c, int status, const char *code, const char *msg)
{
	struct sb_db_res	*r;
	const char		*params[2];
	char			 rid[32], uid[32];

	if (c->request != NULL) {
		snprintf(rid, sizeof(rid), "%lld",
		    (long long)sb_jint(c->request, "id"));
		snprintf(uid, sizeof(uid), "%lld", (long long)c->admin_id);
		params[0] = rid;
		params[1] = uid;
		r = api->db_query(c->p, "UPDATE calls_requests SET claimed_by "
		    "= NULL, claimed_until = NULL WHERE id = $1::bigint AND "
		    "claimed_by = $2::bigint AND status = 'PENDING'", 2,
		    params);
		api->db_free(r);
	}
	if (c->room_sent)
		(void)enqueue_delete(c->p, c->room);
	api->log(c->p, SB_LOG_WARN, "call for query %lld not set up: %s",
	    (long long)c->query_id, msg);
	api->respond_error(c->req, status, code, msg, NULL);
	call_free(c);
}

static void
call_free(struct call *c)
{
	if (c == NULL)
		return;
	free(c->admin_name);
	free(c->donor_id);
	free(c->donor_name);
	free(c->room_url);
	if (c->admin_token != NULL)
		OPENSSL_cleanse(c->admin_token, strlen(c->admin_token));
	if (c->donor_token != NULL)
		OPENSSL_cleanse(c->donor_token, strlen(c->donor_token));
	free(c->admin_token);
	free(c->donor_token);
	json_decref(c->request);
	free(c);
}

/* ---- the webhook ---- */

/*
 * Daily's signature: base64(HMAC-SHA256(key = base64-decoded secret,
 * "<timestamp>.<raw body>")), compared in constant time.
 */
static int
webhook_signed(const char *ts, const void *body, size_t len, const char *sig)
{
	unsigned char	 mac[EVP_MAX_MD_SIZE], *msg;
	unsigned int	 maclen = 0;
	unsigned char	 want[((EVP_MAX_MD_SIZE + 2) / 3) * 4 + 1];
	size_t		 tslen = strlen(ts), n;
	int		 ok;

	if ((msg = malloc(tslen + 1 + len)) == NULL)
		return (0);
	memcpy(msg, ts, tslen);
	msg[tslen] = '.';
	if (len > 0)
		memcpy(msg + tslen + 1, body, len);
	ok = HMAC(EVP_sha256(), hook_key, (int)hook_key_len, msg,
	    tslen + 1 + len, mac, &maclen) != NULL;
	free(msg);
	if (!ok)
		return (0);
	n = (size_t)EVP_EncodeBlock(want, mac, (int)maclen);
	return (strlen(sig) == n && CRYPTO_memcmp(want, sig, n) == 0);
}

/*
 * Daily's check of a webhook URL when the operator registers it: it POSTs
 * {"test":"test"} (before the operator has the webhook's secret, so it
 * cannot be relied on to be signed) and creates the webhook only on a
 * quick 200.  Exactly that object, however spaced, whatever headers
 * come with it; small, because it is parsed before any signature check.
 */
static int
webhook_verification(const void *body, size_t len)
{
	json_t		*o;
	const char	*v;
	int		 yes;

	if (body == NULL || len == 0 || len > 64)
		return (0);
	o = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	yes = json_is_object(o) && json_object_size(o) == 1 &&
	    (v = sb_jstr(o, "test")) != NULL && strcmp(v, "test") == 0;
	json_decref(o);
	return (yes);
}

/*
 * A payload time (unix seconds) as text for to_timestamp() in *res, NULL
 * when absent (now() then); -1 when it is not a plausible time.
 */
static int
webhook_ts(json_t *payload, const char *key, char *out, size_t len,
    const char **res)
{
	json_t	*v = json_object_get(payload, key);
	double	 d;

	*res = NULL;
	if (v == NULL || json_is_null(v))
		return (0);
	if (!json_is_number(v))
		return (-1);
	d = json_number_value(v);
	if (!(d >= 0 && d < 1e11))
		return (-1);
	snprintf(out, len, "%.3f", d);
	*res = out;
	return (0);
}

static void
webhook(struct sb_req *req)
{
	struct sb_plugin	*p = api->req_plugin(req);
	struct sb_db_res	*r;
	const char		*sig, *ts, *id, *type, *room = NULL;
	const char		*at = NULL;
	const char		*params[2], *to = NULL, *tskey;
	const void		*body;
	size_t			 len, i;
	long long		 t;
	json_t			*ev, *payload, *cur = NULL, *s = NULL;
	char			 atbuf[32], field[32];
	int			 dberr, fresh;

	if ((body = api->req_body(req, &len)) == NULL)
		len = 0;
	/* Before the secret is even needed: Daily checks the URL before the
	 * operator can have configured it.  Nothing is read or written. */
	if (webhook_verification(body, len)) {
		api->log(p, SB_LOG_DEBUG, "answered Daily's webhook "
		    "verification request");
		api->respond_json(req, 200, json_pack("{s:b}", "ok", 1));
		return;
	}
	if (hook_key_len == 0) {
		api->respond_error(req, 503, "UNAVAILABLE", "calls are not "
		    "configured: set webhook_secret", NULL);
		return;
	}
	sig = api->req_header(req, "x-webhook-signature");
	ts = api->req_header(req, "x-webhook-timestamp");
	if (sig == NULL || ts == NULL) {
		api->respond_error(req, 401, "UNAUTHENTICATED", "missing "
		    "webhook signature", NULL);
		return;
	}
	/* Unix seconds or milliseconds, as Daily's unit is not documented.
	 * The signature covers the header as received; only the replay
	 * window is reckoned in seconds. */
	for (i = 0; ts[i] >= '0' && ts[i] <= '9'; i++)
		;
	t = i > 0 && i <= 15 && ts[i] == '\0' ? strtoll(ts, NULL, 10) : -1;
	if (t >= WEBHOOK_TS_MS_FROM)
		t /= 1000;
	if (t < 0 || llabs(t - (long long)time(NULL)) > webhook_tolerance) {
		api->respond_error(req, 401, "UNAUTHENTICATED", "stale or "
		    "invalid webhook timestamp", NULL);
		return;
	}
	if (!webhook_signed(ts, body != NULL ? body : "", len, sig)) {
		api->respond_error(req, 401, "UNAUTHENTICATED", "bad webhook "
		    "signature", NULL);
		return;
	}

	ev = len > 0 ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL) :
	    NULL;
	if (!json_is_object(ev)) {
		json_decref(ev);
		api->respond_error(req, 400, "VALIDATION_ERROR", "the body "
		    "must be a JSON object", NULL);
		return;
	}
	id = sb_jstr(ev, "id");
	type = sb_jstr(ev, "type");
	if (id == NULL || *id == '\0' || strlen(id) > 255 || type == NULL) {
		json_decref(ev);
		api->respond_error(req, 422, "VALIDATION_ERROR", "the event "
		    "needs a string id and type", type == NULL ?
		    sb_field_error("type", "REQUIRED", "a string") :
		    sb_field_error("id", "INVALID", "a string of 1 to 255 "
		    "characters"));
		return;
	}
	payload = json_object_get(ev, "payload");
	if (strcmp(type, "meeting.started") == 0)
		to = "STARTED";
	else if (strcmp(type, "meeting.ended") == 0)
		to = "ENDED";
	if (to != NULL) {
		room = sb_jstr(payload, "room");
		tskey = strcmp(to, "STARTED") == 0 ? "start_ts" : "end_ts";
		snprintf(field, sizeof(field), "payload.%s", tskey);
		if (webhook_ts(payload, tskey, atbuf, sizeof(atbuf),
		    &at) == -1) {
			json_decref(ev);
			api->respond_error(req, 422, "VALIDATION_ERROR",
			    "invalid event time", sb_field_error(field,
			    "INVALID_TYPE", "unix seconds"));
			return;
		}
	}

	/* The event's id and what it changes commit together: a replay
	 * finds the id and changes nothing. */
	if (api->db_begin(p) != SB_OK) {
		json_decref(ev);
		err_db(req);
		return;
	}
	params[0] = id;
	params[1] = type;
	r = api->db_query(p, "INSERT INTO calls_webhook_events (event_id, "
	    "type) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING event_id",
	    2, params);
	dberr = !api->db_ok(r);
	fresh = api->db_rows(r) == 1;
	api->db_free(r);
	if (dberr || !fresh) {
		api->db_rollback(p);
		json_decref(ev);
		if (dberr)
			err_db(req);
		else
			api->respond_error(req, 409, "CONFLICT", "event "
			    "already processed", NULL);
		return;
	}
	if (room != NULL && room_name_valid(room)) {
		cur = session_lock(p, room, &dberr);
		if (!dberr && cur != NULL &&
		    session_legal(sb_jstr(cur, "status"), to) &&
		    (s = session_apply(p, cur, to, at)) == NULL)
			dberr = 1;
	}
	json_decref(cur);
	json_decref(ev);
	if (dberr || api->db_commit(p) != SB_OK) {
		api->db_rollback(p);
		json_decref(s);
		err_db(req);
		return;
	}
	if (s == NULL) {
		api->respond_json(req, 200, json_pack("{s:b, s:b}", "ok", 1,
		    "ignored", 1));
		return;
	}
	session_publish(p, s);
	json_decref(s);
	api->respond_json(req, 200, json_pack("{s:b}", "ok", 1));
}

/* ---- jobs ---- */

static void
delete_room_run(struct sb_job *job)
{
	const char	*room;
	char		 path[192];

	room = sb_jstr(api->job_payload(job), "room_name");
	if (!room_name_valid(room)) {
		api->job_fail(job, "payload.room_name is not a room name");
		return;
	}
	if (daily_auth[0] == '\0') {
		/* It may be configured again: keep the job for a while. */
		api->job_retry(job, "daily_api_key is not set", 300);
		return;
	}
	snprintf(path, sizeof(path), "/rooms/%s", room);
	if (daily_send(api->job_plugin(job), "DELETE", path, NULL,
	    delete_room_done, job) != SB_OK)
		api->job_fail(job, "request refused");
}

/* 200 or 404 (already gone, or expired): the room is not there. */
static void
delete_room_done(struct sb_plugin *p, const struct sb_http_response *res,
    void *arg)
{
	struct sb_job	*job = arg;
	char		 err[64];

	(void)p;
	if ((res->status >= 200 && res->status < 300) || res->status == 404) {
		api->job_done(job, json_pack("{s:i}", "status", res->status));
		return;
	}
	snprintf(err, sizeof(err), "Daily answered %d", res->status);
	if (res->status == 0)
		api->job_retry(job, res->error != NULL ? res->error :
		    "no response", 0);
	else if (res->status == 429 || res->status >= 500)
		api->job_retry(job, err, res->retry_after);
	else
		api->job_fail(job, err);
}

/*
 * The sweep: live sessions past their expiry end (Daily ejected everyone
 * at exp anyway), stale accept claims are released, and webhook ids old
 * enough that their signature has gone stale are forgotten.  One
 * transaction with the job's done; events after the commit.
 */
static void
cleanup_run(struct sb_job *job)
{
	struct sb_plugin	*p = api->job_plugin(job);
	struct sb_db_res	*r;
	const char		*params[1];
	char			 keep[32];
	json_t			*ended, *row, *s;
	int			 i, n, ok = 1;

	if (api->db_begin(p) != SB_OK) {
		api->job_retry(job, "database unavailable", 0);
		return;
	}
	ended = json_array();
	r = api->db_query(p, "SELECT " S_COLS " FROM calls_sessions WHERE "
	    "status <> 'ENDED' AND expires_at < now() ORDER BY expires_at "
	    "LIMIT 200 FOR UPDATE SKIP LOCKED", 0, NULL);
	ok = api->db_ok(r);
	n = api->db_rows(r);
	for (i = 0; ok && i < n; i++) {
		row = api->db_row_json(r, i);
		if ((s = session_apply(p, row, "ENDED", NULL)) == NULL)
			ok = 0;
		else
			json_array_append_new(ended, s);
		json_decref(row);
	}
	api->db_free(r);
	if (ok) {
		r = api->db_query(p, "UPDATE calls_requests SET claimed_by = "
		    "NULL, claimed_until = NULL WHERE claimed_until < now()",
		    0, NULL);
		ok = api->db_ok(r);
		api->db_free(r);
	}
	if (ok) {
		snprintf(keep, sizeof(keep), "%lld", webhook_tolerance * 2 >
		    86400 ? webhook_tolerance * 2 : 86400);
		params[0] = keep;
		r = api->db_query(p, "DELETE FROM calls_webhook_events WHERE "
		    "received_at < now() - make_interval(secs => $1::float8)",
		    1, params);
		ok = api->db_ok(r);
		api->db_free(r);
	}
	if (!ok) {
		api->db_rollback(p);
		json_decref(ended);
		api->job_retry(job, "database error", 0);
		return;
	}
	n = (int)json_array_size(ended);
	api->job_done(job, json_pack("{s:i}", "ended", n));
	if (api->db_commit(p) != SB_OK) {
		/* The job's done rolled back with it: it runs again. */
		api->db_rollback(p);
		json_decref(ended);
		api->log(p, SB_LOG_ERROR, "cleanup: commit failed");
		return;
	}
	for (i = 0; i < n; i++)
		session_publish(p, json_array_get(ended, (size_t)i));
	json_decref(ended);
}

/* ---- lifecycle ---- */

/* Standard base64 (padding optional, whitespace ignored) into out. */
static int
base64_key(const char *in, unsigned char *out, size_t cap, size_t *len)
{
	char		 buf[sizeof(hook_key) * 2];
	unsigned char	 dec[sizeof(hook_key) * 2];
	size_t		 n = 0, pad = 0, i;
	int		 got;

	for (i = 0; in[i] != '\0'; i++) {
		if (isspace((unsigned char)in[i]))
			continue;
		if (n + 4 >= sizeof(buf))
			return (-1);
		buf[n++] = in[i];
	}
	while (n > 0 && buf[n - 1] == '=') {
		n--;
		pad++;
	}
	if (n == 0 || pad > 2)
		return (-1);
	for (i = 0; i < n; i++) {
		if (!isalnum((unsigned char)buf[i]) && buf[i] != '+' &&
		    buf[i] != '/')
			return (-1);
	}
	for (pad = 0; (n + pad) % 4 != 0; pad++)
		buf[n + pad] = '=';
	if (pad == 3)
		return (-1);
	got = EVP_DecodeBlock(dec, (unsigned char *)buf, (int)(n + pad));
	if (got < 0 || (size_t)got < pad || (size_t)got - pad > cap)
		return (-1);
	*len = (size_t)got - pad;
	memcpy(out, dec, *len);
	OPENSSL_cleanse(dec, sizeof(dec));
	OPENSSL_cleanse(buf, sizeof(buf));
	return (*len > 0 ? 0 : -1);
}

/* Read and check the configuration; SB_ERROR on a value out of range. */
static int
calls_config(struct sb_plugin *p)
{
	const char	*v;
	long long	 timeout, interval;
	size_t		 n;

	v = api->config_get(p, "daily_api_url");
	if (v == NULL || (strncmp(v, "https://", 8) != 0 &&
	    strncmp(v, "http://", 7) != 0) || strlen(v) >= sizeof(daily_url)) {
		api->log(p, SB_LOG_ERROR, "daily_api_url must be an http(s) "
		    "URL");
		return (SB_ERROR);
	}
	snprintf(daily_url, sizeof(daily_url), "%s", v);
	for (n = strlen(daily_url); n > 0 && daily_url[n - 1] == '/'; n--)
		daily_url[n - 1] = '\0';

	daily_auth[0] = '\0';
	if ((v = api->config_get(p, "daily_api_key")) != NULL && *v != '\0') {
		if (strlen(v) + 8 > sizeof(daily_auth) ||
		    strpbrk(v, "\r\n") != NULL) {
			api->log(p, SB_LOG_ERROR, "daily_api_key is not a "
			    "valid key");
			return (SB_ERROR);
		}
		snprintf(daily_auth, sizeof(daily_auth), "Bearer %s", v);
	} else
		api->log(p, SB_LOG_WARN, "daily_api_key is not set: calls "
		    "answer 503 until it is");

	hook_key_len = 0;
	if ((v = api->config_get(p, "webhook_secret")) != NULL && *v != '\0') {
		if (base64_key(v, hook_key, sizeof(hook_key),
		    &hook_key_len) == -1) {
			hook_key_len = 0;
			api->log(p, SB_LOG_ERROR, "webhook_secret is not "
			    "valid base64 (at most %zu bytes): the webhook "
			    "answers 503", sizeof(hook_key));
		}
	} else
		api->log(p, SB_LOG_WARN, "webhook_secret is not set: the "
		    "webhook answers 503 until it is");

	room_ttl = api->config_int(p, "room_ttl", 3600);
	max_participants = api->config_int(p, "max_participants", 2);
	timeout = api->config_int(p, "daily_timeout_ms", 10000);
	interval = api->config_int(p, "cleanup_interval", 300);
	webhook_tolerance = api->config_int(p, "webhook_tolerance", 300);
	if (room_ttl < 60 || room_ttl > 7 * 86400 || max_participants < 2 ||
	    max_participants > 200 || timeout < 100 || timeout > 120000 ||
	    interval < 1 || interval > 86400 || webhook_tolerance < 1 ||
	    webhook_tolerance > 86400) {
		api->log(p, SB_LOG_ERROR, "out of range: room_ttl 60..604800, "
		    "max_participants 2..200, daily_timeout_ms 100..120000, "
		    "cleanup_interval 1..86400, webhook_tolerance 1..86400");
		return (SB_ERROR);
	}
	daily_timeout_ms = (unsigned int)timeout;
	/* A lease longer than the HTTP timeout: a slow Daily must not get
	 * the deletion run twice at once. */
	delete_room_kind.timeout_s = (unsigned int)(timeout / 1000) + 15;
	cleanup_kind.interval_s = (unsigned int)interval;
	return (SB_OK);
}

static int
calls_health(struct sb_plugin *p, json_t *detail)
{
	(void)p;
	json_object_set_new(detail, "daily", json_string(daily_auth[0] !=
	    '\0' ? "configured" : "not configured"));
	json_object_set_new(detail, "webhook", json_string(hook_key_len > 0 ?
	    "configured" : "not configured"));
	return (SB_OK);
}

/*
 * Key rotation (desc.rekey): re-seal both meeting tokens of up to `batch`
 * sessions after state.after, in id order (keyset pagination).  The host
 * commits the UPDATEs together with the state this leaves.  A token that
 * opens under no key stays as it is (it could not be shown either).
 */
static int
calls_rekey(struct sb_plugin *p, json_t *state, unsigned int batch,
    unsigned int *resealed)
{
	struct sb_db_res	*r, *u;
	const char		*params[3];
	char			 after[32], lim[16], *na, *nd;
	int			 i, n, ra, rd, rc = -1;
	long long		 last;

	if (!SB_API_HAS(api, reseal))
		return (-1);
	last = json_integer_value(json_object_get(state, "after"));
	snprintf(after, sizeof(after), "%lld", last);
	snprintf(lim, sizeof(lim), "%u", batch);
	params[0] = after;
	params[1] = lim;
	r = api->db_query(p, "SELECT id, admin_token, donor_token FROM "
	    "calls_sessions WHERE id > $1::bigint ORDER BY id LIMIT $2::int",
	    2, params);
	if (!api->db_ok(r))
		goto out;
	n = api->db_rows(r);
	for (i = 0; i < n; i++) {
		ra = api->reseal(p, api->db_value(r, i, 1), &na);
		rd = api->reseal(p, api->db_value(r, i, 2), &nd);
		if (ra == -1 || rd == -1)
			api->log(p, SB_LOG_WARN, "session %s: a meeting token "
			    "opens under no data key; left as it is",
			    api->db_value(r, i, 0));
		if (ra == 1 || rd == 1) {
			params[0] = api->db_value(r, i, 0);
			params[1] = na;
			params[2] = nd;
			u = api->db_query(p, "UPDATE calls_sessions SET "
			    "admin_token = coalesce($2, admin_token), "
			    "donor_token = coalesce($3, donor_token) WHERE id = "
			    "$1::bigint", 3, params);
			free(na);
			free(nd);
			if (!api->db_ok(u)) {
				api->db_free(u);
				goto out;
			}
			api->db_free(u);
			*resealed += (ra == 1) + (rd == 1);
		}
		last = strtoll(api->db_value(r, i, 0), NULL, 10);
	}
	json_object_set_new(state, "after", json_integer(last));
	rc = n < (int)batch ? 0 : 1;
out:
	api->db_free(r);
	return (rc);
}

static int
calls_setup(struct sb_plugin *p, const struct sb_host_api *host)
{
	api = host;
	if (!SB_API_HAS(api, seal) || !SB_API_HAS(api, unseal) ||
	    !SB_API_HAS(api, req_body)) {
		api->log(p, SB_LOG_ERROR, "this host lacks seal/req_body "
		    "(ABI 1.1)");
		return (SB_ERROR);
	}
	if (api->config_declare(p, config_keys) != SB_OK ||
	    calls_config(p) != SB_OK ||
	    api->service_import(p, SB_CONCIERGE_THREAD, 1, &thread_svc) !=
	    SB_OK)
		return (SB_ERROR);
	if (api->permission_add(p, "calls.handle", "Accept, reject and "
	    "start calls") != SB_OK ||
	    api->routes_add(p, routes) != SB_OK ||
	    api->migrations_add(p, "migrations") != SB_OK ||
	    api->job_kind_add(p, &delete_room_kind) != SB_OK ||
	    api->job_kind_add(p, &cleanup_kind) != SB_OK ||
	    api->event_declare(p, "calls.request.created",
	    "A donor asked for a call (query:{id}, agents, user:{assignee})")
	    != SB_OK ||
	    api->event_declare(p, "calls.request.accepted",
	    "A call request was accepted") != SB_OK ||
	    api->event_declare(p, "calls.request.rejected",
	    "A call request was rejected") != SB_OK ||
	    api->event_declare(p, "calls.request.cancelled",
	    "The donor cancelled a call request") != SB_OK ||
	    api->event_declare(p, "calls.session.created",
	    "A call's room and tokens were made (no tokens in the event)")
	    != SB_OK ||
	    api->event_declare(p, "calls.session.started",
	    "A call started (with its CALL_STARTED message)") != SB_OK ||
	    api->event_declare(p, "calls.session.ended",
	    "A call ended (with its CALL_ENDED message)") != SB_OK)
		return (SB_ERROR);
	return (SB_OK);
}

/* ---- privacy (ABI 1.3) ---- */

/* A session as an export shows it: S_COLS without the sealed tokens. */
#define S_EXPORT_COLS	"id, query_id, request_id, admin_id, donor_id, " \
		"room_name, room_url, mode, status, " \
		TS("started_at") " AS started_at, " \
		TS("ended_at") " AS ended_at, " \
		TS("expires_at") " AS expires_at, " \
		TS("created_at") " AS created_at, " \
		TS("updated_at") " AS updated_at"

/*
 * A donor's call requests and sessions, by the donor_id both tables
 * carry (never through concierge's tables).  No meeting token, sealed
 * or not, leaves.  Customers and phone numbers: calls keeps neither.
 */
static json_t *
calls_privacy_export(struct sb_plugin *p, const struct sb_subject *s)
{
	const char	*params[1];

	if (s->kind != SB_SUBJECT_DONOR)
		return (json_object());
	params[0] = s->value;
	return (sb_db_json(api, p, "SELECT json_build_object("
	    "'requests', coalesce((SELECT json_agg(x ORDER BY x.id) FROM "
	    "(SELECT " R_COLS ", donor_id FROM calls_requests WHERE "
	    "donor_id = $1) x), '[]'), "
	    "'sessions', coalesce((SELECT json_agg(x ORDER BY x.id) FROM "
	    "(SELECT " S_EXPORT_COLS " FROM calls_sessions WHERE "
	    "donor_id = $1) x), '[]'))::text", 1, params));
}

/*
 * Sessions, then requests (a session points at its request).  A session
 * that had not ended still has a room at Daily the donor holds a token
 * for: its deletion is enqueued in the same (the host's) transaction.
 */
static long long
calls_privacy_erase(struct sb_plugin *p, const struct sb_subject *s)
{
	struct sb_db_res	*r;
	const char		*params[1];
	long long		 n;
	int			 i;

	if (s->kind != SB_SUBJECT_DONOR)
		return (0);
	params[0] = s->value;
	r = api->db_query(p, "DELETE FROM calls_sessions WHERE donor_id = $1 "
	    "RETURNING room_name, status <> 'ENDED' AS live", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (-1);
	}
	n = api->db_rows(r);
	for (i = 0; i < api->db_rows(r); i++) {
		if (strcmp(api->db_value(r, i, 1), "t") == 0 &&
		    enqueue_delete(p, api->db_value(r, i, 0)) == -1) {
			api->db_free(r);
			return (-1);
		}
	}
	api->db_free(r);
	r = api->db_query(p, "DELETE FROM calls_requests WHERE donor_id = $1 "
	    "RETURNING 1", 1, params);
	if (!api->db_ok(r))
		n = -1;
	else
		n += api->db_rows(r);
	api->db_free(r);
	return (n);
}

static const char *const depends[] = { "io.switchboard.concierge", NULL };

SB_PLUGIN(
	.id = "io.switchboard.calls",
	.name = "calls",
	.version = "1.0.0",
	.summary = "Video, audio and screen-share calls on donor queries "
	    "(Daily.co)",
	.depends = depends,
	.setup = calls_setup,
	.health = calls_health,
	.rekey = calls_rekey,
	.privacy_export = calls_privacy_export,
	.privacy_erase = calls_privacy_erase,
)
