/*
 * The whatsapp plugin (API.md "WhatsApp"): conversations with customers
 * over the WhatsApp Business Cloud API.  This file is the plugin itself:
 * configuration, the pieces every file shares (wa.h), the rooms, health,
 * statistics, the customers timeline, privacy and key rotation.  The
 * conversations and their 24-hour window are in conv.c, sending in
 * send.c, the webhook in hook.c, templates in templates.c and media in
 * media.c.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <switchboard/plugin.h>
#include <switchboard/helpers.h>
#include <switchboard/services/customers.h>
#include <switchboard/services/media.h>

#include "wa.h"

const struct sb_host_api		*wa_api;
struct sb_plugin			*wa_self;
const struct sb_customers_directory	*wa_dir;
const struct sb_media_store		*wa_media;
struct wa_conf				 wa_conf;

#define api	wa_api
#define self	wa_self

static const struct sb_config_key config_keys[] = {
	{ "access_token", NULL, SB_CONF_SECRET, "A system user's access token "
	  "with whatsapp_business_messaging (and _management for templates)" },
	{ "phone_number_id", NULL, 0, "The business phone number's id "
	  "(messages go out from it; webhooks for other numbers are "
	  "ignored)" },
	{ "waba_id", NULL, 0, "The WhatsApp Business Account id (templates)" },
	{ "app_secret", NULL, SB_CONF_SECRET, "The Meta app's secret: "
	  "webhooks are verified with it (X-Hub-Signature-256)" },
	{ "verify_token", NULL, SB_CONF_SECRET, "The token Meta's webhook "
	  "verification GET must present" },
	{ "graph_api_url", "https://graph.facebook.com", 0, "The Graph API's "
	  "base URL" },
	{ "graph_api_version", "v21.0", 0, "The Graph API version in every "
	  "path" },
	{ "spool_dir", "var/whatsapp", 0, "Media on their way to or from "
	  "Graph, relative to the server's working directory (created)" },
	{ "timeout_ms", "15000", 0, "One Graph request's time limit" },
	{ "inflight_grace_s", "300", 0, "A send whose answer was lost (a "
	  "timeout, a worker killed) waits this long for Meta's status "
	  "webhook to name it before it is sent again" },
	{ "template_sync_interval_s", "3600", 0, "Templates are synced from "
	  "Graph this often (0: only on demand)" },
	{ "messages_per_minute", "60", 0, "Messages a user may send, and a "
	  "customer may be sent, per minute (0: no limit)" },
	SB_CONFIG_END
};

/* ---- shared ---- */

int
wa_send_ready(void)
{
	return (wa_conf.access_token != NULL &&
	    wa_conf.phone_number_id != NULL);
}

int
wa_graph_url(char *out, size_t len, const char *path)
{
	int	n;

	n = snprintf(out, len, "%s/%s/%s", wa_conf.graph_api_url,
	    wa_conf.graph_api_version, path);
	return (n < 0 || (size_t)n >= len ? -1 : 0);
}

int
wa_auth_header(char *out, size_t len)
{
	int	n;

	if (wa_conf.access_token == NULL)
		return (-1);
	n = snprintf(out, len, "Bearer %s", wa_conf.access_token);
	return (n < 0 || (size_t)n >= len ? -1 : 0);
}

void
wa_err_field(struct sb_req *req, int status, const char *field,
    const char *code, const char *msg)
{
	api->respond_error(req, status, status == 409 ? "CONFLICT" :
	    "VALIDATION_ERROR", msg, sb_field_error(field, code, msg));
}

void
wa_err_db(struct sb_req *req)
{
	api->respond_error(req, 500, "INTERNAL", "database error", NULL);
}

int
wa_e164_from_waid(const char *wa_id, char *out, size_t len)
{
	size_t	i, n;

	if (wa_id == NULL)
		return (-1);
	if (*wa_id == '+')
		wa_id++;
	n = strlen(wa_id);
	if (n < 6 || n > 15 || n + 2 > len)
		return (-1);
	for (i = 0; i < n; i++)
		if (wa_id[i] < '0' || wa_id[i] > '9')
			return (-1);
	out[0] = '+';
	memcpy(out + 1, wa_id, n + 1);
	return (0);
}

char *
wa_phone_index(const char *e164)
{
	return (api->blind_index(self, "phone", e164, strlen(e164)));
}

void
wa_pub_add(json_t *pubs, const char *room, const char *name, json_t *data)
{
	if (data == NULL)
		return;
	json_array_append_new(pubs, json_pack("{s:s, s:s, s:o}", "r", room,
	    "n", name, "d", data));
}

void
wa_publish_all(json_t *pubs)
{
	json_t	*e;
	size_t	 i;

	json_array_foreach(pubs, i, e)
		(void)api->publish_room(self, sb_jstr(e, "r"), sb_jstr(e, "n"),
		    1, json_object_get(e, "d"));
}

/* ---- rooms ---- */

/* "whatsapp" and "whatsapp:<id>": staff holding whatsapp.read. */
static int
room_auth(struct sb_plugin *p, const struct sb_principal *who,
    const char *room)
{
	struct sb_db_res	*r;
	const char		*params[1];
	int			 ok;

	if (strcmp(room, WA_ROOM) != 0 &&
	    (strncmp(room, WA_ROOM ":", sizeof(WA_ROOM)) != 0 ||
	    sb_positive_id(room + sizeof(WA_ROOM)) == NULL))
		return (0);
	if (who->kind != SB_ACTOR_USER || who->role == NULL)
		return (0);
	if (strcmp(who->role, "SUPER_ADMIN") == 0)
		return (1);
	params[0] = who->role;
	r = api->db_query(p, "SELECT 1 FROM roles WHERE name = $1 AND "
	    "'whatsapp.read' = ANY (permissions)", 1, params);
	ok = api->db_ok(r) && api->db_rows(r) == 1;
	api->db_free(r);
	return (ok);
}

/* ---- the customers timeline ---- */

static json_t *
timeline_items(struct sb_plugin *p, int64_t customer_id, const json_t *before,
    unsigned int limit)
{
	struct sb_timeline_args	 a;
	struct sb_db_res	*r;
	char			*text;
	json_t			*out, *row;
	int			 i;

	sb_timeline_args(&a, customer_id, before, limit);
	r = api->db_query(p, "SELECT id, direction, status, type, "
	    "coalesce(text_sealed, caption_sealed), template->>'name', "
	    SB_SQL_TS("created_at") " AS at FROM whatsapp_messages WHERE "
	    SB_TIMELINE_WHERE("whatsapp") " ORDER BY created_at DESC, id DESC "
	    "LIMIT $5::int", 5, a.params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (NULL);
	}
	out = json_array();
	for (i = 0; i < api->db_rows(r); i++) {
		text = NULL;
		if (!api->db_isnull(r, i, 4))
			text = api->unseal(p, api->db_value(r, i, 4), NULL);
		sb_utf8_cut(text, 140);
		row = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:s}",
		    "channel", "whatsapp", "kind", api->db_value(r, i, 3), "id",
		    (json_int_t)strtoll(api->db_value(r, i, 0), NULL, 10),
		    "direction", api->db_value(r, i, 1),
		    "status", api->db_value(r, i, 2),
		    "summary", text != NULL ? text : !api->db_isnull(r, i, 5) ?
		    api->db_value(r, i, 5) : api->db_value(r, i, 3),
		    "at", api->db_value(r, i, 6));
		free(text);
		if (row != NULL)
			json_array_append_new(out, row);
	}
	api->db_free(r);
	return (out);
}

static const struct sb_timeline_source timeline = {
	.size = sizeof(struct sb_timeline_source),
	.channel = "whatsapp",
	.items = timeline_items,
};

/* ---- health and statistics ---- */

static int
whatsapp_health(struct sb_plugin *p, json_t *detail)
{
	const char	*send, *hook;

	(void)p;
	if (wa_send_ready())
		send = "configured";
	else
		send = "not configured (access_token and phone_number_id)";
	if (wa_conf.app_secret != NULL)
		hook = "configured";
	else
		hook = "not configured (app_secret): webhooks are refused";
	json_object_set_new(detail, "whatsapp", json_string(send));
	json_object_set_new(detail, "whatsapp.webhook", json_string(hook));
	json_object_set_new(detail, "whatsapp.templates", json_string(
	    wa_conf.waba_id != NULL && wa_conf.access_token != NULL ?
	    "configured" : "not configured (waba_id)"));
	return (SB_OK);
}

static int
whatsapp_stats(struct sb_plugin *p, json_t *out)
{
	json_t	*j, *list, *row, *e;
	size_t	 i;

	j = sb_db_json(api, p, "SELECT json_build_object("
	    "'messages', (SELECT coalesce(json_agg(x), '[]') FROM (SELECT "
	    "status, direction, count(*) AS count FROM whatsapp_messages "
	    "GROUP BY 1, 2 ORDER BY 1, 2) x), "
	    "'conversations', (SELECT coalesce(json_object_agg(status, n), "
	    "'{}') FROM (SELECT status, count(*) AS n FROM "
	    "whatsapp_conversations GROUP BY 1) c), "
	    "'messages_per_day', (SELECT coalesce(json_agg(json_build_object("
	    "'day', d, 'count', n) ORDER BY d), '[]') FROM (SELECT "
	    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS d, "
	    "count(*) AS n FROM whatsapp_messages WHERE created_at > now() - "
	    "interval '14 days' GROUP BY 1) y))::text", 0, NULL);
	if (j == NULL)
		return (SB_ERROR);
	json_object_update(out, j);
	json_decref(j);
	if ((list = json_array()) == NULL)
		return (SB_ERROR);
	json_array_foreach(json_object_get(out, "messages"), i, row) {
		e = json_pack("{s:s, s:s, s:{s:O, s:O}, s:O}", "name",
		    "messages", "help", "WhatsApp messages by status and "
		    "direction (the cluster's)", "labels", "status",
		    json_object_get(row, "status"), "direction",
		    json_object_get(row, "direction"), "value",
		    json_object_get(row, "count"));
		if (e != NULL)
			json_array_append_new(list, e);
	}
	json_object_set_new(out, "metrics", list);
	return (SB_OK);
}

/* ---- privacy ---- */

/*
 * The subject's conversations as a WHERE clause on $1: 0 by customer id,
 * 1 by the number's blind index (*index, caller frees), 2 nothing here
 * (a donor), -1 without a key.
 */
static int
subject_param(const struct sb_subject *s, char **index, const char **param)
{
	*index = NULL;
	if (s->kind == SB_SUBJECT_CUSTOMER) {
		*param = s->value;
		return (0);
	}
	if (s->kind == SB_SUBJECT_PHONE) {
		if ((*index = wa_phone_index(s->value)) == NULL)
			return (-1);
		*param = *index;
		return (1);
	}
	return (2);
}

#define SUBJECT_WHERE(k) ((k) == 0 ? "customer_id = $1::bigint" : \
	"wa_index = $1")

static json_t *
whatsapp_privacy_export(struct sb_plugin *p, const struct sb_subject *s)
{
	struct sb_db_res	*r;
	const char		*param;
	char			*index, sql[1024];
	json_t			*out, *convs, *msgs, *c;
	int			 k, i;

	if ((k = subject_param(s, &index, &param)) == -1)
		return (NULL);
	if (k == 2)
		return (json_object());
	out = NULL;
	(void)snprintf(sql, sizeof(sql), "SELECT id FROM "
	    "whatsapp_conversations WHERE %s ORDER BY id", SUBJECT_WHERE(k));
	r = api->db_query(p, sql, 1, &param);
	if (!api->db_ok(r))
		goto done;
	convs = json_array();
	msgs = json_array();
	for (i = 0; i < api->db_rows(r); i++) {
		struct sb_db_res	*m;
		const char		*cid = api->db_value(r, i, 0);
		int			 dberr, j;

		if ((c = wa_conv_load(strtoll(cid, NULL, 10), &dberr)) != NULL)
			json_array_append_new(convs, c);
		m = api->db_query(p, "SELECT " WA_MSG_COLS " FROM "
		    "whatsapp_messages m WHERE m.conversation_id = $1::bigint "
		    "ORDER BY m.id", 1, &cid);
		if (!api->db_ok(m)) {
			api->db_free(m);
			json_decref(convs);
			json_decref(msgs);
			goto done;
		}
		for (j = 0; j < api->db_rows(m); j++)
			json_array_append_new(msgs,
			    wa_msg_json(api->db_row_json(m, j)));
		api->db_free(m);
	}
	out = json_pack("{s:o, s:o}", "conversations", convs, "messages",
	    msgs);
done:
	api->db_free(r);
	free(index);
	return (out);
}

static long long
whatsapp_privacy_erase(struct sb_plugin *p, const struct sb_subject *s)
{
	const char	*param;
	char		*index, sql[1024];
	long long	 n, m;
	int		 k;

	if ((k = subject_param(s, &index, &param)) == -1)
		return (-1);
	if (k == 2)
		return (0);
	/* Messages first, to count them; events go with them. */
	(void)snprintf(sql, sizeof(sql), "DELETE FROM whatsapp_messages WHERE "
	    "conversation_id IN (SELECT id FROM whatsapp_conversations WHERE "
	    "%s) RETURNING 1", SUBJECT_WHERE(k));
	n = sb_db_count(api, p, sql, 1, &param);
	if (n >= 0) {
		(void)snprintf(sql, sizeof(sql), "DELETE FROM "
		    "whatsapp_conversations WHERE %s RETURNING 1",
		    SUBJECT_WHERE(k));
		m = sb_db_count(api, p, sql, 1, &param);
		n = m < 0 ? -1 : n + m;
	}
	free(index);
	return (n);
}

/* ---- key rotation ---- */

static int
whatsapp_rekey(struct sb_plugin *p, json_t *state, unsigned int batch,
    unsigned int *resealed)
{
	static const char *const conv_cols[] = { "wa_sealed", NULL };
	static const char *const msg_cols[] = { "text_sealed",
		"caption_sealed", NULL };
	int	rc;

	if (!json_is_true(json_object_get(state, "conversations_done"))) {
		rc = sb_rekey_table(api, p, "whatsapp_conversations",
		    conv_cols, state, "conversations_after", batch, resealed);
		if (rc != 0)
			return (rc);
		json_object_set_new(state, "conversations_done", json_true());
	}
	return (sb_rekey_table(api, p, "whatsapp_messages", msg_cols, state,
	    "messages_after", batch, resealed));
}

/* ---- lifecycle ---- */

static const char *
conf_str(struct sb_plugin *p, const char *key)
{
	const char	*v = api->config_get(p, key);

	return (v != NULL && *v != '\0' ? v : NULL);
}

static int
conf_uint(struct sb_plugin *p, const char *key, long long def,
    long long max, unsigned int *out)
{
	long long	n = api->config_int(p, key, def);

	if (n < 0 || n > max) {
		api->log(p, SB_LOG_ERROR, "%s must be 0..%lld", key, max);
		return (-1);
	}
	*out = (unsigned int)n;
	return (0);
}

static int
whatsapp_setup(struct sb_plugin *p, const struct sb_host_api *host)
{
	size_t	n;

	api = host;
	self = p;
	if (!SB_API_HAS(api, service_import) || !SB_API_HAS(api, blind_index) ||
	    !SB_API_HAS(api, list_respond) || !SB_API_HAS(api, req_body) ||
	    !SB_API_HAS(api, reseal) || !SB_API_HAS(api, dir_open)) {
		api->log(p, SB_LOG_ERROR, "this host lacks ABI 1.3");
		return (SB_ERROR);
	}
	if (api->config_declare(p, config_keys) != SB_OK)
		return (SB_ERROR);
	memset(&wa_conf, 0, sizeof(wa_conf));
	wa_conf.access_token = conf_str(p, "access_token");
	wa_conf.phone_number_id = conf_str(p, "phone_number_id");
	wa_conf.waba_id = conf_str(p, "waba_id");
	wa_conf.app_secret = conf_str(p, "app_secret");
	wa_conf.verify_token = conf_str(p, "verify_token");
	wa_conf.graph_api_url = conf_str(p, "graph_api_url");
	wa_conf.graph_api_version = conf_str(p, "graph_api_version");
	wa_conf.spool_dir = conf_str(p, "spool_dir");
	if (wa_conf.spool_dir == NULL)
		wa_conf.spool_dir = "var/whatsapp";
	if (wa_conf.graph_api_url == NULL ||
	    (strncmp(wa_conf.graph_api_url, "https://", 8) != 0 &&
	    strncmp(wa_conf.graph_api_url, "http://", 7) != 0)) {
		api->log(p, SB_LOG_ERROR, "graph_api_url must be an http(s) "
		    "URL");
		return (SB_ERROR);
	}
	/* The base without its trailing slashes. */
	n = strlen(wa_conf.graph_api_url);
	if (n > 0 && wa_conf.graph_api_url[n - 1] == '/') {
		char	*u = strdup(wa_conf.graph_api_url);

		if (u == NULL)
			return (SB_ERROR);
		while (n > 0 && u[n - 1] == '/')
			u[--n] = '\0';
		wa_conf.graph_api_url = u;	/* kept for the process */
	}
	if (wa_conf.graph_api_version == NULL ||
	    strspn(wa_conf.graph_api_version, "v0123456789.") !=
	    strlen(wa_conf.graph_api_version)) {
		api->log(p, SB_LOG_ERROR, "graph_api_version must look like "
		    "v21.0");
		return (SB_ERROR);
	}
	if (wa_conf.phone_number_id != NULL &&
	    strspn(wa_conf.phone_number_id, "0123456789") !=
	    strlen(wa_conf.phone_number_id)) {
		api->log(p, SB_LOG_ERROR, "phone_number_id must be digits");
		return (SB_ERROR);
	}
	if (wa_conf.waba_id != NULL && strspn(wa_conf.waba_id,
	    "0123456789") != strlen(wa_conf.waba_id)) {
		api->log(p, SB_LOG_ERROR, "waba_id must be digits");
		return (SB_ERROR);
	}
	if (conf_uint(p, "timeout_ms", 15000, 600000, &wa_conf.timeout_ms) ||
	    conf_uint(p, "inflight_grace_s", 300, 86400,
	    &wa_conf.inflight_grace_s) ||
	    conf_uint(p, "template_sync_interval_s", 3600, 86400 * 7,
	    &wa_conf.template_sync_s) ||
	    conf_uint(p, "messages_per_minute", 60, 100000,
	    &wa_conf.messages_per_minute))
		return (SB_ERROR);
	if (wa_conf.timeout_ms < 100)
		wa_conf.timeout_ms = 100;
	if (api->service_import(p, SB_CUSTOMERS_DIRECTORY, 1,
	    (const struct sb_service **)&wa_dir) != SB_OK ||
	    api->service_import(p, SB_MEDIA_STORE, 1,
	    (const struct sb_service **)&wa_media) != SB_OK)
		return (SB_ERROR);
	if (api->permission_add(p, "whatsapp.read", "Read WhatsApp "
	    "conversations, messages and templates") != SB_OK ||
	    api->permission_add(p, "whatsapp.send", "Send WhatsApp messages; "
	    "assign and close conversations") != SB_OK ||
	    api->permission_add(p, "whatsapp.manage", "Sync WhatsApp "
	    "templates") != SB_OK ||
	    api->migrations_add(p, "migrations") != SB_OK ||
	    api->room_add(p, WA_ROOM, room_auth) != SB_OK ||
	    api->event_declare(p, "whatsapp.message.created", "A WhatsApp "
	    "message was queued or received (room whatsapp:<conversation "
	    "id>)") != SB_OK ||
	    api->event_declare(p, "whatsapp.message.status", "A WhatsApp "
	    "message changed status (room whatsapp:<conversation id>)") !=
	    SB_OK ||
	    api->event_declare(p, "whatsapp.conversation.updated", "A "
	    "conversation changed: status, window, assignment, unread (room "
	    "whatsapp)") != SB_OK)
		return (SB_ERROR);
	if (wa_conv_setup(p) != SB_OK || wa_send_setup(p) != SB_OK ||
	    wa_hook_setup(p) != SB_OK || wa_templates_setup(p) != SB_OK ||
	    wa_media_setup(p) != SB_OK)
		return (SB_ERROR);
	return (SB_OK);
}

static int
whatsapp_init(struct sb_plugin *p)
{
	return (wa_dir->timeline_source_add(p, &timeline));
}

static const char *const depends[] = { "io.switchboard.customers",
	"io.switchboard.media", NULL };

SB_PLUGIN(
	.id = "io.switchboard.whatsapp",
	.name = "whatsapp",
	.version = "0.1.0",
	.summary = "WhatsApp conversations over the WhatsApp Business Cloud "
	    "API, with the 24-hour window, templates and media",
	.depends = depends,
	.setup = whatsapp_setup,
	.init = whatsapp_init,
	.health = whatsapp_health,
	.stats = whatsapp_stats,
	.rekey = whatsapp_rekey,
	.privacy_export = whatsapp_privacy_export,
	.privacy_erase = whatsapp_privacy_erase,
)
