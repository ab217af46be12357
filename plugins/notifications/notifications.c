/*
 * The notifications plugin: who hears of what, on which channel (API.md,
 * "Notifications").  One table, rules[], says which event (by name,
 * publisher, room and data conditions) reaches whom (agents, the holders
 * of a permission, a named user, a query's assignee, the admins, or a
 * donor's device) on which channels (the staff inbox, FCM push, email).
 *
 * Durability.  The event subscriber does one thing: in the worker that
 * published the event, it enqueues one notifications.fanout job keyed by
 * the event id.  That job resolves the recipients and their preferences
 * in the database, inserts the inbox rows (unique per event and user),
 * enqueues one notifications.push / notifications.email job per
 * recipient and channel (keyed by channel, event and recipient) and marks
 * itself done, all in one transaction; then it publishes each new inbox
 * row to user:{id} as notifications.created.  A fan-out or a send that
 * runs twice therefore adds nothing and sends nothing twice, and a worker
 * that dies loses nothing: the job runs again elsewhere.
 *
 * The push job lives in fcm.c, the email job in mail.c.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <switchboard/plugin.h>
#include <switchboard/helpers.h>

#include "notifications.h"

static const struct sb_host_api	*api;

const struct sb_service		*notifications_thread;
#define THREAD	NOTIFICATIONS_THREAD

#define TS(c)	SB_SQL_TS(c)
/* An inbox entry as the API shows it. */
#define I_COLS	"id, event, title, body, data, " \
		"read_at IS NOT NULL AS read, " TS("read_at") " AS read_at, " \
		TS("created_at") " AS created_at"

#define INBOX	NOTIFICATIONS_INBOX
#define PUSH	NOTIFICATIONS_PUSH
#define EMAIL	NOTIFICATIONS_EMAIL
#define CH_ALL	(INBOX | PUSH | EMAIL)
#define CH_STAFF_DEFAULT (INBOX | PUSH)

#define TITLE_MAX	200	/* characters of an inbox/push title */
#define BODY_MAX	1000	/* ... and of its body */
#define SNIPPET_MAX	140	/* a message's text in a notification */

/* Who a rule reaches; `arg` names the data key the target reads (for
 * T_HOLDERS, the permission). */
enum target {
	T_AGENTS,		/* every agent */
	T_USER,			/* the user data.<arg> */
	T_USER_OR_AGENTS,	/* the user data.<arg>; all agents if null */
	T_HOLDERS,		/* every holder of the permission <arg> */
	T_ADMINS,		/* active SUPER_ADMIN / ADMIN users with an
				 * email address */
	T_DONOR			/* query data.<arg>'s donor's device */
};

/* A condition on the event's data: data.<field> is a string that is
 * `value` (M_IS), or that does not start with it (M_NOT_PREFIX).  A
 * field that is missing or not a string meets neither. */
enum match_op {
	M_IS,
	M_NOT_PREFIX
};

struct match {
	const char	*field;		/* NULL: an unused slot */
	enum match_op	 op;
	const char	*value;
};
#define IS(f, v)		{ (f), M_IS, (v) }
#define NOT_PREFIX(f, v)	{ (f), M_NOT_PREFIX, (v) }
#define RULE_MATCHES	3

struct rule {
	const char	*event;
	/* The preference key and the mail template's name: what the
	 * recipient hears of, when one event name carries several kinds
	 * (a status event: failed, delivered, ...).  NULL: the event. */
	const char	*type;
	const char	*source;	/* the publisher's id */
	/* Act on the copy published to rooms with this prefix: the
	 * publisher sends some events to several rooms, each a separate
	 * event.  NULL: any. */
	const char	*room;
	struct match	 when[RULE_MATCHES];	/* all must hold */
	enum target	 target;
	const char	*arg;
	const char	*query_key;	/* data key holding the query id */
	/* The data key of the thing the rule tells about (e.g. the SMS's
	 * id): one notification per type and thing however many events
	 * report it (a publisher that reloads its row for each status
	 * event may send "failed" twice).  NULL: one per event. */
	const char	*once;
	unsigned int	 channels;	/* the channels it may use */
	unsigned int	 defaults;	/* on when nothing is stored */
	const char	*title;		/* inbox and push, {{vars}} */
	const char	*body;
};

#define CONCIERGE	"io.switchboard.concierge"
#define CALLS		"io.switchboard.calls"
#define TELEPHONY	"io.switchboard.telephony"
#define WHATSAPP	"io.switchboard.whatsapp"
#define HOST		"io.switchboard.host"	/* the host's events */

/*
 * THE rules.  A staff rule's type (its event name unless it names one)
 * is its preference key: GET /notifications/preferences lists each
 * once, with the channels of its rules; donor rules have no
 * preferences.  Email templates are templates/<type>.txt and .html for
 * each type with an email rule.
 */
static const struct rule rules[] = {
	{ .event = "concierge.query.created", .source = CONCIERGE,
	  .room = "agents", .target = T_AGENTS, .query_key = "id",
	  .channels = CH_ALL, .defaults = CH_STAFF_DEFAULT,
	  .title = "New donor query",
	  .body = "{{donor}} opened query #{{query_id}}; it waits to be "
	  "accepted" },
	{ .event = "concierge.query.transferred", .source = CONCIERGE,
	  .room = "query:", .target = T_USER,
	  .arg = "transferred_to_user_id", .query_key = "id",
	  .channels = CH_ALL, .defaults = CH_STAFF_DEFAULT,
	  .title = "Query transferred to you",
	  .body = "Query #{{query_id}} from {{donor}} is now yours" },
	{ .event = "concierge.reminder", .source = CONCIERGE,
	  .target = T_USER_OR_AGENTS, .arg = "assigned_to",
	  .query_key = "query_id", .channels = CH_ALL,
	  .defaults = CH_STAFF_DEFAULT, .title = "Query waiting",
	  .body = "Query #{{query_id}} from {{donor}} is waiting "
	  "({{reason}})" },
	/* A query's assignee is the one the event names (data.assigned_to,
	 * who had it when the message or the request was made), never the
	 * one the fan-out finds later: a query accepted between the event
	 * and its fan-out must not make the accepter hear of a message sent
	 * while nobody had it, and a transfer must not move it. */
	{ .event = "concierge.message.created", .source = CONCIERGE,
	  .room = "query:", .when = { IS("sender_type", "DONOR") },
	  .target = T_USER, .arg = "assigned_to", .query_key = "query_id",
	  .channels = CH_ALL, .defaults = CH_STAFF_DEFAULT,
	  .title = "Message from {{donor}}", .body = "{{snippet}}" },
	{ .event = "calls.request.created", .source = CALLS,
	  .room = "query:", .target = T_USER_OR_AGENTS, .arg = "assigned_to",
	  .query_key = "query_id", .channels = CH_ALL,
	  .defaults = CH_STAFF_DEFAULT, .title = "Call requested",
	  .body = "{{donor}} asks for a {{mode}} call on query "
	  "#{{query_id}}" },
	/*
	 * Telephony: the events carry the message or call without its
	 * numbers and text, and so do the notifications (error_message is
	 * dropped too: providers quote the number in it, see on_event;
	 * error_code, provider and hangup_cause stay in the entry's data,
	 * not in the text, as they may be null).
	 * Status only moves forward, and failed is final, but each status
	 * event carries the row as it is when published: `once`.
	 */
	{ .event = "telephony.sms.status", .type = "telephony.sms.failed",
	  .source = TELEPHONY, .room = "telephony",
	  .when = { IS("direction", "outbound"), IS("status", "failed") },
	  .target = T_USER, .arg = "sent_by", .once = "id",
	  .channels = CH_ALL, .defaults = CH_STAFF_DEFAULT,
	  .title = "SMS #{{id}} failed",
	  .body = "Your SMS #{{id}} to customer #{{customer_id}} was not "
	  "sent" },
	{ .event = "telephony.call.status", .type = "telephony.call.failed",
	  .source = TELEPHONY, .room = "telephony",
	  .when = { IS("direction", "outbound"), IS("status", "failed") },
	  .target = T_USER, .arg = "initiated_by", .once = "id",
	  .channels = CH_ALL, .defaults = CH_STAFF_DEFAULT,
	  .title = "Call #{{id}} failed",
	  .body = "Your call #{{id}} to customer #{{customer_id}} "
	  "failed" },
	/* Whoever may read it: the telephony room's audience for SMS. */
	{ .event = "telephony.sms.created", .type = "telephony.sms.received",
	  .source = TELEPHONY, .room = "telephony",
	  .when = { IS("direction", "inbound") },
	  .target = T_HOLDERS, .arg = "sms.read", .once = "id",
	  .channels = CH_ALL, .defaults = CH_STAFF_DEFAULT,
	  .title = "New SMS",
	  .body = "SMS #{{id}} from customer #{{customer_id}}" },
	/*
	 * WhatsApp: the events carry ids, status and error, never the
	 * number or the text.  A customer's message goes to whoever the
	 * conversation is assigned to, or to every agent while nobody has
	 * it; a send that failed to its sender (the error's code and title
	 * are Meta's, not personal).
	 */
	{ .event = "whatsapp.message.created",
	  .type = "whatsapp.message.received", .source = WHATSAPP,
	  .room = "whatsapp:", .when = { IS("direction", "inbound") },
	  .target = T_USER_OR_AGENTS, .arg = "assigned_to", .once = "id",
	  .channels = CH_ALL, .defaults = CH_STAFF_DEFAULT,
	  .title = "New WhatsApp message",
	  .body = "WhatsApp message #{{id}} from customer #{{customer_id}} "
	  "in conversation #{{conversation_id}}" },
	{ .event = "whatsapp.message.status",
	  .type = "whatsapp.message.failed", .source = WHATSAPP,
	  .room = "whatsapp:", .when = { IS("direction", "outbound"),
	  IS("status", "failed") }, .target = T_USER, .arg = "sent_by",
	  .once = "id", .channels = CH_ALL, .defaults = CH_STAFF_DEFAULT,
	  .title = "WhatsApp message #{{id}} failed",
	  .body = "Your WhatsApp message #{{id}} to customer #{{customer_id}} "
	  "was not delivered" },
	/* An agent's reply, to the donor's app. */
	{ .event = "concierge.message.created", .source = CONCIERGE,
	  .room = "query:", .when = { IS("sender_type", "STAFF"),
	  IS("message_type", "CHAT") }, .target = T_DONOR,
	  .arg = "query_id", .query_key = "query_id", .channels = PUSH,
	  .defaults = PUSH, .title = "New reply to your query",
	  .body = "{{snippet}}" },
	{ .event = "calls.request.accepted", .source = CALLS,
	  .room = "query:", .target = T_DONOR, .arg = "query_id",
	  .query_key = "query_id", .channels = PUSH, .defaults = PUSH,
	  .title = "Your call request was accepted",
	  .body = "Open the app to join the call" },
	/* The dead letter, to the admins.  Never about this plugin's own
	 * jobs: a dead mail job would mail about itself. */
	{ .event = "jobs.dead", .source = HOST,
	  .when = { NOT_PREFIX("kind", "notifications.") },
	  .target = T_ADMINS, .channels = EMAIL, .defaults = EMAIL,
	  .title = "Job {{kind}} #{{id}} failed",
	  .body = "Job {{kind}} #{{id}} is dead after {{attempts}} "
	  "attempts" },
};
#define NRULES	(sizeof(rules) / sizeof(rules[0]))

#define RULE_TYPE(r)	((r)->type != NULL ? (r)->type : (r)->event)

/* The preference keys (staff rules' types), built from rules[] in
 * setup(). */
static const char	*pref_events[NRULES + 1];
static unsigned int	 pref_channels[NRULES];
static unsigned int	 pref_defaults[NRULES];
static size_t		 npref;

static const char *const channel_names[] = { "inbox", "push", "email" };
static const unsigned int channel_bits[] = { INBOX, PUSH, EMAIL };
#define NCHANNELS	3

/* Every agent: active, and a role holding queries.handle (or all). */
#define AGENTS_SQL	"SELECT u.id FROM users u JOIN roles r ON r.id = " \
	"u.role_id WHERE u.is_active AND (r.name = 'SUPER_ADMIN' OR " \
	"'queries.handle' = ANY (r.permissions))"

/*
 * The recipients of a staff rule with their effective channels, one SQL
 * text per target.  $1 the preference key, $2 the target's argument (a
 * user id, a permission or NULL), $3..$5 the rule's defaults for inbox,
 * push, email.
 */
#define RCPT_SQL(target)						\
	"WITH arg AS (SELECT $2::text AS v), rcpt AS (" target ") "	\
	"SELECT u.id, u.email IS NOT NULL, u.fcm_token IS NOT NULL, "	\
	"coalesce(bool_or(p.enabled) FILTER (WHERE p.channel = 'inbox'), " \
	"$3::bool), coalesce(bool_or(p.enabled) FILTER (WHERE p.channel " \
	"= 'push'), $4::bool), coalesce(bool_or(p.enabled) FILTER (WHERE " \
	"p.channel = 'email'), $5::bool) FROM users u LEFT JOIN "	\
	"notifications_preferences p ON p.user_id = u.id AND p.event = $1 " \
	"WHERE u.is_active AND u.id IN (SELECT id FROM rcpt) GROUP BY u.id " \
	"ORDER BY u.id"

static const char *const rcpt_sql[] = {
	[T_AGENTS] = RCPT_SQL(AGENTS_SQL),
	[T_USER] = RCPT_SQL("SELECT arg.v::bigint AS id FROM arg"),
	[T_USER_OR_AGENTS] = RCPT_SQL("SELECT arg.v::bigint AS id FROM arg "
	    "WHERE arg.v IS NOT NULL UNION SELECT a.id FROM (" AGENTS_SQL
	    ") a, arg WHERE arg.v IS NULL"),
	/* As the host decides: SUPER_ADMIN holds every permission. */
	[T_HOLDERS] = RCPT_SQL("SELECT u.id FROM users u JOIN roles r ON "
	    "r.id = u.role_id, arg WHERE r.name = 'SUPER_ADMIN' OR arg.v = "
	    "ANY (r.permissions)"),
	[T_ADMINS] = RCPT_SQL("SELECT u.id FROM users u JOIN roles r ON "
	    "r.id = u.role_id WHERE r.name IN ('SUPER_ADMIN', 'ADMIN') AND "
	    "u.email IS NOT NULL"),
};

static void	on_event(struct sb_plugin *, const struct sb_event *,
		    void *);
static void	fanout_run(struct sb_job *);
static void	n_list(struct sb_req *);
static void	n_read(struct sb_req *);
static void	n_read_all(struct sb_req *);
static void	prefs_get(struct sb_req *);
static void	prefs_put(struct sb_req *);

static const struct sb_config_key config_keys[] = {
	{ .key = "fcm_service_account", .description = "Path of the Google "
	  "service-account JSON key file (read at start, before the "
	  "sandbox); unset: no push notifications" },
	{ .key = "fcm_url", .default_value = "https://fcm.googleapis.com/v1",
	  .description = "FCM HTTP v1 base URL" },
	{ .key = "fcm_timeout_ms", .default_value = "10000",
	  .description = "Timeout of each call to Google (token, send)" },
	{ .key = "push_max_attempts", .default_value = "10",
	  .description = "Attempts of a push before it is dead" },
	{ .key = "smtp_url", .description = "smtp://host:port or "
	  "smtps://host:port; unset: no email notifications" },
	{ .key = "smtp_starttls", .default_value = "yes",
	  .description = "Require STARTTLS on smtp:// (yes/no)" },
	{ .key = "smtp_username", .description = "SMTP AUTH user (unset: no "
	  "AUTH)" },
	{ .key = "smtp_password", .flags = SB_CONF_SECRET,
	  .description = "SMTP AUTH password" },
	{ .key = "smtp_timeout_ms", .default_value = "20000",
	  .description = "Timeout of one SMTP transfer" },
	{ .key = "mail_from", .default_value = "switchboard@localhost",
	  .description = "Sender address (envelope and From)" },
	{ .key = "console_url", .default_value = "http://127.0.0.1:8080",
	  .description = "Base URL of the console, for links in mails" },
	{ .key = "templates_dir",
	  .default_value = "plugins/notifications/templates",
	  .description = "Directory of the mail templates, absolute or from "
	  "the working directory; read at start" },
	{ .key = "email_max_attempts", .default_value = "8",
	  .description = "Attempts of a mail before it is dead" },
	SB_CONFIG_END
};

static struct sb_job_kind fanout_kind = {
	.name = "notifications.fanout", .run = fanout_run,
	.max_attempts = 10, .timeout_s = 60, .backoff_s = 2
};

static const struct sb_field prefs_body[] = {
	{ .name = "preferences", .type = SB_T_OBJECT, .flags = SB_F_REQUIRED,
	  .description = "{\"<event>\": {\"push\": bool, \"email\": bool, "
	  "\"inbox\": bool}}, partial" },
	SB_FIELD_END
};

#define NB	"/api/v1/notifications"
static const struct sb_route routes[] = {
	{ .method = "GET", .path = NB, .flags = SB_ROUTE_STAFF,
	  .handler = n_list, .summary = "The caller's inbox, newest first "
	  "(?unread=true|false, limit, cursor)" },
	{ .method = "POST", .path = NB "/{id}/read", .flags = SB_ROUTE_STAFF,
	  .handler = n_read, .summary = "Mark one of the caller's "
	  "notifications read" },
	{ .method = "POST", .path = NB "/read-all", .flags = SB_ROUTE_STAFF,
	  .handler = n_read_all, .summary = "Mark all the caller's "
	  "notifications read" },
	{ .method = "GET", .path = NB "/preferences", .flags = SB_ROUTE_STAFF,
	  .handler = prefs_get, .summary = "The caller's channels per event "
	  "type" },
	{ .method = "PUT", .path = NB "/preferences", .flags = SB_ROUTE_STAFF,
	  .handler = prefs_put, .summary = "Change the caller's channels "
	  "per event type (partial)", .body = prefs_body,
	  .body_max = 16384 },
	SB_ROUTE_END
};

/* ---- helpers ---- */

/* data.<k> as decimal text into buf when it is a positive integer. */
static const char *
jid(json_t *o, const char *k, char *buf, size_t len)
{
	json_t	*v;

	if (k == NULL || !json_is_integer(v = json_object_get(o, k)) ||
	    json_integer_value(v) <= 0)
		return (NULL);
	snprintf(buf, len, "%lld", (long long)json_integer_value(v));
	return (buf);
}

/* Does data meet condition m? */
static int
match_holds(const struct match *m, json_t *data)
{
	const char	*v = sb_jstr(data, m->field);

	if (v == NULL)
		return (0);
	switch (m->op) {
	case M_IS:
		return (strcmp(v, m->value) == 0);
	case M_NOT_PREFIX:
		return (strncmp(v, m->value, strlen(m->value)) != 0);
	}
	return (0);
}

/* Does rule r apply to event `name` with data `data`?  source and room
 * are checked only when given (the subscriber has them, the fan-out
 * job matches on the name and data alone). */
static int
rule_applies(const struct rule *r, const char *name, const char *source,
    const char *room, json_t *data)
{
	size_t	i;

	if (strcmp(r->event, name) != 0)
		return (0);
	if (source != NULL && strcmp(r->source, source) != 0)
		return (0);
	if (source != NULL && r->room != NULL && (room == NULL ||
	    strncmp(room, r->room, strlen(r->room)) != 0))
		return (0);
	for (i = 0; i < RULE_MATCHES && r->when[i].field != NULL; i++)
		if (!match_holds(&r->when[i], data))
			return (0);
	return (1);
}

static int
pref_index(const char *event)
{
	size_t	i;

	for (i = 0; i < npref; i++)
		if (strcmp(pref_events[i], event) == 0)
			return ((int)i);
	return (-1);
}

/* The preference keys: each staff rule's type once, in table order,
 * with the union of its rules' channels and defaults. */
static void
prefs_build(void)
{
	size_t	i;
	int	k;

	npref = 0;
	for (i = 0; i < NRULES; i++) {
		if (rules[i].target == T_DONOR)
			continue;
		if ((k = pref_index(RULE_TYPE(&rules[i]))) == -1) {
			k = (int)npref++;
			pref_events[k] = RULE_TYPE(&rules[i]);
			pref_channels[k] = 0;
			pref_defaults[k] = 0;
		}
		pref_channels[k] |= rules[i].channels;
		pref_defaults[k] |= rules[i].defaults;
	}
	pref_events[npref] = NULL;
}

static json_t *
field_error(const char *field, const char *code, const char *msg)
{
	return (json_pack("{s:s,s:s,s:s}", "field", field, "code", code,
	    "message", msg));
}

static void
err_db(struct sb_req *req)
{
	api->respond_error(req, 503, "UNAVAILABLE", "database unavailable",
	    NULL);
}

static void
user_room(char *room, size_t len, long long uid)
{
	snprintf(room, len, "user:%lld", uid);
}

/* ---- the subscriber ---- */

/* Event fields the fan-out never sees, so no job payload, inbox entry,
 * push or mail holds them: a provider's error text quotes the phone
 * number (Twilio 21211: "The 'To' number +1... is not a valid phone
 * number."). */
static const char *const dropped_keys[] = { "error_message", NULL };

/*
 * Every worker gets every event; the one that published it enqueues the
 * fan-out, once (the key), and nothing else happens here: no recipient
 * lookup, no network.
 */
static void
on_event(struct sb_plugin *p, const struct sb_event *ev, void *arg)
{
	struct sb_job_opts	 opts;
	json_t			*payload, *data;
	char			 key[96];
	size_t			 i;

	(void)arg;
	if (!ev->local || ev->id == NULL || strlen(ev->id) > 64)
		return;
	for (i = 0; i < NRULES; i++)
		if (rule_applies(&rules[i], ev->name, ev->source != NULL ?
		    ev->source : "", ev->room, ev->data))
			break;
	if (i == NRULES)
		return;
	snprintf(key, sizeof(key), "fanout:%s", ev->id);
	memset(&opts, 0, sizeof(opts));
	opts.idempotency_key = key;
	data = json_copy(ev->data);
	for (i = 0; data != NULL && dropped_keys[i] != NULL; i++)
		json_object_del(data, dropped_keys[i]);
	payload = json_pack("{s:s, s:s, s:o}", "name", ev->name, "id", ev->id,
	    "data", data);
	if (payload == NULL ||
	    api->job_enqueue(p, fanout_kind.name, payload, &opts) == -1)
		api->log(p, SB_LOG_ERROR, "cannot enqueue the fan-out of %s "
		    "event %s: it is not notified", ev->name, ev->id);
	json_decref(payload);
}

/* ---- the fan-out ---- */

/* What the query adds to an event's variables, when the event lacks it. */
static const char *const query_vars[] = { "donor", "donor_id", "test",
    "stage", "device", "status", "assigned_to", NULL };

/*
 * The template variables of an event: its data's scalar fields as text,
 * event and event_id, query_id, what the query adds (query_vars[], from
 * concierge.thread's query_get) when the data lacks it, and snippet (the
 * start of data.content).  NULL on a database error.
 */
static json_t *
event_vars(struct sb_plugin *p, const char *name, const char *id,
    json_t *data, const char *query_key)
{
	const char		*k;
	json_t			*vars, *v, *q;
	char			 num[32], qid[32], *s;
	size_t			 i;
	int			 dberr;

	if ((vars = json_object()) == NULL)
		return (NULL);
	json_object_foreach(data, k, v) {
		/* A message's text only as its snippet (jobs keep payloads
		 * that jobs.read shows). */
		if (strcmp(k, "content") == 0)
			continue;
		if (json_is_string(v))
			json_object_set(vars, k, v);
		else if (json_is_integer(v)) {
			snprintf(num, sizeof(num), "%lld",
			    (long long)json_integer_value(v));
			json_object_set_new(vars, k, json_string(num));
		} else if (json_is_boolean(v))
			json_object_set_new(vars, k, json_string(
			    json_is_true(v) ? "true" : "false"));
	}
	json_object_set_new(vars, "event", json_string(name));
	json_object_set_new(vars, "event_id", json_string(id));
	if (sb_jstr(data, "content") != NULL &&
	    (s = notifications_snippet(sb_jstr(data, "content"),
	    SNIPPET_MAX)) != NULL) {
		json_object_set_new(vars, "snippet", json_string(s));
		free(s);
	}
	if (jid(data, query_key, qid, sizeof(qid)) == NULL)
		return (vars);
	json_object_set_new(vars, "query_id", json_string(qid));
	q = THREAD->query_get(p, strtoll(qid, NULL, 10), 0, &dberr);
	if (dberr) {
		json_decref(vars);
		return (NULL);
	}
	/* The event's own values win: they are what happened.  Null
	 * (unassigned, no stage) adds nothing. */
	for (i = 0; q != NULL && query_vars[i] != NULL; i++) {
		k = query_vars[i];
		if (json_object_get(vars, k) != NULL)
			continue;
		v = json_object_get(q, k);
		if (json_is_string(v))
			json_object_set(vars, k, v);
		else if (json_is_integer(v)) {
			snprintf(num, sizeof(num), "%lld",
			    (long long)json_integer_value(v));
			json_object_set_new(vars, k, json_string(num));
		}
	}
	json_decref(q);
	return (vars);
}

/* What an inbox entry carries in `data`: the event's scalar fields that
 * are set, but for message text, tokens and timestamps, plus query_id. */
static json_t *
inbox_data(json_t *data, json_t *vars)
{
	json_t		*out, *v;
	const char	*k;
	size_t		 n;

	out = json_object();
	json_object_foreach(data, k, v) {
		n = strlen(k);
		if (strcmp(k, "content") == 0 || strstr(k, "token") != NULL ||
		    (n > 3 && strcmp(k + n - 3, "_at") == 0))
			continue;
		if (json_is_string(v) || json_is_number(v) ||
		    json_is_boolean(v))
			json_object_set(out, k, v);
	}
	if (sb_jstr(vars, "query_id") != NULL)
		json_object_set_new(out, "query_id", json_integer(strtoll(
		    sb_jstr(vars, "query_id"), NULL, 10)));
	/* Whose query it is about, from the event or its query row: the
	 * privacy hooks find a donor's entries by it. */
	if (!json_is_string(json_object_get(out, "donor_id")) &&
	    sb_jstr(vars, "donor_id") != NULL)
		json_object_set(out, "donor_id", json_object_get(vars,
		    "donor_id"));
	return (out);
}

/* FCM's data map (string values only; never its reserved keys). */
static json_t *
push_data(const char *name, const char *id, json_t *vars, json_t *item)
{
	json_t	*out;
	char	 nid[32];

	out = json_pack("{s:s, s:s}", "event", name, "event_id", id);
	if (sb_jstr(vars, "query_id") != NULL)
		json_object_set(out, "query_id", json_object_get(vars,
		    "query_id"));
	if (sb_jstr(vars, "id") != NULL)
		json_object_set(out, "id", json_object_get(vars, "id"));
	if (item != NULL) {
		snprintf(nid, sizeof(nid), "%lld", (long long)
		    json_integer_value(json_object_get(item, "id")));
		json_object_set_new(out, "notification_id", json_string(nid));
	}
	return (out);
}

static int
enqueue(struct sb_plugin *p, const char *kind, const char *key,
    json_t *payload)
{
	struct sb_job_opts	opts;
	int64_t			id;

	memset(&opts, 0, sizeof(opts));
	opts.idempotency_key = key;
	id = api->job_enqueue(p, kind, payload, &opts);
	json_decref(payload);
	return (id == -1 ? -1 : 0);
}

struct fanout {
	struct sb_plugin	*p;
	const char		*name;
	const char		*event_id;	/* the bus event's id */
	/* What the inbox row, the send jobs' keys and the mail's
	 * Message-ID are keyed by: the event id, or for a rule with
	 * `once` <type>.<data.once> (in once_id). */
	const char		*id;
	char			 once_id[160];
	json_t			*data;
	json_t			*vars;
	char			*title;
	char			*body;
	json_t			*items;	/* new inbox rows */
	int			 ninbox, npush, nemail;
};

/* One staff recipient on its channels.  -1 on a database error. */
static int
deliver_user(struct fanout *f, const struct rule *r, const char *uid,
    unsigned int ch, int has_email, int has_device)
{
	struct sb_db_res	*res;
	const char		*params[6];
	json_t			*item = NULL, *data;
	char			*text, key[160];

	if (ch & INBOX) {
		data = inbox_data(f->data, f->vars);
		text = json_dumps(data, JSON_COMPACT);
		json_decref(data);
		if (text == NULL)
			return (-1);
		params[0] = uid;
		params[1] = f->name;
		params[2] = f->id;
		params[3] = f->title;
		params[4] = f->body;
		params[5] = text;
		res = api->db_query(f->p, "INSERT INTO notifications_inbox "
		    "(user_id, event, event_id, title, body, data) VALUES "
		    "($1::bigint, $2, $3, $4, $5, $6::jsonb) ON CONFLICT "
		    "(event_id, user_id) DO NOTHING RETURNING " I_COLS ", "
		    "user_id", 6, params);
		free(text);
		if (!api->db_ok(res)) {
			api->db_free(res);
			return (-1);
		}
		if (api->db_rows(res) == 1) {
			item = api->db_row_json(res, 0);
			json_array_append_new(f->items, item);
			f->ninbox++;
		}
		api->db_free(res);
	}
	if ((ch & PUSH) && has_device) {
		snprintf(key, sizeof(key), "push:%s:%s", f->id, uid);
		if (enqueue(f->p, "notifications.push", key, json_pack("{s:s, "
		    "s:s, s:s, s:s, s:o, s:I}", "event", f->name, "event_id",
		    f->id, "title", f->title, "body", f->body, "data",
		    push_data(f->name, f->id, f->vars, item), "user_id",
		    (json_int_t)strtoll(uid, NULL, 10))) == -1)
			return (-1);
		f->npush++;
	}
	if ((ch & EMAIL) && has_email) {
		snprintf(key, sizeof(key), "email:%s:%s", f->id, uid);
		if (enqueue(f->p, "notifications.email", key, json_pack("{s:s, "
		    "s:s, s:I, s:O}", "event", RULE_TYPE(r), "event_id", f->id,
		    "user_id", (json_int_t)strtoll(uid, NULL, 10), "vars",
		    f->vars)) == -1)
			return (-1);
		f->nemail++;
	}
	return (0);
}

/* The staff recipients of rule r with their preferences. */
static int
deliver_staff(struct fanout *f, const struct rule *r)
{
	struct sb_db_res	*res;
	const char		*params[5];
	char			 arg[32];
	unsigned int		 ch;
	int			 i, n, rc = 0;

	params[0] = RULE_TYPE(r);
	params[1] = r->target == T_HOLDERS ? r->arg :
	    jid(f->data, r->arg, arg, sizeof(arg));
	params[2] = (r->defaults & INBOX) ? "t" : "f";
	params[3] = (r->defaults & PUSH) ? "t" : "f";
	params[4] = (r->defaults & EMAIL) ? "t" : "f";
	if (r->target == T_USER && params[1] == NULL)
		return (0);	/* nobody named: nobody to tell */
	res = api->db_query(f->p, rcpt_sql[r->target], 5, params);
	if (!api->db_ok(res)) {
		api->db_free(res);
		return (-1);
	}
	n = api->db_rows(res);
	for (i = 0; i < n && rc == 0; i++) {
		ch = 0;
		if (strcmp(api->db_value(res, i, 3), "t") == 0)
			ch |= INBOX;
		if (strcmp(api->db_value(res, i, 4), "t") == 0)
			ch |= PUSH;
		if (strcmp(api->db_value(res, i, 5), "t") == 0)
			ch |= EMAIL;
		rc = deliver_user(f, r, api->db_value(res, i, 0),
		    ch & r->channels,
		    strcmp(api->db_value(res, i, 1), "t") == 0,
		    strcmp(api->db_value(res, i, 2), "t") == 0);
	}
	api->db_free(res);
	return (rc);
}

/* The donor's device, when the donor gave one (the push job reads the
 * token itself when it runs: it may be gone by then). */
static int
deliver_donor(struct fanout *f, const struct rule *r)
{
	char	qid[32], key[160];
	int	has;

	if (jid(f->data, r->arg, qid, sizeof(qid)) == NULL)
		return (0);
	if ((has = THREAD->donor_device(f->p, strtoll(qid, NULL, 10),
	    NULL)) == -1)
		return (-1);
	if (!has)
		return (0);
	snprintf(key, sizeof(key), "push:%s:query-%s", f->id, qid);
	if (enqueue(f->p, "notifications.push", key, json_pack("{s:s, s:s, "
	    "s:s, s:s, s:o, s:I}", "event", f->name, "event_id", f->id,
	    "title", f->title, "body", f->body, "data", push_data(f->name,
	    f->id, f->vars, NULL), "query_id", (json_int_t)strtoll(qid, NULL,
	    10))) == -1)
		return (-1);
	f->npush++;
	return (0);
}

static void
fanout_clear(struct fanout *f)
{
	json_decref(f->vars);
	free(f->title);
	free(f->body);
	f->vars = NULL;
	f->title = f->body = NULL;
}

static void
fanout_run(struct sb_job *job)
{
	struct fanout	 f;
	json_t		*payload = api->job_payload(job), *item;
	char		*s, room[48], num[32];
	size_t		 i;
	int		 rc = 0, matched = 0;

	memset(&f, 0, sizeof(f));
	f.p = api->job_plugin(job);
	f.name = sb_jstr(payload, "name");
	f.event_id = sb_jstr(payload, "id");
	f.data = json_object_get(payload, "data");
	if (f.name == NULL || f.event_id == NULL ||
	    !json_is_object(f.data)) {
		api->job_fail(job, "malformed payload");
		return;
	}
	f.items = json_array();
	if (api->db_begin(f.p) != SB_OK) {
		json_decref(f.items);
		api->job_retry(job, "database unavailable", 0);
		return;
	}
	for (i = 0; i < NRULES && rc == 0; i++) {
		if (!rule_applies(&rules[i], f.name, NULL, NULL, f.data))
			continue;
		matched++;
		f.id = f.event_id;
		if (rules[i].once != NULL && jid(f.data, rules[i].once, num,
		    sizeof(num)) != NULL) {
			snprintf(f.once_id, sizeof(f.once_id), "%s.%s",
			    RULE_TYPE(&rules[i]), num);
			f.id = f.once_id;
		}
		if ((f.vars = event_vars(f.p, f.name, f.event_id, f.data,
		    rules[i].query_key)) == NULL) {
			rc = -1;
			break;
		}
		f.title = notifications_render(rules[i].title, f.vars, 0);
		f.body = notifications_render(rules[i].body, f.vars, 0);
		if (f.title != NULL && (s = notifications_snippet(f.title,
		    TITLE_MAX)) != NULL) {
			free(f.title);
			f.title = s;
		}
		if (f.body != NULL && (s = notifications_snippet(f.body,
		    BODY_MAX)) != NULL) {
			free(f.body);
			f.body = s;
		}
		if (f.title == NULL || f.body == NULL)
			rc = -1;
		else if (rules[i].target == T_DONOR)
			rc = deliver_donor(&f, &rules[i]);
		else
			rc = deliver_staff(&f, &rules[i]);
		fanout_clear(&f);
	}
	fanout_clear(&f);
	if (rc == -1) {
		api->db_rollback(f.p);
		json_decref(f.items);
		api->job_retry(job, "database error during the fan-out", 0);
		return;
	}
	/* Done inside the transaction: the rows, the jobs and "done"
	 * commit together.  A failed commit leaves the job running; its
	 * lease runs out and it runs again, adding nothing twice. */
	api->job_done(job, json_pack("{s:i, s:i, s:i, s:i}", "rules", matched,
	    "inbox", f.ninbox, "push", f.npush, "email", f.nemail));
	if (api->db_commit(f.p) != SB_OK) {
		api->db_rollback(f.p);
		api->log(f.p, SB_LOG_WARN, "fan-out of %s %s did not commit: "
		    "it runs again", f.name, f.event_id);
		json_decref(f.items);
		return;
	}
	json_array_foreach(f.items, i, item) {
		user_room(room, sizeof(room), (long long)json_integer_value(
		    json_object_get(item, "user_id")));
		json_object_del(item, "user_id");
		api->publish_room(f.p, room, "notifications.created", 1, item);
	}
	json_decref(f.items);
}

/* ---- inbox routes ---- */

static json_t *
item_error(const char *field, const char *code, const char *msg)
{
	json_t	*a = json_array();

	json_array_append_new(a, field_error(field, code, msg));
	return (a);
}

static void
n_list(struct sb_req *req)
{
	struct sb_plugin		*p = api->req_plugin(req);
	const struct sb_principal	*who = api->req_principal(req);
	struct sb_list			 list;
	const char			*unread, *params[4];
	char				 uid[32];

	unread = api->req_query(req, "unread");
	if (unread != NULL && strcmp(unread, "true") != 0 &&
	    strcmp(unread, "false") != 0) {
		api->respond_error(req, 400, "VALIDATION_ERROR", "invalid "
		    "unread", item_error("unread", "INVALID_CHOICE",
		    "true or false"));
		return;
	}
	if (api->list_parse(req, &list, SB_LIST_ID_CURSOR) != SB_OK)
		return;
	snprintf(uid, sizeof(uid), "%lld", (long long)who->id);
	params[0] = uid;
	params[1] = unread;
	params[2] = list.cursor;
	params[3] = list.limit_plus_one;
	api->list_respond(req, api->db_query(p, "SELECT " I_COLS " FROM "
	    "notifications_inbox WHERE user_id = $1::bigint AND ($2::bool IS "
	    "NULL OR (read_at IS NULL) = $2::bool) AND ($3::bigint IS NULL OR "
	    "id < $3::bigint) ORDER BY id DESC LIMIT $4::bigint", 4, params),
	    &list, "id", NULL, NULL);
}

static void
n_read(struct sb_req *req)
{
	struct sb_plugin		*p = api->req_plugin(req);
	const struct sb_principal	*who = api->req_principal(req);
	struct sb_db_res		*r;
	const char			*id = api->req_param(req, "id");
	const char			*params[2];
	char				 uid[32], room[48], *end;
	json_t				*item;
	int				 changed;

	if (id == NULL || *id == '\0' || strlen(id) > 18 ||
	    strtoll(id, &end, 10) <= 0 || *end != '\0') {
		api->respond_error(req, 404, "NOT_FOUND", "no such "
		    "notification", NULL);
		return;
	}
	snprintf(uid, sizeof(uid), "%lld", (long long)who->id);
	params[0] = id;
	params[1] = uid;
	/* now() is the statement's: read_at = now() only when this very
	 * statement set it. */
	r = api->db_query(p, "UPDATE notifications_inbox SET read_at = "
	    "coalesce(read_at, now()) WHERE id = $1::bigint AND user_id = "
	    "$2::bigint RETURNING " I_COLS ", read_at = now() AS changed", 2,
	    params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		err_db(req);
		return;
	}
	if (api->db_rows(r) != 1) {
		api->db_free(r);
		api->respond_error(req, 404, "NOT_FOUND", "no such "
		    "notification", NULL);
		return;
	}
	item = api->db_row_json(r, 0);
	api->db_free(r);
	changed = json_is_true(json_object_get(item, "changed"));
	json_object_del(item, "changed");
	if (changed) {
		user_room(room, sizeof(room), (long long)who->id);
		api->publish_room(p, room, "notifications.read", 1,
		    json_pack("{s:[O], s:O}", "ids", json_object_get(item,
		    "id"), "read_at", json_object_get(item, "read_at")));
	}
	api->respond_json(req, 200, item);
}

static void
n_read_all(struct sb_req *req)
{
	struct sb_plugin		*p = api->req_plugin(req);
	const struct sb_principal	*who = api->req_principal(req);
	struct sb_db_res		*r;
	const char			*params[1];
	char				 uid[32], room[48];
	long long			 n;
	json_t				*ev;

	snprintf(uid, sizeof(uid), "%lld", (long long)who->id);
	params[0] = uid;
	r = api->db_query(p, "WITH u AS (UPDATE notifications_inbox SET "
	    "read_at = now() WHERE user_id = $1::bigint AND read_at IS NULL "
	    "RETURNING 1) SELECT count(*) FROM u", 1, params);
	if (!api->db_ok(r) || api->db_rows(r) != 1) {
		api->db_free(r);
		err_db(req);
		return;
	}
	n = strtoll(api->db_value(r, 0, 0), NULL, 10);
	api->db_free(r);
	if (n > 0) {
		user_room(room, sizeof(room), (long long)who->id);
		ev = json_pack("{s:b, s:I}", "all", 1, "updated",
		    (json_int_t)n);
		api->publish_room(p, room, "notifications.read", 1, ev);
		json_decref(ev);
	}
	api->respond_json(req, 200, json_pack("{s:I}", "updated",
	    (json_int_t)n));
}

/* ---- preferences ---- */

/* Every event type with its effective channels: stored, or default.  A
 * channel its rules never use is false.  NULL on a database error. */
static json_t *
prefs_effective(struct sb_plugin *p, const char *uid)
{
	struct sb_db_res	*r;
	const char		*params[1] = { uid };
	json_t			*out, *e;
	size_t			 i, c;
	int			 k, row, n;

	r = api->db_query(p, "SELECT event, channel, enabled FROM "
	    "notifications_preferences WHERE user_id = $1::bigint", 1,
	    params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (NULL);
	}
	out = json_object();
	for (i = 0; i < npref; i++) {
		e = json_object();
		for (c = 0; c < NCHANNELS; c++)
			json_object_set_new(e, channel_names[c], json_boolean(
			    (pref_defaults[i] & channel_bits[c]) != 0));
		json_object_set_new(out, pref_events[i], e);
	}
	n = api->db_rows(r);
	for (row = 0; row < n; row++) {
		if ((k = pref_index(api->db_value(r, row, 0))) == -1)
			continue;	/* an event type no rule has now */
		for (c = 0; c < NCHANNELS; c++) {
			if (strcmp(channel_names[c], api->db_value(r, row,
			    1)) != 0 || !(pref_channels[k] & channel_bits[c]))
				continue;
			json_object_set_new(json_object_get(out,
			    pref_events[k]), channel_names[c], json_boolean(
			    strcmp(api->db_value(r, row, 2), "t") == 0));
		}
	}
	api->db_free(r);
	return (out);
}

static void
prefs_get(struct sb_req *req)
{
	const struct sb_principal	*who = api->req_principal(req);
	json_t				*prefs;
	char				 uid[32];

	snprintf(uid, sizeof(uid), "%lld", (long long)who->id);
	if ((prefs = prefs_effective(api->req_plugin(req), uid)) == NULL) {
		err_db(req);
		return;
	}
	api->respond_json(req, 200, json_pack("{s:o}", "preferences", prefs));
}

static int
channel_bit(const char *name)
{
	size_t	c;

	for (c = 0; c < NCHANNELS; c++)
		if (strcmp(channel_names[c], name) == 0)
			return ((int)channel_bits[c]);
	return (0);
}

/* Every problem of a PUT body, as field errors (empty: none). */
static json_t *
prefs_check(json_t *prefs)
{
	json_t		*errors, *chans, *v;
	const char	*ev, *ch;
	char		 field[320];
	int		 k, bit;

	errors = json_array();
	json_object_foreach(prefs, ev, chans) {
		if ((k = pref_index(ev)) == -1) {
			snprintf(field, sizeof(field), "preferences.%.200s",
			    ev);
			json_array_append_new(errors, field_error(field,
			    "INVALID_CHOICE", "not an event type with "
			    "notifications"));
			continue;
		}
		if (!json_is_object(chans)) {
			snprintf(field, sizeof(field), "preferences.%s", ev);
			json_array_append_new(errors, field_error(field,
			    "INVALID_TYPE", "must be an object of channels"));
			continue;
		}
		json_object_foreach(chans, ch, v) {
			snprintf(field, sizeof(field), "preferences.%s.%.64s",
			    ev, ch);
			if ((bit = channel_bit(ch)) == 0)
				json_array_append_new(errors, field_error(field,
				    "INVALID_CHOICE", "one of push, email, "
				    "inbox"));
			else if (!json_is_boolean(v))
				json_array_append_new(errors, field_error(field,
				    "INVALID_TYPE", "must be true or false"));
			else if (json_is_true(v) &&
			    !(pref_channels[k] & (unsigned int)bit))
				json_array_append_new(errors, field_error(field,
				    "INVALID_CHOICE", "this event type is not "
				    "sent on this channel"));
		}
	}
	return (errors);
}

static void
prefs_put(struct sb_req *req)
{
	struct sb_plugin		*p = api->req_plugin(req);
	const struct sb_principal	*who = api->req_principal(req);
	struct sb_db_res		*r;
	json_t				*prefs, *errors, *chans, *v, *out;
	const char			*ev, *ch, *params[4];
	char				 uid[32];
	int				 ok = 1;

	prefs = json_object_get(api->req_json(req), "preferences");
	errors = prefs_check(prefs);
	if (json_array_size(errors) > 0) {
		api->respond_error(req, 422, "VALIDATION_ERROR", "the "
		    "preferences have invalid fields", errors);
		return;
	}
	json_decref(errors);
	snprintf(uid, sizeof(uid), "%lld", (long long)who->id);
	if (api->db_begin(p) != SB_OK) {
		err_db(req);
		return;
	}
	json_object_foreach(prefs, ev, chans) {
		json_object_foreach(chans, ch, v) {
			params[0] = uid;
			params[1] = ev;
			params[2] = ch;
			params[3] = json_is_true(v) ? "t" : "f";
			r = api->db_query(p, "INSERT INTO "
			    "notifications_preferences (user_id, event, "
			    "channel, enabled) VALUES ($1::bigint, $2, $3, "
			    "$4::bool) ON CONFLICT (user_id, event, channel) "
			    "DO UPDATE SET enabled = EXCLUDED.enabled, "
			    "updated_at = now()", 4, params);
			ok = ok && api->db_ok(r);
			api->db_free(r);
		}
	}
	if (!ok || api->db_commit(p) != SB_OK) {
		api->db_rollback(p);
		err_db(req);
		return;
	}
	if ((out = prefs_effective(p, uid)) == NULL) {
		err_db(req);
		return;
	}
	api->respond_json(req, 200, json_pack("{s:o}", "preferences", out));
}

/* ---- lifecycle ---- */

/* Retention "inbox" (inbox_retention_days): read entries created before
 * the cutoff go; unread ones stay however old.  Runs in the host's
 * transaction; returns how many went, -1 on error. */
static long long
inbox_purge(struct sb_plugin *p, const char *cutoff)
{
	struct sb_db_res	*r;
	const char		*params[1];
	long long		 n;

	params[0] = cutoff;
	r = api->db_query(p, "WITH gone AS (DELETE FROM notifications_inbox "
	    "WHERE read_at IS NOT NULL AND created_at < $1::timestamptz "
	    "RETURNING 1) SELECT count(*) FROM gone", 1, params);
	n = api->db_ok(r) && api->db_rows(r) == 1 ?
	    strtoll(api->db_value(r, 0, 0), NULL, 10) : -1;
	api->db_free(r);
	return (n);
}

static const struct sb_retention inbox_retention = {
	.size = sizeof(struct sb_retention),
	.name = "inbox",
	.default_days = 0,
	.description = "Read inbox entries, by age",
	.purge = inbox_purge,
};

static int
notifications_setup(struct sb_plugin *p, const struct sb_host_api *host)
{
	const char	*mailed[NRULES + 1];
	size_t		 i, j, n;

	api = host;
	if (!SB_API_HAS(api, seal) || !SB_API_HAS(api, unseal) ||
	    !SB_API_HAS(api, mail_send)) {
		api->log(p, SB_LOG_ERROR, "this host lacks seal/mail_send "
		    "(ABI 1.1)");
		return (SB_ERROR);
	}
	prefs_build();
	/* The events that may be mailed: one template pair each. */
	for (i = n = 0; i < NRULES; i++) {
		if (!(rules[i].channels & EMAIL))
			continue;
		for (j = 0; j < n && strcmp(mailed[j],
		    RULE_TYPE(&rules[i])) != 0; j++)
			;
		if (j == n)
			mailed[n++] = RULE_TYPE(&rules[i]);
	}
	mailed[n] = NULL;
	if (api->config_declare(p, config_keys) != SB_OK ||
	    api->service_import(p, SB_CONCIERGE_THREAD, 2,
	    &notifications_thread) != SB_OK ||
	    notifications_fcm_setup(p, host) != SB_OK ||
	    notifications_mail_setup(p, host, mailed) != SB_OK)
		return (SB_ERROR);
	if (api->routes_add(p, routes) != SB_OK ||
	    api->migrations_add(p, "migrations") != SB_OK ||
	    api->job_kind_add(p, &fanout_kind) != SB_OK ||
	    api->retention_add(p, &inbox_retention) != SB_OK ||
	    api->event_declare(p, "notifications.created", "A new inbox entry "
	    "(user:{id}; data: the entry)") != SB_OK ||
	    api->event_declare(p, "notifications.read", "Inbox entries were "
	    "read (user:{id}; data: {ids, read_at} or {all, updated})") !=
	    SB_OK)
		return (SB_ERROR);
	/* One subscription per event name the rules know. */
	for (i = 0; i < NRULES; i++) {
		for (j = 0; j < i &&
		    strcmp(rules[j].event, rules[i].event) != 0; j++)
			;
		if (j == i && api->subscribe(p, rules[i].event, on_event,
		    NULL) != SB_OK)
			return (SB_ERROR);
	}
	return (SB_OK);
}

static int
notifications_health(struct sb_plugin *p, json_t *detail)
{
	(void)p;
	notifications_fcm_health(detail);
	notifications_mail_health(detail);
	return (SB_OK);
}

static void
notifications_fini(struct sb_plugin *p)
{
	(void)p;
	notifications_fcm_fini();
	notifications_mail_fini();
}

/* ---- privacy (ABI 1.3) ---- */

/*
 * What this plugin holds about a donor: staff inbox entries about the
 * donor's queries (data.donor_id, see inbox_data()).  Their push tokens
 * live with their queries in concierge, which exports and erases them;
 * preferences and the FCM access token are staff's and the plugin's.
 * Customers and phone numbers: nothing yet.
 */
static json_t *
notifications_privacy_export(struct sb_plugin *p,
    const struct sb_subject *s)
{
	const char	*params[1];

	if (s->kind != SB_SUBJECT_DONOR)
		return (json_object());
	params[0] = s->value;
	return (sb_db_json(api, p, "SELECT json_build_object('inbox', "
	    "coalesce((SELECT json_agg(x ORDER BY x.id) FROM (SELECT user_id, " I_COLS
	    " FROM notifications_inbox WHERE data->>'donor_id' = $1) x), "
	    "'[]'))::text", 1, params));
}

static long long
notifications_privacy_erase(struct sb_plugin *p, const struct sb_subject *s)
{
	struct sb_db_res	*r;
	const char		*params[1];
	long long		 n;

	if (s->kind != SB_SUBJECT_DONOR)
		return (0);
	params[0] = s->value;
	r = api->db_query(p, "DELETE FROM notifications_inbox WHERE "
	    "data->>'donor_id' = $1 RETURNING 1", 1, params);
	n = api->db_ok(r) ? api->db_rows(r) : -1;
	api->db_free(r);
	return (n);
}

static const char *const depends[] = { "io.switchboard.concierge", NULL };

SB_PLUGIN(
	.id = "io.switchboard.notifications",
	.name = "notifications",
	.version = "1.0.0",
	.summary = "Staff inbox, FCM push and email notifications of "
	    "concierge, calls and dead jobs",
	.depends = depends,
	.setup = notifications_setup,
	.health = notifications_health,
	.fini = notifications_fini,
	.rekey = notifications_fcm_rekey,
	.privacy_export = notifications_privacy_export,
	.privacy_erase = notifications_privacy_erase,
)
