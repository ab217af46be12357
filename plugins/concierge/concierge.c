/*
 * The concierge plugin: donor queries and their messages (API.md,
 * "Concierge").  A donor opens a query, staff accept, chat, transfer and
 * resolve it; the donor may close it.  Every state change goes through
 * query_transition() and is recorded as a SYSTEM message and published to
 * the query's WebSocket room.  Other plugins read a query, append to its
 * thread and read or clear the donor's push token through the
 * "concierge.thread" service (<switchboard/services/concierge.h>), never
 * through these tables.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <switchboard/plugin.h>
#include <switchboard/helpers.h>
#include <switchboard/services/concierge.h>

static const struct sb_host_api	*api;
/* Our own handle, for the service functions other plugins call. */
static struct sb_plugin		*self;

#define TS(c)	SB_SQL_TS(c)
#define Q_COLS	"id, donor, donor_id, test, stage, device, status, " \
		"assigned_to, resolved_by, transferred_to_user_id, " \
		"transfer_note, " TS("created_at") " AS created_at, " \
		TS("updated_at") " AS updated_at"
#define M_COLS	"id, query_id, content, message_type, sender_type, " \
		"sender_id, " TS("created_at") " AS created_at"

enum action { A_ACCEPT, A_RESOLVE, A_TRANSFER, A_CLOSE };

static const char *const statuses[] = { "IN_PROGRESS", "RESOLVED",
    "TRANSFERRED", "CLOSED", NULL };

static void	q_create(struct sb_req *);
static void	q_list(struct sb_req *);
static void	q_in_progress(struct sb_req *);
static void	q_resolved(struct sb_req *);
static void	q_transferred(struct sb_req *);
static void	q_mine(struct sb_req *);
static void	q_get(struct sb_req *);
static void	q_accept(struct sb_req *);
static void	q_resolve(struct sb_req *);
static void	q_transfer(struct sb_req *);
static void	q_donor_close(struct sb_req *);
static void	q_delete(struct sb_req *);
static void	m_list(struct sb_req *);
static void	m_create(struct sb_req *);
static void	q_send_reminder(struct sb_req *);
static void	c_stats(struct sb_req *);
static void	c_agents(struct sb_req *);
static void	reminders_run(struct sb_job *);

static const struct sb_config_key config_keys[] = {
	{ .key = "reminder_after", .default_value = "900",
	  .description = "Seconds a query may wait (unaccepted, or with the "
	  "donor's last message unanswered) before agents are reminded" },
	{ .key = "reminder_interval", .default_value = "60",
	  .description = "Seconds between two sweeps for due reminders" },
	{ .key = "create_rate_ip", .default_value = "10",
	  .description = "Queries one caller (a client address when "
	  "anonymous) may open per create_rate_window" },
	{ .key = "create_rate_donor", .default_value = "5",
	  .description = "Queries one donor_id may get per create_rate_window, "
	  "from any address" },
	{ .key = "create_rate_window", .default_value = "60",
	  .description = "Seconds of the two creation budgets" },
	SB_CONFIG_END
};

/* Not const: setup() sets interval_s from reminder_interval. */
static struct sb_job_kind reminder_kind = {
	.name = "concierge.reminders", .run = reminders_run,
	.max_attempts = 3, .timeout_s = 60, .interval_s = 60
};

static const struct sb_field create_body[] = {
	{ .name = "donor", .type = SB_T_STRING,
	  .flags = SB_F_REQUIRED | SB_F_NONEMPTY, .min_len = 1,
	  .max_len = 200, .description = "Donor display name" },
	{ .name = "donor_id", .type = SB_T_STRING,
	  .flags = SB_F_REQUIRED | SB_F_NONEMPTY, .min_len = 1,
	  .max_len = 100, .description = "The donor's id in the donor system" },
	{ .name = "test", .type = SB_T_STRING, .flags = SB_F_NULLABLE,
	  .max_len = 200, .description = "Test" },
	{ .name = "stage", .type = SB_T_STRING, .flags = SB_F_NULLABLE,
	  .max_len = 200, .description = "Stage" },
	{ .name = "device", .type = SB_T_STRING, .flags = SB_F_NULLABLE,
	  .max_len = 200, .description = "Device" },
	{ .name = "content", .type = SB_T_STRING,
	  .flags = SB_F_REQUIRED | SB_F_NONEMPTY, .min_len = 1,
	  .max_len = 4000, .description = "The question (first message)" },
	{ .name = "fcm_token", .type = SB_T_STRING, .flags = SB_F_NULLABLE,
	  .min_len = 1, .max_len = 4096, .description = "The donor app's FCM "
	  "registration token, for replies and call pushes (never returned)" },
	SB_FIELD_END
};

static const struct sb_field transfer_body[] = {
	{ .name = "to_user_id", .type = SB_T_INT,
	  .flags = SB_F_REQUIRED | SB_F_RANGE, .min = 1,
	  .max = 9007199254740991LL, .description = "Staff user to transfer to" },
	{ .name = "note", .type = SB_T_STRING, .flags = SB_F_NULLABLE,
	  .max_len = 1000, .description = "Transfer note" },
	SB_FIELD_END
};

static const struct sb_field message_body[] = {
	{ .name = "content", .type = SB_T_STRING,
	  .flags = SB_F_REQUIRED | SB_F_NONEMPTY, .min_len = 1,
	  .max_len = 4000, .description = "Message text" },
	SB_FIELD_END
};

#define DQ	"/api/v1/donor-queries"
/* Not const: setup() sets the creation budget from the configuration. */
static struct sb_route routes[] = {
	{ .method = "POST", .path = DQ, .flags = SB_ROUTE_PUBLIC,
	  .handler = q_create, .summary = "Open a donor query",
	  .body = create_body, .body_max = 16384 },
	{ .method = "GET", .path = DQ, .flags = SB_ROUTE_STAFF,
	  .handler = q_list, .summary = "List donor queries" },
	{ .method = "GET", .path = DQ "/in-progress", .flags = SB_ROUTE_STAFF,
	  .handler = q_in_progress, .summary = "IN_PROGRESS queries" },
	{ .method = "GET", .path = DQ "/resolved", .flags = SB_ROUTE_STAFF,
	  .handler = q_resolved, .summary = "RESOLVED queries" },
	{ .method = "GET", .path = DQ "/transferred", .flags = SB_ROUTE_STAFF,
	  .handler = q_transferred, .summary = "TRANSFERRED queries" },
	{ .method = "GET", .path = DQ "/mine",
	  .flags = SB_ROUTE_DONOR, .handler = q_mine,
	  .summary = "The calling donor's queries" },
	{ .method = "GET", .path = DQ "/{id}",
	  .flags = SB_ROUTE_AUTHENTICATED, .handler = q_get,
	  .summary = "One query (staff or the owning donor)" },
	{ .method = "PATCH", .path = DQ "/{id}/accept",
	  .permission = "queries.handle", .handler = q_accept,
	  .summary = "Accept (assign to the caller)" },
	{ .method = "PATCH", .path = DQ "/{id}/resolve",
	  .permission = "queries.handle", .handler = q_resolve,
	  .summary = "Resolve (assignee, or queries.manage)" },
	{ .method = "PATCH", .path = DQ "/{id}/transfer",
	  .permission = "queries.handle", .handler = q_transfer,
	  .summary = "Transfer to another agent", .body = transfer_body },
	{ .method = "POST", .path = DQ "/{id}/send-reminder",
	  .permission = "queries.handle", .handler = q_send_reminder,
	  .summary = "Remind the assignee (or all agents if unassigned)",
	  .rate = { 30, 60 } },
	{ .method = "POST", .path = DQ "/{id}/donor-close",
	  .flags = SB_ROUTE_DONOR, .handler = q_donor_close,
	  .summary = "Close (owning donor)" },
	{ .method = "DELETE", .path = DQ "/{id}",
	  .permission = "queries.manage", .handler = q_delete,
	  .summary = "Delete a query" },
	{ .method = "GET", .path = DQ "/{id}/messages",
	  .flags = SB_ROUTE_AUTHENTICATED, .handler = m_list,
	  .summary = "Messages, oldest first" },
	{ .method = "POST", .path = DQ "/{id}/messages",
	  .flags = SB_ROUTE_AUTHENTICATED, .handler = m_create,
	  .summary = "Post a message", .body = message_body,
	  .body_max = 16384 },
	{ .method = "GET", .path = "/api/v1/concierge/agents",
	  .permission = "queries.handle|queries.manage", .handler = c_agents,
	  .summary = "Active staff who can take a query (transfer targets): "
	  "id, username, name" },
	{ .method = "GET", .path = "/api/v1/concierge/stats",
	  .permission = "queries.manage|system.read", .handler = c_stats,
	  .summary = "Counts, first-response and resolution times per "
	  "agent and per day" },
	SB_ROUTE_END
};

/* ---- helpers ---- */

static unsigned int	create_rate_donor, create_rate_window;

static int
is_staff(const struct sb_principal *who)
{
	return (who->kind == SB_ACTOR_USER || who->kind == SB_ACTOR_API_KEY);
}

static void
err_db(struct sb_req *req)
{
	api->respond_error(req, 503, "UNAVAILABLE", "database unavailable",
	    NULL);
}

static void
err_404(struct sb_req *req)
{
	api->respond_error(req, 404, "NOT_FOUND", "no such query", NULL);
}

/* A positive id of at most 18 digits, or NULL. */
static const char *
param_id(struct sb_req *req, const char *name)
{
	return (sb_positive_id(api->req_param(req, name)));
}

/* Load one query (optionally FOR UPDATE).  NULL: not found or *dberr. */
static json_t *
query_load(struct sb_plugin *p, const char *id, int for_update, int *dberr)
{
	struct sb_db_res	*r;
	const char		*params[1] = { id };
	json_t			*q = NULL;

	*dberr = 0;
	r = api->db_query(p, for_update ?
	    "SELECT " Q_COLS " FROM concierge_queries WHERE id = $1::bigint "
	    "FOR UPDATE" :
	    "SELECT " Q_COLS " FROM concierge_queries WHERE id = $1::bigint",
	    1, params);
	if (!api->db_ok(r))
		*dberr = 1;
	else if (api->db_rows(r) > 0)
		q = api->db_row_json(r, 0);
	api->db_free(r);
	return (q);
}

static int
may_see(const struct sb_principal *who, json_t *q)
{
	const char	*d;

	if (is_staff(who))
		return (1);
	if (who->kind != SB_ACTOR_DONOR || who->donor_id == NULL)
		return (0);
	d = json_string_value(json_object_get(q, "donor_id"));
	return (d != NULL && strcmp(d, who->donor_id) == 0);
}

/* Load the query in {id} for a caller who may see it; answers on failure. */
static json_t *
query_for(struct sb_req *req, int for_update)
{
	const char	*id = param_id(req, "id");
	json_t		*q;
	int		 dberr;

	if (id == NULL) {
		err_404(req);
		return (NULL);
	}
	q = query_load(api->req_plugin(req), id, for_update, &dberr);
	if (dberr) {
		err_db(req);
		return (NULL);
	}
	if (q == NULL || !may_see(api->req_principal(req), q)) {
		json_decref(q);
		err_404(req);
		return (NULL);
	}
	return (q);
}

/*
 * The state machine: is `a` by `caller` legal on a query in state `status`
 * with assignee `assigned` (0: none)?  Whether the caller may make a legal
 * change to a query someone else holds is query_transition()'s question.
 */
static int
transition_legal(const char *status, json_int_t assigned, json_int_t caller,
    enum action a)
{
	int	open_ = strcmp(status, "IN_PROGRESS") == 0;
	int	xfer = strcmp(status, "TRANSFERRED") == 0;

	switch (a) {
	case A_ACCEPT:
		/* A transfer makes the target the assignee, so the target
		 * must still be able to take the query; only someone else
		 * holding it is a conflict (API.md).  The caller's own
		 * IN_PROGRESS query is legal too: q_accept() answers it
		 * without a change. */
		return ((open_ && assigned == 0) ||
		    ((open_ || xfer) && assigned == caller));
	case A_RESOLVE:
	case A_TRANSFER:
		return ((open_ && assigned != 0) || xfer);
	case A_CLOSE:
		return (open_ || xfer);
	}
	return (0);
}

static void
conflict(struct sb_req *req, json_t *q, const char *what)
{
	char	msg[256];

	snprintf(msg, sizeof(msg), "cannot %s a query that is %s%s", what,
	    sb_jstr(q, "status") ? sb_jstr(q, "status") : "?",
	    sb_jint(q, "assigned_to") ? " and assigned" : "");
	api->respond_error(req, 409, "CONFLICT", msg,
	    json_pack("[{s:s,s:s,s:s}]", "field", "status", "code",
	    "CONFLICT", "message", sb_jstr(q, "status") ? sb_jstr(q, "status") :
	    ""));
}

/*
 * Insert a message; returns it (caller owns) or NULL, with assigned_to:
 * the query's assignee as this very statement saw it.  That is the data
 * of its concierge.message.created event: who had the query when the
 * message was written, fixed before anyone hears of the message, so that
 * a notification fanned out later (after an accept or a transfer) still
 * reaches the assignee of that moment.  A caller answering with the
 * message drops the key (the message as GET .../messages shows it).
 */
static json_t *
message_insert(struct sb_plugin *p, const char *qid, const char *content,
    const char *type, const char *sender_type, const char *sender_id)
{
	struct sb_db_res	*r;
	const char		*params[5] = { qid, content, type, sender_type,
				    sender_id };
	json_t			*m = NULL;

	/* One statement: the message, and the query's first response when
	 * this is the first staff chat message. */
	r = api->db_query(p, "WITH m AS (INSERT INTO concierge_messages "
	    "(query_id, content, message_type, sender_type, sender_id) VALUES "
	    "($1::bigint, $2, $3, $4, $5) RETURNING *), f AS (UPDATE "
	    "concierge_queries q SET first_response_at = m.created_at, "
	    "first_response_by = m.sender_id::bigint FROM m WHERE q.id = "
	    "m.query_id AND m.sender_type = 'STAFF' AND m.message_type = "
	    "'CHAT' AND q.first_response_at IS NULL) SELECT " M_COLS
	    ", (SELECT q.assigned_to FROM concierge_queries q WHERE q.id = "
	    "m.query_id) AS assigned_to FROM m", 5, params);
	if (api->db_ok(r) && api->db_rows(r) == 1)
		m = api->db_row_json(r, 0);
	api->db_free(r);
	return (m);
}

/* ---- the concierge.thread service ---- */

/* What query_get shows: the header's list, never the push token. */
#define T_COLS	"id, donor, donor_id, status, assigned_to, test, stage, device"

static json_t *
thread_query_get(struct sb_plugin *caller, int64_t query_id,
    unsigned int flags, int *dberr)
{
	struct sb_db_res	*r;
	const char		*params[1];
	char			 id[32];
	json_t			*q = NULL;

	(void)caller;
	*dberr = 0;
	if (query_id < 1)
		return (NULL);
	snprintf(id, sizeof(id), "%lld", (long long)query_id);
	params[0] = id;
	r = api->db_query(self, (flags & SB_CONCIERGE_LOCK) ?
	    "SELECT " T_COLS " FROM concierge_queries WHERE id = $1::bigint "
	    "FOR UPDATE" :
	    "SELECT " T_COLS " FROM concierge_queries WHERE id = $1::bigint",
	    1, params);
	if (!api->db_ok(r))
		*dberr = 1;
	else if (api->db_rows(r) == 1)
		q = api->db_row_json(r, 0);
	api->db_free(r);
	return (q);
}

static json_t *
thread_system_message(struct sb_plugin *caller, int64_t query_id,
    const char *type, const char *content)
{
	json_t	*m;
	char	id[32];
	size_t	len;

	(void)caller;
	if (query_id < 1 || type == NULL || content == NULL ||
	    (strcmp(type, "CALL_STARTED") != 0 &&
	    strcmp(type, "CALL_ENDED") != 0 && strcmp(type, "SYSTEM") != 0) ||
	    (len = strlen(content)) == 0 || len > 4000)
		return (NULL);
	snprintf(id, sizeof(id), "%lld", (long long)query_id);
	if ((m = message_insert(self, id, content, type, "SYSTEM",
	    NULL)) != NULL)
		json_object_del(m, "assigned_to");
	return (m);
}

static int
thread_donor_device(struct sb_plugin *caller, int64_t query_id,
    char **token)
{
	struct sb_db_res	*r;
	const char		*params[1];
	char			 id[32];
	int			 rc;

	(void)caller;
	if (token != NULL)
		*token = NULL;
	if (query_id < 1)
		return (0);
	snprintf(id, sizeof(id), "%lld", (long long)query_id);
	params[0] = id;
	r = api->db_query(self, "SELECT donor_fcm_token FROM concierge_queries "
	    "WHERE id = $1::bigint AND donor_fcm_token IS NOT NULL", 1, params);
	if (!api->db_ok(r))
		rc = -1;
	else if (api->db_rows(r) != 1)
		rc = 0;
	else if (token == NULL)
		rc = 1;
	else
		rc = (*token = strdup(api->db_value(r, 0, 0))) != NULL ? 1 : -1;
	api->db_free(r);
	return (rc);
}

static long long
thread_donor_device_forget(struct sb_plugin *caller, const char *token)
{
	(void)caller;
	if (token == NULL || *token == '\0')
		return (0);
	return (sb_db_count(api, self, "UPDATE concierge_queries SET "
	    "donor_fcm_token = NULL WHERE donor_fcm_token = $1 RETURNING 1", 1,
	    &token));
}

/* Version 2 took two of version 1's spare slots, so the table kept its
 * size and every version 1 slot its offset.  A size change here means a
 * slot was added without taking it from spare[]: only ever at the end. */
_Static_assert(sizeof(struct sb_concierge_thread) ==
    sizeof(struct sb_service) + 10 * sizeof(void *),
    "concierge.thread: new slots come out of spare[]");

static const struct sb_concierge_thread thread_service = {
	.hdr = { .size = sizeof(struct sb_concierge_thread),
	    .version = SB_CONCIERGE_THREAD_VERSION },
	.query_get = thread_query_get,
	.system_message = thread_system_message,
	.donor_device = thread_donor_device,
	.donor_device_forget = thread_donor_device_forget,
};

static void
publish_query(struct sb_plugin *p, json_int_t id, const char *event,
    json_t *data)
{
	char	room[48];

	snprintf(room, sizeof(room), "query:%lld", (long long)id);
	api->publish_room(p, room, event, 1, data);
}

/*
 * Inside an open transaction: the one query row r returned (Q_COLS; r is
 * freed here) gets its message, and the transaction commits.  0 with *qp
 * and *mp set (the caller owns both), or -1 after rolling back and
 * answering 503.
 */
static int
commit_with_message(struct sb_req *req, struct sb_db_res *r,
    const char *content, const char *type, const char *sender_type,
    const char *sender_id, json_t **qp, json_t **mp)
{
	struct sb_plugin	*p = api->req_plugin(req);
	json_t			*q, *m;
	char			 qid[32];

	if (!api->db_ok(r) || api->db_rows(r) != 1) {
		api->db_free(r);
		api->db_rollback(p);
		err_db(req);
		return (-1);
	}
	q = api->db_row_json(r, 0);
	api->db_free(r);
	snprintf(qid, sizeof(qid), "%lld", (long long)sb_jint(q, "id"));
	m = message_insert(p, qid, content, type, sender_type, sender_id);
	if (m == NULL || api->db_commit(p) != SB_OK) {
		json_decref(m);
		json_decref(q);
		api->db_rollback(p);
		err_db(req);
		return (-1);
	}
	*qp = q;
	*mp = m;
	return (0);
}

/*
 * A state change whose UPDATE returned r inside an open transaction:
 * record the SYSTEM message, commit, publish, answer 200.
 */
static void
finish_change(struct sb_req *req, struct sb_db_res *r, const char *sysmsg,
    const char *event, json_int_t notify_user)
{
	struct sb_plugin	*p = api->req_plugin(req);
	json_t			*q, *m;
	char			 room[48];

	if (commit_with_message(req, r, sysmsg, "SYSTEM", "SYSTEM", NULL, &q,
	    &m) == -1)
		return;
	publish_query(p, sb_jint(q, "id"), "concierge.message.created", m);
	publish_query(p, sb_jint(q, "id"), event, q);
	/* Every agent's queues move with it (an accepted query leaves
	 * everyone's unassigned list): the consoles listen on agents. */
	api->publish_room(p, "agents", event, 1, q);
	if (notify_user > 0) {
		snprintf(room, sizeof(room), "user:%lld",
		    (long long)notify_user);
		api->publish_room(p, room, event, 1, q);
	}
	json_decref(m);
	api->respond_json(req, 200, q);
}

/*
 * Apply a state change inside an open transaction (the query locked by
 * query_transition()): sql is the UPDATE (params: $1 id, then extra),
 * returning Q_COLS.
 */
static void
apply_change(struct sb_req *req, const char *sql, int n,
    const char *const *params, const char *sysmsg, const char *event,
    json_int_t notify_user)
{
	finish_change(req, api->db_query(api->req_plugin(req), sql, n, params),
	    sysmsg, event, notify_user);
}

/*
 * The one place a state change is decided: begin, lock the query, check
 * visibility, the transition and who may make it.  Returns the locked
 * query with the transaction open, or NULL after answering.
 */
static json_t *
query_transition(struct sb_req *req, enum action a)
{
	struct sb_plugin		*p = api->req_plugin(req);
	const struct sb_principal	*who = api->req_principal(req);
	json_t				*q;
	static const char *const	 verbs[] = { "accept", "resolve",
					    "transfer", "close" };

	if (api->db_begin(p) != SB_OK) {
		err_db(req);
		return (NULL);
	}
	if ((q = query_for(req, 1)) == NULL) {
		api->db_rollback(p);
		return (NULL);
	}
	if (a == A_CLOSE && who->kind != SB_ACTOR_DONOR) {
		api->db_rollback(p);
		json_decref(q);
		api->respond_error(req, 403, "FORBIDDEN", "only the owning "
		    "donor may close a query", NULL);
		return (NULL);
	}
	if (!transition_legal(sb_jstr(q, "status"), sb_jint(q, "assigned_to"),
	    who->id, a)) {
		api->db_rollback(p);
		conflict(req, q, verbs[a]);
		json_decref(q);
		return (NULL);
	}
	if ((a == A_RESOLVE || a == A_TRANSFER) &&
	    sb_jint(q, "assigned_to") != who->id &&
	    !api->req_allowed(req, "queries.manage")) {
		api->db_rollback(p);
		json_decref(q);
		api->respond_error(req, 403, "FORBIDDEN", "only the assignee "
		    "or a manager may do this", NULL);
		return (NULL);
	}
	return (q);
}

/* ---- routes ---- */

static void
q_create(struct sb_req *req)
{
	struct sb_plugin		*p = api->req_plugin(req);
	const struct sb_principal	*who = api->req_principal(req);
	json_t				*body = api->req_json(req), *q, *m;
	struct sb_db_res		*r;
	const char			*params[6];
	char				*token, key[160], ra[16];
	unsigned int			 retry;

	params[0] = sb_jstr(body, "donor");
	params[1] = sb_jstr(body, "donor_id");
	params[2] = sb_jstr(body, "test");
	params[3] = sb_jstr(body, "stage");
	params[4] = sb_jstr(body, "device");
	params[5] = sb_jstr(body, "fcm_token");
	if (who->kind == SB_ACTOR_DONOR && (who->donor_id == NULL ||
	    strcmp(who->donor_id, params[1]) != 0)) {
		api->respond_error(req, 403, "FORBIDDEN", "a donor may only "
		    "open queries for itself", NULL);
		return;
	}
	/* The route's budget is per caller; this one is per donor, so a
	 * donor's id cannot be flooded from many addresses. */
	snprintf(key, sizeof(key), "concierge:create:%s", params[1]);
	if (create_rate_donor > 0 && api->rate_hit(p, key, create_rate_donor,
	    create_rate_window, &retry) == -1) {
		snprintf(ra, sizeof(ra), "%u", retry > 0 ? retry : 1);
		api->resp_header(req, "retry-after", ra);
		api->respond_error(req, 429, "RATE_LIMITED", "too many queries "
		    "for this donor: try again later", NULL);
		return;
	}
	if (api->db_begin(p) != SB_OK) {
		err_db(req);
		return;
	}
	r = api->db_query(p, "INSERT INTO concierge_queries (donor, donor_id, "
	    "test, stage, device, donor_fcm_token) VALUES ($1, $2, $3, $4, $5, "
	    "$6) RETURNING " Q_COLS, 6, params);
	if (commit_with_message(req, r, sb_jstr(body, "content"), "QUERY",
	    "DONOR", params[1], &q, &m) == -1)
		return;
	token = api->donor_token(p, params[1], params[0]);
	api->publish_room(p, "agents", "concierge.query.created", 1, q);
	publish_query(p, sb_jint(q, "id"), "concierge.message.created", m);
	json_decref(m);
	api->respond_json(req, 201, json_pack("{s:o,s:s?}", "query", q,
	    "donor_token", token));
	free(token);
}

static void
list_queries(struct sb_req *req, const char *status, const char *donor_id)
{
	struct sb_plugin	*p = api->req_plugin(req);
	struct sb_db_res	*r;
	struct sb_list		 list;
	const char		*params[6], *assigned, *q;
	char			*end, *pattern = NULL;
	int			 i;

	if (status != NULL) {
		for (i = 0; statuses[i] != NULL; i++)
			if (strcmp(statuses[i], status) == 0)
				break;
		if (statuses[i] == NULL) {
			api->respond_error(req, 400, "VALIDATION_ERROR",
			    "unknown status", sb_field_error("status",
			    "INVALID_CHOICE", "one of IN_PROGRESS, RESOLVED, "
			    "TRANSFERRED, CLOSED"));
			return;
		}
	}
	assigned = api->req_query(req, "assigned_to");
	if (assigned != NULL && (*assigned == '\0' || strlen(assigned) > 18 ||
	    (strtoll(assigned, &end, 10), *end != '\0'))) {
		api->respond_error(req, 400, "VALIDATION_ERROR",
		    "invalid assigned_to", sb_field_error("assigned_to",
		    "INVALID_TYPE", "must be an integer"));
		return;
	}
	q = api->req_query(req, "q");
	if (q != NULL && *q == '\0')
		q = NULL;
	if (q != NULL && strlen(q) > 200) {
		api->respond_error(req, 400, "VALIDATION_ERROR",
		    "search text too long", sb_field_error("q", "TOO_LONG",
		    "at most 200 characters"));
		return;
	}
	if (api->list_parse(req, &list, SB_LIST_ID_CURSOR) != SB_OK)
		return;
	if (q != NULL && (pattern = sb_like_pattern(q)) == NULL) {
		api->respond_error(req, 503, "UNAVAILABLE", "out of memory",
		    NULL);
		return;
	}
	params[0] = status;
	params[1] = assigned;
	params[2] = pattern;
	params[3] = list.cursor;
	params[4] = list.limit_plus_one;
	params[5] = donor_id;
	/* preview: the start of the donor's question, so a queue shows it
	 * without a request per query (one index probe per row). */
	r = api->db_query(p, "SELECT " Q_COLS ", (SELECT left(m.content, "
	    "140) FROM concierge_messages m WHERE m.query_id = "
	    "concierge_queries.id ORDER BY m.id LIMIT 1) AS preview FROM "
	    "concierge_queries WHERE "
	    "($1::text IS NULL OR status = $1) AND "
	    "($2::bigint IS NULL OR assigned_to = $2::bigint) AND "
	    "($3::text IS NULL OR (donor || ' ' || donor_id || ' ' || "
	    "coalesce(test, '')) ILIKE $3 OR id IN (SELECT query_id FROM "
	    "concierge_messages WHERE content ILIKE $3)) "
	    "AND ($4::bigint IS NULL OR id < $4::bigint) AND "
	    "($6::text IS NULL OR donor_id = $6) "
	    "ORDER BY id DESC LIMIT $5::bigint", 6, params);
	free(pattern);
	api->list_respond(req, r, &list, "id", NULL, NULL);
}

static void
q_list(struct sb_req *req)
{
	list_queries(req, api->req_query(req, "status"), NULL);
}

static void
q_in_progress(struct sb_req *req)
{
	list_queries(req, "IN_PROGRESS", NULL);
}

static void
q_resolved(struct sb_req *req)
{
	list_queries(req, "RESOLVED", NULL);
}

static void
q_transferred(struct sb_req *req)
{
	list_queries(req, "TRANSFERRED", NULL);
}

static void
q_mine(struct sb_req *req)
{
	const struct sb_principal	*who = api->req_principal(req);

	if (who->kind != SB_ACTOR_DONOR || who->donor_id == NULL) {
		api->respond_error(req, 403, "FORBIDDEN", "donors only", NULL);
		return;
	}
	list_queries(req, NULL, who->donor_id);
}

static void
q_get(struct sb_req *req)
{
	json_t	*q;

	if ((q = query_for(req, 0)) != NULL)
		api->respond_json(req, 200, q);
}

/*
 * Accept through query_transition() like every other change: the row lock
 * it takes makes a second accept wait for the first to commit and then
 * judge the row the first left, so of two agents accepting at once one
 * gets 200 and the other 409.  Accepting a query one already holds in
 * progress is a no-op (200, no message, no event): a double click or a
 * retry must not be a conflict nor write the thread twice.  The transfer
 * target accepting keeps assigned_at, as it has held the query since the
 * transfer (the reminder wait does not restart).
 */
static void
q_accept(struct sb_req *req)
{
	struct sb_plugin		*p = api->req_plugin(req);
	const struct sb_principal	*who = api->req_principal(req);
	const char			*params[2];
	json_t				*q;
	char				 uid[32], msg[128];

	if ((q = query_transition(req, A_ACCEPT)) == NULL)
		return;
	if (strcmp(sb_jstr(q, "status"), "IN_PROGRESS") == 0 &&
	    sb_jint(q, "assigned_to") == who->id) {
		api->db_rollback(p);
		api->respond_json(req, 200, q);
		return;
	}
	json_decref(q);
	snprintf(uid, sizeof(uid), "%lld", (long long)who->id);
	params[0] = api->req_param(req, "id");
	params[1] = uid;
	snprintf(msg, sizeof(msg), "Query accepted by %s",
	    who->name ? who->name : uid);
	apply_change(req, "UPDATE concierge_queries SET status = "
	    "'IN_PROGRESS', assigned_to = $2::bigint, assigned_at = CASE WHEN "
	    "assigned_to IS NULL THEN now() ELSE assigned_at END, updated_at = "
	    "now() WHERE id = $1::bigint RETURNING " Q_COLS, 2, params, msg,
	    "concierge.query.accepted", 0);
}

static void
q_resolve(struct sb_req *req)
{
	const struct sb_principal	*who = api->req_principal(req);
	json_t				*q;
	const char			*params[2];
	char				 uid[32], msg[128];

	if ((q = query_transition(req, A_RESOLVE)) == NULL)
		return;
	snprintf(uid, sizeof(uid), "%lld", (long long)who->id);
	params[0] = api->req_param(req, "id");
	params[1] = uid;
	snprintf(msg, sizeof(msg), "Query resolved by %s",
	    who->name ? who->name : uid);
	json_decref(q);
	apply_change(req, "UPDATE concierge_queries SET status = 'RESOLVED', "
	    "resolved_by = $2::bigint, resolved_at = now(), updated_at = "
	    "now() WHERE id = $1::bigint RETURNING " Q_COLS, 2, params, msg,
	    "concierge.query.resolved", 0);
}

static void
q_transfer(struct sb_req *req)
{
	struct sb_plugin		*p = api->req_plugin(req);
	const struct sb_principal	*who = api->req_principal(req);
	json_t				*body = api->req_json(req), *q;
	struct sb_db_res		*r;
	const char			*params[3];
	char				 to[32], msg[256];
	json_int_t			 to_id;
	int				 ok;

	to_id = sb_jint(body, "to_user_id");
	snprintf(to, sizeof(to), "%lld", (long long)to_id);
	if ((q = query_transition(req, A_TRANSFER)) == NULL)
		return;
	json_decref(q);
	params[0] = to;
	r = api->db_query(p, "SELECT 1 FROM users u JOIN roles r ON r.id = "
	    "u.role_id WHERE u.id = $1::bigint AND u.is_active AND "
	    "(r.name = 'SUPER_ADMIN' OR 'queries.handle' = ANY "
	    "(r.permissions))", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		api->db_rollback(p);
		err_db(req);
		return;
	}
	ok = api->db_rows(r) == 1;
	api->db_free(r);
	if (!ok) {
		api->db_rollback(p);
		api->respond_error(req, 422, "VALIDATION_ERROR", "cannot "
		    "transfer to that user", sb_field_error("to_user_id",
		    "INVALID", "not an active user who handles queries"));
		return;
	}
	params[0] = api->req_param(req, "id");
	params[1] = to;
	params[2] = sb_jstr(body, "note");
	snprintf(msg, sizeof(msg), "Query transferred by %s to user %s",
	    who->name ? who->name : "staff", to);
	apply_change(req, "UPDATE concierge_queries SET status = "
	    "'TRANSFERRED', assigned_to = $2::bigint, assigned_at = now(), "
	    "transferred_to_user_id = $2::bigint, transfer_note = $3, "
	    "updated_at = now() WHERE id = $1::bigint RETURNING " Q_COLS, 3, params, msg,
	    "concierge.query.transferred", to_id);
}

static void
q_donor_close(struct sb_req *req)
{
	json_t		*q;
	const char	*params[1];

	if ((q = query_transition(req, A_CLOSE)) == NULL)
		return;
	json_decref(q);
	params[0] = api->req_param(req, "id");
	apply_change(req, "UPDATE concierge_queries SET status = 'CLOSED', "
	    "updated_at = now() WHERE id = $1::bigint RETURNING " Q_COLS, 1,
	    params, "Query closed by the donor",
	    "concierge.query.closed", 0);
}

static void
q_delete(struct sb_req *req)
{
	struct sb_plugin	*p = api->req_plugin(req);
	struct sb_db_res	*r;
	const char		*params[1];
	json_t			*data;
	int			 n;

	if ((params[0] = param_id(req, "id")) == NULL) {
		err_404(req);
		return;
	}
	r = api->db_query(p, "DELETE FROM concierge_queries WHERE id = "
	    "$1::bigint RETURNING id", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		err_db(req);
		return;
	}
	n = api->db_rows(r);
	api->db_free(r);
	if (n == 0) {
		err_404(req);
		return;
	}
	data = json_pack("{s:I}", "id", (json_int_t)strtoll(params[0], NULL,
	    10));
	publish_query(p, json_integer_value(json_object_get(data, "id")),
	    "concierge.query.deleted", data);
	api->publish_room(p, "agents", "concierge.query.deleted", 1, data);
	json_decref(data);
	api->respond_raw(req, 204, NULL, NULL, 0);
}

static void
m_list(struct sb_req *req)
{
	struct sb_plugin	*p = api->req_plugin(req);
	struct sb_db_res	*r;
	struct sb_list		 list;
	const char		*after, *params[3];
	char			 qid[32], *end;
	json_t			*q;

	if ((q = query_for(req, 0)) == NULL)
		return;
	snprintf(qid, sizeof(qid), "%lld", (long long)sb_jint(q, "id"));
	json_decref(q);
	after = api->req_query(req, "after_id");
	if (after != NULL && (*after == '\0' || strlen(after) > 18 ||
	    (strtoll(after, &end, 10), *end != '\0'))) {
		api->respond_error(req, 400, "VALIDATION_ERROR",
		    "invalid after_id", sb_field_error("after_id",
		    "INVALID_TYPE", "must be an integer"));
		return;
	}
	if (api->list_parse(req, &list, SB_LIST_ID_CURSOR) != SB_OK)
		return;
	/* Oldest first: the next page is after the last id shown. */
	if (list.cursor != NULL)
		after = list.cursor;
	params[0] = qid;
	params[1] = after;
	params[2] = list.limit_plus_one;
	r = api->db_query(p, "SELECT " M_COLS " FROM concierge_messages "
	    "WHERE query_id = $1::bigint AND ($2::bigint IS NULL OR id > "
	    "$2::bigint) ORDER BY id ASC LIMIT $3::bigint", 3, params);
	api->list_respond(req, r, &list, "id", NULL, NULL);
}

static void
m_create(struct sb_req *req)
{
	struct sb_plugin		*p = api->req_plugin(req);
	const struct sb_principal	*who = api->req_principal(req);
	json_t				*q, *m, *out;
	const char			*st, *sender_type, *sender_id;
	char				 qid[32], uid[32];

	if (!is_staff(who) && who->kind != SB_ACTOR_DONOR) {
		api->respond_error(req, 403, "FORBIDDEN", "not allowed", NULL);
		return;
	}
	if ((q = query_for(req, 0)) == NULL)
		return;
	st = sb_jstr(q, "status");
	if (st == NULL || strcmp(st, "RESOLVED") == 0 ||
	    strcmp(st, "CLOSED") == 0) {
		conflict(req, q, "post to");
		json_decref(q);
		return;
	}
	snprintf(qid, sizeof(qid), "%lld", (long long)sb_jint(q, "id"));
	json_decref(q);
	if (who->kind == SB_ACTOR_DONOR) {
		sender_type = "DONOR";
		sender_id = who->donor_id;
	} else {
		sender_type = "STAFF";
		snprintf(uid, sizeof(uid), "%lld", (long long)who->id);
		sender_id = uid;
	}
	m = message_insert(p, qid, sb_jstr(api->req_json(req), "content"),
	    "CHAT", sender_type, sender_id);
	if (m == NULL) {
		err_db(req);
		return;
	}
	publish_query(p, sb_jint(m, "query_id"), "concierge.message.created", m);
	out = json_copy(m);
	json_decref(m);
	if (out == NULL) {
		err_db(req);
		return;
	}
	json_object_del(out, "assigned_to");
	api->respond_json(req, 201, out);
}

/* ---- reminders ---- */

/*
 * The reminder event: to user:{assignee}, or to agents while nobody has
 * the query.  row holds id, assigned_to, reason, waiting_since.
 */
static void
publish_reminder(struct sb_plugin *p, json_t *row)
{
	char		room[48];
	json_int_t	assignee = sb_jint(row, "assigned_to");

	if (assignee > 0)
		snprintf(room, sizeof(room), "user:%lld", (long long)assignee);
	else
		snprintf(room, sizeof(room), "agents");
	json_object_set_new(row, "room", json_string(room));
	api->publish_room(p, room, "concierge.reminder", 1, row);
}

#define R_COLS	"q.id AS query_id, q.donor, q.donor_id, q.status, " \
		"q.assigned_to, q.reminder_count, " TS("q.last_reminder_at") \
		" AS reminded_at"

static void
q_send_reminder(struct sb_req *req)
{
	struct sb_plugin		*p = api->req_plugin(req);
	const struct sb_principal	*who = api->req_principal(req);
	struct sb_db_res		*r;
	const char			*params[2];
	char				 uid[32];
	json_t				*q, *row;

	if ((q = query_for(req, 0)) == NULL)
		return;
	if (!transition_legal(sb_jstr(q, "status"), sb_jint(q, "assigned_to"),
	    who->id, A_CLOSE)) {
		conflict(req, q, "send a reminder for");
		json_decref(q);
		return;
	}
	json_decref(q);
	snprintf(uid, sizeof(uid), "%lld", (long long)who->id);
	params[0] = api->req_param(req, "id");
	params[1] = uid;
	r = api->db_query(p, "UPDATE concierge_queries q SET reminder_count = "
	    "reminder_count + 1, last_reminder_at = now() WHERE id = "
	    "$1::bigint AND status IN ('IN_PROGRESS', 'TRANSFERRED') "
	    "RETURNING " R_COLS ", 'MANUAL' AS reason, $2::bigint AS sent_by",
	    2, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		err_db(req);
		return;
	}
	if (api->db_rows(r) != 1) {
		/* Closed or deleted between the read and the update. */
		api->db_free(r);
		api->respond_error(req, 409, "CONFLICT", "the query is no "
		    "longer open", NULL);
		return;
	}
	row = api->db_row_json(r, 0);
	api->db_free(r);
	publish_reminder(p, row);
	api->respond_json(req, 200, row);
}

/*
 * The periodic sweep.  A query is waiting when it is open and either
 * nobody accepted it (the wait starts at creation) or its last non-system
 * message is the donor's (the wait starts at that message, or at the
 * assignment if later: a new assignee gets the full reminder_after).  A
 * wait longer than reminder_after is reminded once: reminded_for records
 * which wait was reminded, and the row lock of the UPDATE re-checks it, so
 * two sweeps never remind the same wait twice.
 */
static void
reminders_run(struct sb_job *job)
{
	struct sb_plugin	*p = api->job_plugin(job);
	struct sb_db_res	*r;
	const char		*params[1];
	char			 after[32];
	int			 i, n;

	snprintf(after, sizeof(after), "%lld",
	    api->config_int(p, "reminder_after", 900));
	params[0] = after;
	r = api->db_query(p, "WITH c AS (SELECT q.id, q.reminded_for, "
	    "CASE WHEN q.assigned_to IS NULL THEN q.created_at ELSE "
	    "greatest(q.assigned_at, lm.created_at) END AS wait_start, "
	    "CASE WHEN q.assigned_to IS NULL THEN 'UNACCEPTED' ELSE "
	    "'UNANSWERED' END AS reason FROM concierge_queries q LEFT JOIN "
	    "LATERAL (SELECT m.created_at, m.sender_type FROM "
	    "concierge_messages m WHERE m.query_id = q.id AND m.sender_type "
	    "<> 'SYSTEM' ORDER BY m.id DESC LIMIT 1) lm ON q.assigned_to IS "
	    "NOT NULL WHERE q.status IN ('IN_PROGRESS', 'TRANSFERRED') AND "
	    "q.created_at <= now() - make_interval(secs => $1::float8) AND "
	    "(q.assigned_to IS NULL OR lm.sender_type = 'DONOR')), "
	    "due AS (SELECT id, wait_start, reason FROM c WHERE wait_start <= "
	    "now() - make_interval(secs => $1::float8) AND reminded_for IS "
	    "DISTINCT FROM wait_start ORDER BY wait_start LIMIT 500) "
	    "UPDATE concierge_queries q SET reminded_for = due.wait_start, "
	    "reminder_count = q.reminder_count + 1, last_reminder_at = now() "
	    "FROM due WHERE q.id = due.id AND q.reminded_for IS DISTINCT FROM "
	    "due.wait_start AND q.status IN ('IN_PROGRESS', 'TRANSFERRED') "
	    "RETURNING " R_COLS ", due.reason, " TS("due.wait_start")
	    " AS waiting_since", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		api->job_retry(job, "database unavailable", 0);
		return;
	}
	n = api->db_rows(r);
	for (i = 0; i < n; i++) {
		json_t	*row = api->db_row_json(r, i);

		publish_reminder(p, row);
		json_decref(row);
	}
	api->db_free(r);
	api->job_done(job, json_pack("{s:i}", "reminded", n));
}

/* ---- statistics ---- */

/* YYYY-MM-DD, optionally followed by THH:MM[:SS[.frac]] and Z or +hh:mm:
 * the shape only; PostgreSQL checks the calendar. */
static int
timestamp_shape(const char *s)
{
	static const char	date[] = "dddd-dd-dd", time_[] = "Tdd:dd";
	size_t			i;

	for (i = 0; date[i] != '\0'; i++)
		if (date[i] == 'd' ? (s[i] < '0' || s[i] > '9') :
		    s[i] != date[i])
			return (0);
	s += i;
	if (*s == '\0')
		return (1);
	for (i = 0; time_[i] != '\0'; i++)
		if (time_[i] == 'd' ? (s[i] < '0' || s[i] > '9') :
		    (s[i] != time_[i] && !(i == 0 && s[i] == ' ')))
			return (0);
	s += i;
	if (s[0] == ':' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' &&
	    s[2] <= '9') {
		s += 3;
		if (*s == '.') {
			for (s++, i = 0; *s >= '0' && *s <= '9'; s++, i++)
				;
			if (i == 0 || i > 9)
				return (0);
		}
	}
	if (strcmp(s, "Z") == 0 || *s == '\0')
		return (1);
	return ((s[0] == '+' || s[0] == '-') && s[1] >= '0' && s[1] <= '9' &&
	    s[2] >= '0' && s[2] <= '9' && s[3] == ':' && s[4] >= '0' &&
	    s[4] <= '9' && s[5] >= '0' && s[5] <= '9' && s[6] == '\0');
}

static int
stats_param(struct sb_req *req, const char *name, const char **out)
{
	*out = api->req_query(req, name);
	if (*out != NULL && (strlen(*out) > 40 || !timestamp_shape(*out))) {
		api->respond_error(req, 400, "VALIDATION_ERROR", "invalid "
		    "timestamp", sb_field_error(name, "INVALID", "a date "
		    "(YYYY-MM-DD) or an RFC 3339 timestamp"));
		return (-1);
	}
	return (0);
}

/* One row, one column of JSON text (a parameterless statement), parsed;
 * NULL when the database failed. */
static json_t *
query_json(struct sb_plugin *p, const char *sql)
{
	struct sb_db_res	*r;
	json_t			*out = NULL;

	r = api->db_query(p, sql, 0, NULL);
	if (api->db_ok(r) && api->db_rows(r) == 1 && !api->db_isnull(r, 0, 0))
		out = json_loads(api->db_value(r, 0, 0), 0, NULL);
	api->db_free(r);
	return (out);
}

/*
 * The colleagues a query can go to: active users whose role holds
 * queries.handle (or SUPER_ADMIN), the same test transfer applies.  An
 * agent holds no users.manage, so this is the directory the console's
 * transfer dialog and thread names use; it says no more than a name.
 */
static void
c_agents(struct sb_req *req)
{
	json_t	*out;

	out = query_json(api->req_plugin(req), "SELECT coalesce(json_agg("
	    "json_build_object('id', u.id, 'username', u.username, 'name', "
	    "u.name) ORDER BY u.name, u.id), '[]')::text FROM users u JOIN "
	    "roles r ON r.id = u.role_id WHERE u.is_active AND (r.name = "
	    "'SUPER_ADMIN' OR 'queries.handle' = ANY (r.permissions))");
	if (out == NULL) {
		err_db(req);
		return;
	}
	api->respond_json(req, 200, json_pack("{s:o, s:n}", "data", out,
	    "next_cursor"));
}

/* Median and p90 of the seconds in column v over rows passing cond. */
#define PCT(v, cond)	"json_build_object('count', count(" v ") FILTER " \
	"(WHERE " cond "), 'median_s', round((percentile_cont(0.5) WITHIN " \
	"GROUP (ORDER BY " v ") FILTER (WHERE " cond "))::numeric, 3), " \
	"'p90_s', round((percentile_cont(0.9) WITHIN GROUP (ORDER BY " v \
	") FILTER (WHERE " cond "))::numeric, 3))"

/*
 * Counts and timings over the queries created in [from, to): first
 * response is creation to the first staff chat message, resolution is
 * creation to resolve.  Per agent: queries assigned now, the first
 * responses they gave and the queries they resolved; per UTC day of
 * creation; and the messages written in the window per UTC day and
 * sender type.  One statement, one snapshot.
 */
static void
c_stats(struct sb_req *req)
{
	struct sb_plugin	*p = api->req_plugin(req);
	struct sb_db_res	*r;
	const char		*params[2], *st;
	json_t			*out;
	int			 bad;

	if (stats_param(req, "from", &params[0]) == -1 ||
	    stats_param(req, "to", &params[1]) == -1)
		return;
	r = api->db_query(p, "WITH b AS (SELECT coalesce($2::timestamptz, "
	    "now()) AS t), w0 AS (SELECT coalesce($1::timestamptz, b.t - "
	    "interval '30 days') AS f, b.t FROM b), w AS (SELECT q.*, "
	    "extract(epoch FROM q.first_response_at - q.created_at)::float8 "
	    "AS fr, extract(epoch FROM q.resolved_at - q.created_at)::float8 "
	    "AS rs FROM concierge_queries q, w0 WHERE q.created_at >= w0.f "
	    "AND q.created_at < w0.t), "
	    "a AS (SELECT assigned_to AS uid, 'A' AS k, NULL::float8 AS v "
	    "FROM w WHERE assigned_to IS NOT NULL AND status IN "
	    "('IN_PROGRESS', 'TRANSFERRED') UNION ALL SELECT "
	    "first_response_by, 'F', fr FROM w WHERE first_response_by IS NOT "
	    "NULL UNION ALL SELECT resolved_by, 'R', rs FROM w WHERE "
	    "resolved_by IS NOT NULL AND rs IS NOT NULL), "
	    "pa AS (SELECT a.uid AS user_id, u.username, u.name, count(*) "
	    "FILTER (WHERE a.k = 'A') AS open_assigned, count(*) FILTER "
	    "(WHERE a.k = 'R') AS resolved, " PCT("a.v", "a.k = 'F'")
	    " AS first_response, " PCT("a.v", "a.k = 'R'") " AS resolution "
	    "FROM a LEFT JOIN users u ON u.id = a.uid GROUP BY a.uid, "
	    "u.username, u.name), "
	    "pd AS (SELECT to_char(created_at AT TIME ZONE 'UTC', "
	    "'YYYY-MM-DD') AS day, count(*) AS created, count(*) FILTER "
	    "(WHERE status IN ('IN_PROGRESS', 'TRANSFERRED')) AS open, "
	    "count(*) FILTER (WHERE status = 'RESOLVED') AS resolved, "
	    "count(*) FILTER (WHERE status = 'CLOSED') AS closed, "
	    PCT("fr", "fr IS NOT NULL") " AS first_response, "
	    PCT("rs", "rs IS NOT NULL") " AS resolution FROM w GROUP BY 1), "
	    "pm AS (SELECT to_char(m.created_at AT TIME ZONE 'UTC', "
	    "'YYYY-MM-DD') AS day, count(*) AS total, count(*) FILTER (WHERE "
	    "m.sender_type = 'DONOR') AS donor, count(*) FILTER (WHERE "
	    "m.sender_type = 'STAFF') AS staff, count(*) FILTER (WHERE "
	    "m.sender_type = 'SYSTEM') AS system FROM concierge_messages m, "
	    "w0 WHERE m.created_at >= w0.f AND m.created_at < w0.t GROUP BY 1) "
	    "SELECT json_build_object("
	    "'from', (SELECT " TS("f") " FROM w0), "
	    "'to', (SELECT " TS("t") " FROM w0), "
	    "'counts', (SELECT json_build_object('total', count(*), 'open', "
	    "count(*) FILTER (WHERE status IN ('IN_PROGRESS', "
	    "'TRANSFERRED')), 'unassigned', count(*) FILTER (WHERE status = "
	    "'IN_PROGRESS' AND assigned_to IS NULL), 'in_progress', count(*) "
	    "FILTER (WHERE status = 'IN_PROGRESS'), 'transferred', count(*) "
	    "FILTER (WHERE status = 'TRANSFERRED'), 'resolved', count(*) "
	    "FILTER (WHERE status = 'RESOLVED'), 'closed', count(*) FILTER "
	    "(WHERE status = 'CLOSED')) FROM w), "
	    "'first_response', (SELECT " PCT("fr", "fr IS NOT NULL")
	    " FROM w), 'resolution', (SELECT " PCT("rs", "rs IS NOT NULL")
	    " FROM w), "
	    "'per_agent', coalesce((SELECT json_agg(pa ORDER BY pa.user_id) "
	    "FROM pa), '[]'), "
	    "'per_day', coalesce((SELECT json_agg(pd ORDER BY pd.day) FROM "
	    "pd), '[]'), "
	    "'messages_per_day', coalesce((SELECT json_agg(pm ORDER BY "
	    "pm.day) FROM pm), '[]'))::text, (SELECT f < t FROM w0) AS ordered", 2, params);
	if (!api->db_ok(r)) {
		/* Class 22 (data exception): a date PostgreSQL refuses. */
		st = api->db_sqlstate(r);
		bad = st != NULL && strncmp(st, "22", 2) == 0;
		api->db_free(r);
		if (bad)
			api->respond_error(req, 400, "VALIDATION_ERROR",
			    "invalid timestamp", sb_field_error(params[0] != NULL ?
			    "from" : "to", "INVALID", "not a valid date or "
			    "time"));
		else
			err_db(req);
		return;
	}
	if (strcmp(api->db_value(r, 0, 1), "t") != 0) {
		api->db_free(r);
		api->respond_error(req, 400, "VALIDATION_ERROR", "from must be "
		    "before to", sb_field_error("from", "OUT_OF_RANGE",
		    "must be before to"));
		return;
	}
	out = json_loads(api->db_value(r, 0, 0), 0, NULL);
	api->db_free(r);
	if (out == NULL) {
		err_db(req);
		return;
	}
	api->respond_json(req, 200, out);
}

/* ---- rooms ---- */

static int
room_auth(struct sb_plugin *p, const struct sb_principal *who,
    const char *room)
{
	const char	*id;
	char		*end;
	json_t		*q;
	int		 dberr, ok;

	if (strncmp(room, "query:", 6) != 0)
		return (0);
	id = room + 6;
	if (*id == '\0' || strlen(id) > 18 || strtoll(id, &end, 10) <= 0 ||
	    *end != '\0')
		return (0);
	if (who->kind == SB_ACTOR_USER)
		return (1);
	if (who->kind != SB_ACTOR_DONOR)
		return (0);
	q = query_load(p, id, 0, &dberr);
	ok = q != NULL && may_see(who, q);
	json_decref(q);
	return (ok);
}

/* ---- lifecycle ---- */

static int
concierge_setup(struct sb_plugin *p, const struct sb_host_api *host)
{
	api = host;
	self = p;
	if (api->config_declare(p, config_keys) != SB_OK)
		return (SB_ERROR);
	reminder_kind.interval_s = (unsigned int)api->config_int(p,
	    "reminder_interval", 60);
	if (api->config_int(p, "reminder_after", 900) < 1 ||
	    reminder_kind.interval_s < 1 || reminder_kind.interval_s > 86400) {
		api->log(p, SB_LOG_ERROR, "reminder_after must be >= 1 and "
		    "reminder_interval 1..86400 seconds");
		return (SB_ERROR);
	}
	routes[0].rate.requests = (unsigned int)api->config_int(p,
	    "create_rate_ip", 10);
	routes[0].rate.seconds = create_rate_window = (unsigned int)
	    api->config_int(p, "create_rate_window", 60);
	create_rate_donor = (unsigned int)api->config_int(p,
	    "create_rate_donor", 5);
	if (create_rate_window < 1 || create_rate_window > 86400) {
		api->log(p, SB_LOG_ERROR, "create_rate_window must be "
		    "1..86400 seconds");
		return (SB_ERROR);
	}
	if (api->job_kind_add(p, &reminder_kind) != SB_OK ||
	    api->service_export(p, SB_CONCIERGE_THREAD, &thread_service.hdr)
	    != SB_OK ||
	    api->permission_add(p, "queries.handle", "Accept, answer, "
	    "transfer and resolve donor queries") != SB_OK ||
	    api->permission_add(p, "queries.manage", "Manage every donor "
	    "query: resolve any, delete") != SB_OK ||
	    api->routes_add(p, routes) != SB_OK ||
	    api->migrations_add(p, "migrations") != SB_OK ||
	    api->room_add(p, "query", room_auth) != SB_OK ||
	    api->event_declare(p, "concierge.query.created",
	    "A donor opened a query (room agents)") != SB_OK ||
	    api->event_declare(p, "concierge.query.accepted",
	    "A query was accepted (query:{id}, agents)") != SB_OK ||
	    api->event_declare(p, "concierge.query.transferred",
	    "A query was transferred (query:{id}, agents, "
	    "user:{to})") != SB_OK ||
	    api->event_declare(p, "concierge.query.resolved",
	    "A query was resolved (query:{id}, agents)") != SB_OK ||
	    api->event_declare(p, "concierge.query.closed",
	    "The donor closed a query (query:{id}, agents)") != SB_OK ||
	    api->event_declare(p, "concierge.query.deleted",
	    "A query was deleted (query:{id}, agents)") != SB_OK ||
	    api->event_declare(p, "concierge.message.created",
	    "A message was posted (query:{id})") != SB_OK ||
	    api->event_declare(p, "concierge.reminder", "A query is waiting "
	    "(user:{assignee}, or agents when unassigned)") != SB_OK)
		return (SB_ERROR);
	return (SB_OK);
}

/*
 * GET /api/v1/stats: the thread messages of the last 14 UTC days (the
 * host adds every plugin's up) and the queries open now.
 */
static int
concierge_stats(struct sb_plugin *p, json_t *out)
{
	json_t	*o;

	o = query_json(p, "SELECT json_build_object('messages_per_day', "
	    "coalesce((SELECT json_agg(json_build_object('day', d.day, "
	    "'count', d.n) ORDER BY d.day) FROM (SELECT to_char(created_at "
	    "AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, count(*) AS n FROM "
	    "concierge_messages WHERE created_at >= date_trunc('day', now() "
	    "AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '13 days' "
	    "GROUP BY 1) d), '[]'), 'open_queries', (SELECT count(*) FROM "
	    "concierge_queries WHERE status IN ('IN_PROGRESS', "
	    "'TRANSFERRED')))::text");
	if (o == NULL)
		return (SB_ERROR);
	json_object_update(out, o);
	json_decref(o);
	return (SB_OK);
}

/* ---- privacy (ABI 1.3) ---- */

/*
 * What concierge holds on a donor: their queries and every message of
 * those threads (staff replies included: they are part of the donor's
 * conversation).  The donor's push token is never shown, only whether
 * one is on file.  Customers and phone numbers: concierge keeps neither.
 */
static json_t *
concierge_privacy_export(struct sb_plugin *p, const struct sb_subject *s)
{
	const char	*params[1];

	if (s->kind != SB_SUBJECT_DONOR)
		return (json_object());
	params[0] = s->value;
	return (sb_db_json(api, p, "SELECT json_build_object("
	    "'queries', coalesce((SELECT json_agg(q ORDER BY q.id) FROM "
	    "(SELECT " Q_COLS ", donor_fcm_token IS NOT NULL AS "
	    "push_token_on_file FROM concierge_queries WHERE donor_id = $1) "
	    "q), '[]'), "
	    "'messages', coalesce((SELECT json_agg(m ORDER BY m.id) FROM "
	    "(SELECT " M_COLS " FROM concierge_messages WHERE query_id IN "
	    "(SELECT id FROM concierge_queries WHERE donor_id = $1)) m), "
	    "'[]'))::text", 1, params));
}

/*
 * The messages first, so that they are counted here rather than gone
 * by ON DELETE CASCADE; then the queries.  Inside the host's
 * transaction: calls' rows on these queries were erased before this
 * runs (calls depends on concierge, dependents go first).
 */
static long long
concierge_privacy_erase(struct sb_plugin *p, const struct sb_subject *s)
{
	long long	m, q;

	if (s->kind != SB_SUBJECT_DONOR)
		return (0);
	if ((m = sb_db_count(api, p, "DELETE FROM concierge_messages "
	    "WHERE query_id IN (SELECT id FROM concierge_queries WHERE "
	    "donor_id = $1) RETURNING 1", 1, &s->value)) == -1 ||
	    (q = sb_db_count(api, p, "DELETE FROM concierge_queries "
	    "WHERE donor_id = $1 RETURNING 1", 1, &s->value)) == -1)
		return (-1);
	return (m + q);
}

SB_PLUGIN(
	.id = "io.switchboard.concierge",
	.name = "concierge",
	.version = "1.0.0",
	.summary = "Donor queries and their messages",
	.setup = concierge_setup,
	.stats = concierge_stats,
	.privacy_export = concierge_privacy_export,
	.privacy_erase = concierge_privacy_erase,
)
