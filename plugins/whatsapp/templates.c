/*
 * WhatsApp message templates (API.md "WhatsApp"): the copy of the
 * templates Graph lists for the business account, the job that syncs it
 * (on demand and periodically), the routes that show and sync it, and
 * the check a template send passes before it is queued.
 *
 * The sync walks every page of <waba_id>/message_templates and changes
 * nothing until the walk is complete; then, in one transaction, every
 * template seen is written and every row not seen is deleted.  A failed
 * or cut-short walk leaves the previous copy as it was.
 *
 * The params column holds what a send must give per component, counted
 * from the components as Graph gave them: {"HEADER": n, "BODY": n,
 * "BUTTONS": [n for each button, by index]}.  Placeholders are {{1}} or
 * {{name}}, counted once however often they appear; a media header
 * (IMAGE, VIDEO, DOCUMENT) takes one parameter, the media itself.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <switchboard/plugin.h>
#include <switchboard/helpers.h>

#include "wa.h"

#define SYNC_KIND		"whatsapp.templates_sync"
#define SYNC_PERIODIC_KIND	"whatsapp.templates_sync_periodic"
#define SYNC_FIELDS		"name,language,status,category,components," \
				"parameter_format"
#define SYNC_PAGE_SIZE		"100"
#define SYNC_PAGES_MAX		100
#define SYNC_TIMEOUT_S		900	/* a whole walk: 100 pages */
#define SYNC_LOCK		"whatsapp.templates"

#define TPL_NAME_MAX		512	/* Graph's limit on a name */
#define TPL_LANG_MAX		32
#define TPL_STATUS_MAX		32
#define TPL_ID_MAX		64
#define BUTTONS_MAX		10	/* Graph's limit per template */
#define PLACEHOLDERS_MAX	256	/* distinct ones in one text */
#define PLACEHOLDER_LEN		64
#define COMPONENTS_MAX		16	/* in a send */
#define URL_MAX			4096
#define CURSOR_MAX		1024	/* Graph's `after`, before encoding */

/* One walk of the pages; lives from the job's run to its finish. */
struct sync {
	struct sb_job	*job;
	json_t		*seen;		/* the rows to write */
	unsigned int	 pages;
	unsigned int	 skipped;	/* malformed templates left out */
};

/* What a template takes in a send (borrowed strings from components). */
struct shape {
	int		 header;
	const char	*header_format;	/* NULL: no header */
	int		 body;
	size_t		 nbuttons;
	int		 button[BUTTONS_MAX];
	const char	*button_type[BUTTONS_MAX];
};

static void	tpl_list(struct sb_req *);
static void	tpl_sync(struct sb_req *);
static void	sync_run(struct sb_job *);

static int	configured(void);
static int	placeholders(const char *);
static void	shape_of(json_t *, struct shape *);
static json_t	*shape_params(const struct shape *);
static json_t	*tpl_row(json_t *);
static json_t	*tpl_map(struct sb_req *, json_t *, void *);
static int	pct_encode(const char *, char *, size_t);
static int	sync_fetch(struct sync *, const char *);
static void	sync_page(struct sb_plugin *, const struct sb_http_response *,
		    void *);
static int	sync_write(struct sync *, json_t **);
static void	sync_free(struct sync *);
static int	components_check(struct sb_req *, const struct shape *,
		    json_t *);
static int	in_list(const char *, const char *);
static int	param_check(const char *, json_t *, const char *, size_t,
		    char *, size_t);

static const struct sb_route routes[] = {
	{ .method = "GET", .path = "/api/v1/whatsapp/templates",
	  .permission = "whatsapp.read", .handler = tpl_list,
	  .summary = "The templates synced from the Graph API, by name and "
	  "language; ?status=APPROVED (the default), PENDING, REJECTED, "
	  "PAUSED, DISABLED or all; ?name= (a part of the name)" },
	{ .method = "POST", .path = "/api/v1/whatsapp/templates/sync",
	  .permission = "whatsapp.manage", .handler = tpl_sync,
	  .summary = "Sync the templates from the Graph API (202: queued; "
	  "one sync at a time)" },
	SB_ROUTE_END
};

static const struct sb_job_kind sync_kind = {
	.name = SYNC_KIND,
	.run = sync_run,
	.max_attempts = 5,
	.timeout_s = SYNC_TIMEOUT_S,
	.backoff_s = 10
};

/* interval_s is the configuration's, set in setup. */
static struct sb_job_kind sync_periodic = {
	.name = SYNC_PERIODIC_KIND,
	.run = sync_run,
	.max_attempts = 3,
	.timeout_s = SYNC_TIMEOUT_S,
	.backoff_s = 30
};

static const char *const list_statuses[] = { "APPROVED", "PENDING",
	"REJECTED", "PAUSED", "DISABLED", NULL };

int
wa_templates_setup(struct sb_plugin *p)
{
	if (wa_api->routes_add(p, routes) != SB_OK ||
	    wa_api->job_kind_add(p, &sync_kind) != SB_OK)
		return (SB_ERROR);
	if (wa_conf.template_sync_s > 0) {
		sync_periodic.interval_s = wa_conf.template_sync_s;
		if (wa_api->job_kind_add(p, &sync_periodic) != SB_OK)
			return (SB_ERROR);
	}
	return (SB_OK);
}

static int
configured(void)
{
	return (wa_conf.access_token != NULL && *wa_conf.access_token != '\0' &&
	    wa_conf.waba_id != NULL && *wa_conf.waba_id != '\0');
}

/* ---- counting ---- */

/* Distinct {{1}} / {{name}} placeholders in text. */
static int
placeholders(const char *text)
{
	const char	*seen[PLACEHOLDERS_MAX], *s, *e;
	size_t		 seen_len[PLACEHOLDERS_MAX], n, i;
	int		 count = 0;

	if (text == NULL)
		return (0);
	for (s = text; (s = strstr(s, "{{")) != NULL; s = e) {
		s += 2;
		for (e = s; (*e >= '0' && *e <= '9') || (*e >= 'a' &&
		    *e <= 'z') || (*e >= 'A' && *e <= 'Z') || *e == '_'; e++)
			;
		n = (size_t)(e - s);
		if (n == 0 || n > PLACEHOLDER_LEN || strncmp(e, "}}", 2) != 0)
			continue;
		e += 2;
		for (i = 0; i < (size_t)count; i++) {
			if (seen_len[i] == n && memcmp(seen[i], s, n) == 0)
				break;
		}
		if (i < (size_t)count || count == PLACEHOLDERS_MAX)
			continue;
		seen[count] = s;
		seen_len[count] = n;
		count++;
	}
	return (count);
}

static void
shape_of(json_t *components, struct shape *sh)
{
	json_t		*c, *buttons, *b;
	const char	*type, *fmt;
	size_t		 i, j;

	memset(sh, 0, sizeof(*sh));
	json_array_foreach(components, i, c) {
		if ((type = sb_jstr(c, "type")) == NULL)
			continue;
		if (strcasecmp(type, "HEADER") == 0) {
			fmt = sb_jstr(c, "format");
			sh->header_format = fmt != NULL ? fmt : "TEXT";
			if (strcasecmp(sh->header_format, "TEXT") == 0)
				sh->header = placeholders(sb_jstr(c, "text"));
			else if (strcasecmp(fmt, "IMAGE") == 0 ||
			    strcasecmp(fmt, "VIDEO") == 0 ||
			    strcasecmp(fmt, "DOCUMENT") == 0)
				sh->header = 1;
		} else if (strcasecmp(type, "BODY") == 0) {
			sh->body = placeholders(sb_jstr(c, "text"));
		} else if (strcasecmp(type, "BUTTONS") == 0) {
			buttons = json_object_get(c, "buttons");
			json_array_foreach(buttons, j, b) {
				if (j >= BUTTONS_MAX)
					break;
				sh->button_type[j] = sb_jstr(b, "type");
				if (sh->button_type[j] != NULL &&
				    strcasecmp(sh->button_type[j], "URL") == 0)
					sh->button[j] =
					    placeholders(sb_jstr(b, "url"));
				sh->nbuttons = j + 1;
			}
		}
	}
}

static json_t *
shape_params(const struct shape *sh)
{
	json_t	*buttons;
	size_t	 i;

	if ((buttons = json_array()) == NULL)
		return (NULL);
	for (i = 0; i < sh->nbuttons; i++)
		json_array_append_new(buttons, json_integer(sh->button[i]));
	return (json_pack("{s:i, s:i, s:o}", "HEADER", sh->header, "BODY",
	    sh->body, "BUTTONS", buttons));
}

/* ---- the routes ---- */

static json_t *
tpl_map(struct sb_req *req, json_t *row, void *arg)
{
	json_t		*params, *buttons, *b;
	json_int_t	 nbuttons = 0;
	size_t		 i;

	(void)req;
	(void)arg;
	params = json_object_get(row, "params");
	buttons = json_object_get(params, "BUTTONS");
	if (json_is_integer(buttons))
		nbuttons = json_integer_value(buttons);
	json_array_foreach(buttons, i, b)
		nbuttons += json_is_integer(b) ? json_integer_value(b) : 0;
	json_object_set_new(row, "parameters", json_pack("{s:I, s:I, s:I}",
	    "body", sb_jint(params, "BODY"), "header",
	    sb_jint(params, "HEADER"), "buttons", nbuttons));
	json_object_del(row, "params");
	return (row);
}

/*
 * Keyset on (name, language).  The cursor is base64url of "name\n
 * language" of the last row shown, made and read by the query; one the
 * database cannot decode is the client's mistake (400).
 */
static void
tpl_list(struct sb_req *req)
{
	struct sb_list		 list;
	struct sb_db_res	*r;
	const char		*status, *name, *params[4];
	char			*like = NULL;
	size_t			 i;

	memset(&list, 0, sizeof(list));
	list.size = sizeof(list);
	if (wa_api->list_parse(req, &list, 0) != SB_OK)
		return;
	status = wa_api->req_query(req, "status");
	if (status == NULL || *status == '\0') {
		status = "APPROVED";
	} else if (strcasecmp(status, "all") == 0) {
		status = NULL;
	} else {
		for (i = 0; list_statuses[i] != NULL; i++) {
			if (strcasecmp(status, list_statuses[i]) == 0)
				break;
		}
		if (list_statuses[i] == NULL) {
			wa_err_field(req, 400, "status", "INVALID_CHOICE",
			    "status must be APPROVED, PENDING, REJECTED, "
			    "PAUSED, DISABLED or all");
			return;
		}
		status = list_statuses[i];
	}
	name = wa_api->req_query(req, "name");
	if (name != NULL && *name != '\0') {
		if (strlen(name) > TPL_NAME_MAX) {
			wa_err_field(req, 400, "name", "INVALID_LENGTH",
			    "name is at most 512 characters");
			return;
		}
		if ((like = sb_like_pattern(name)) == NULL) {
			wa_err_db(req);
			return;
		}
	}
	params[0] = status;
	params[1] = like;
	params[2] = list.cursor;
	params[3] = list.limit_plus_one;
	r = wa_api->db_query(wa_self, "SELECT name, language, status, "
	    "category, components, params, " SB_SQL_TS("synced_at")
	    " AS synced_at, translate(encode(convert_to(name || E'\\n' || "
	    "language, 'UTF8'), 'base64'), E'+/=\\n', '-_') AS _cursor "
	    "FROM whatsapp_templates WHERE "
	    "($1::text IS NULL OR status = $1) AND "
	    "($2::text IS NULL OR name ILIKE $2) AND "
	    "($3::text IS NULL OR (name, language) > "
	    "(SELECT split_part(k.c, E'\\n', 1), split_part(k.c, E'\\n', 2) "
	    "FROM (SELECT convert_from(decode(rpad(translate($3, '-_', '+/'), "
	    "(length($3) + 3) / 4 * 4, '='), 'base64'), 'UTF8') AS c) AS k)) "
	    "ORDER BY name, language LIMIT $4::bigint", 4, params);
	free(like);
	if (!wa_api->db_ok(r) && list.cursor != NULL &&
	    wa_api->db_sqlstate(r) != NULL &&
	    strncmp(wa_api->db_sqlstate(r), "22", 2) == 0) {
		wa_api->db_free(r);
		wa_err_field(req, 400, "cursor", "INVALID_FORMAT",
		    "not a cursor this list gave");
		return;
	}
	wa_api->list_respond(req, r, &list, "_cursor", tpl_map, NULL);
}

/*
 * Clicks while a sync waits are that sync: its key names the generation
 * of syncs started (whatsapp_template_sync), which the job moves on as it
 * starts, so a click while one runs queues the next.
 */
static void
tpl_sync(struct sb_req *req)
{
	struct sb_job_opts	 opts;
	struct sb_db_res	*r;
	char			 key[64];
	int			 ok;

	if (!configured()) {
		wa_api->respond_error(req, 503, "UNAVAILABLE", "WhatsApp "
		    "templates are not configured (access_token and waba_id)",
		    NULL);
		return;
	}
	r = wa_api->db_query(wa_self, "SELECT generation FROM "
	    "whatsapp_template_sync WHERE id = 1", 0, NULL);
	if ((ok = wa_api->db_ok(r) && wa_api->db_rows(r) == 1))
		(void)snprintf(key, sizeof(key), "%s@%s", SYNC_KIND,
		    wa_api->db_value(r, 0, 0));
	wa_api->db_free(r);
	if (!ok) {
		wa_err_db(req);
		return;
	}
	memset(&opts, 0, sizeof(opts));
	opts.idempotency_key = key;
	if (wa_api->job_enqueue(wa_self, SYNC_KIND, NULL, &opts) == -1) {
		wa_err_db(req);
		return;
	}
	wa_api->respond_json(req, 202, json_pack("{s:s}", "status", "queued"));
}

/* ---- the sync ---- */

static void
sync_run(struct sb_job *job)
{
	struct sync	*s;

	if (!configured()) {
		wa_api->job_done(job, json_pack("{s:s}", "skipped",
		    "not configured (access_token and waba_id)"));
		return;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->seen = json_array()) == NULL) {
		free(s);
		wa_api->job_retry(job, "out of memory", 0);
		return;
	}
	s->job = job;
	/* Started: a sync asked for from now on is a new job. */
	if (sb_db_count(wa_api, wa_self, "UPDATE whatsapp_template_sync SET "
	    "generation = generation + 1 WHERE id = 1 RETURNING 1", 0,
	    NULL) != 1) {
		sync_free(s);
		wa_api->job_retry(job, "database error", 0);
		return;
	}
	if (sync_fetch(s, NULL) == -1) {
		wa_api->job_fail(job, "cannot make the Graph request "
		    "(graph_api_url, waba_id or access_token too long or "
		    "malformed)");
		sync_free(s);
	}
}

static void
sync_free(struct sync *s)
{
	json_decref(s->seen);
	free(s);
}

/* RFC 3986 unreserved characters as they are, the rest %XX. */
static int
pct_encode(const char *in, char *out, size_t len)
{
	static const char	 hex[] = "0123456789ABCDEF";
	unsigned char		 c;
	size_t			 o = 0;

	for (; *in != '\0'; in++) {
		c = (unsigned char)*in;
		if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
		    (c >= 'A' && c <= 'Z') || c == '-' || c == '_' ||
		    c == '.' || c == '~') {
			if (o + 1 >= len)
				return (-1);
			out[o++] = (char)c;
		} else {
			if (o + 3 >= len)
				return (-1);
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 0x0f];
		}
	}
	if (o >= len)
		return (-1);
	out[o] = '\0';
	return (0);
}

/*
 * The page after cursor `after` (NULL: the first).  The URL is always
 * built here from the configuration: a URL the answer names is never
 * fetched, so a response cannot send the token elsewhere.
 */
static int
sync_fetch(struct sync *s, const char *after)
{
	struct sb_http_header	 h[1];
	struct sb_http_request	 r;
	char			 waba[256], cur[3 * CURSOR_MAX + 1];
	char			 path[URL_MAX], url[URL_MAX], auth[2048];
	int			 n, rc = -1;

	if (pct_encode(wa_conf.waba_id, waba, sizeof(waba)) == -1 ||
	    (after != NULL && (strlen(after) > CURSOR_MAX ||
	    pct_encode(after, cur, sizeof(cur)) == -1)))
		goto out;
	n = snprintf(path, sizeof(path), "%s/message_templates?fields="
	    SYNC_FIELDS "&limit=" SYNC_PAGE_SIZE "%s%s", waba,
	    after != NULL ? "&after=" : "", after != NULL ? cur : "");
	if (n < 0 || (size_t)n >= sizeof(path) ||
	    wa_graph_url(url, sizeof(url), path) == -1 ||
	    wa_auth_header(auth, sizeof(auth)) == -1)
		goto out;
	h[0].name = "Authorization";
	h[0].value = auth;
	memset(&r, 0, sizeof(r));
	r.method = "GET";
	r.url = url;
	r.headers = h;
	r.nheaders = 1;
	r.timeout_ms = wa_conf.timeout_ms;
	rc = wa_api->http_send(wa_self, &r, sync_page, s) == SB_OK ? 0 : -1;
out:
	explicit_bzero(auth, sizeof(auth));
	return (rc);
}

/* A template as Graph lists it into the row to write, or NULL when it
 * is malformed. */
static json_t *
tpl_row(json_t *t)
{
	struct shape	 sh;
	json_t		*comps, *params;
	const char	*name, *lang, *status, *cat, *id;

	name = sb_jstr(t, "name");
	lang = sb_jstr(t, "language");
	status = sb_jstr(t, "status");
	cat = sb_jstr(t, "category");
	id = sb_jstr(t, "id");
	if (name == NULL || *name == '\0' || strlen(name) > TPL_NAME_MAX ||
	    lang == NULL || *lang == '\0' || strlen(lang) > TPL_LANG_MAX ||
	    strchr(lang, '\n') != NULL || strchr(name, '\n') != NULL ||
	    status == NULL || *status == '\0' ||
	    strlen(status) > TPL_STATUS_MAX)
		return (NULL);
	if (cat != NULL && strlen(cat) > TPL_STATUS_MAX)
		cat = NULL;
	if (id != NULL && strlen(id) > TPL_ID_MAX)
		id = NULL;
	comps = json_object_get(t, "components");
	if (!json_is_array(comps))
		comps = NULL;
	shape_of(comps, &sh);
	if ((params = shape_params(&sh)) == NULL)
		return (NULL);
	return (json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:o, s:o}",
	    "name", name, "language", lang, "status", status,
	    "category", cat, "id", id,
	    "components", comps != NULL ? json_incref(comps) : json_array(),
	    "params", params));
}

static void
sync_page(struct sb_plugin *p, const struct sb_http_response *res,
    void *arg)
{
	struct sync	*s = arg;
	json_t		*j = NULL, *data, *t, *row, *paging, *result = NULL;
	const char	*after, *gmsg;
	char		 msg[320];
	size_t		 i;

	(void)p;
	s->pages++;
	if (res->status == 0) {
		(void)snprintf(msg, sizeof(msg), "Graph unreachable: %s",
		    res->error != NULL ? res->error : "transport error");
		wa_api->job_retry(s->job, msg, 0);
		goto out;
	}
	if (res->body_len > 0)
		j = json_loadb(res->body, res->body_len, 0, NULL);
	if (res->status == 429 || res->status >= 500) {
		(void)snprintf(msg, sizeof(msg), "Graph answered %d",
		    res->status);
		wa_api->job_retry(s->job, msg, res->retry_after);
		goto out;
	}
	if (res->status < 200 || res->status > 299) {
		gmsg = sb_jstr(json_object_get(j, "error"), "message");
		(void)snprintf(msg, sizeof(msg), "Graph answered %d: %.250s",
		    res->status, gmsg != NULL ? gmsg : "(no error message)");
		wa_api->log(wa_self, SB_LOG_WARN, "template sync: %s", msg);
		wa_api->job_fail(s->job, msg);
		goto out;
	}
	data = json_object_get(j, "data");
	if (!json_is_array(data)) {
		wa_api->job_retry(s->job, "Graph's template list is "
		    "malformed (no data array)", 0);
		goto out;
	}
	json_array_foreach(data, i, t) {
		if ((row = tpl_row(t)) == NULL)
			s->skipped++;
		else
			json_array_append_new(s->seen, row);
	}
	paging = json_object_get(j, "paging");
	if (sb_jstr(paging, "next") != NULL) {
		after = sb_jstr(json_object_get(paging, "cursors"), "after");
		if (after == NULL || *after == '\0') {
			wa_api->job_retry(s->job, "Graph named a next page "
			    "without a cursor", 0);
			goto out;
		}
		if (s->pages >= SYNC_PAGES_MAX) {
			wa_api->log(wa_self, SB_LOG_WARN, "template sync: "
			    "more than %d pages; nothing changed",
			    SYNC_PAGES_MAX);
			wa_api->job_fail(s->job, "more than 100 pages of "
			    "templates: nothing changed");
			goto out;
		}
		if (sync_fetch(s, after) == -1) {
			wa_api->job_fail(s->job, "cannot make the Graph "
			    "request for the next page");
			goto out;
		}
		/* s lives on into the next page's callback. */
		json_decref(j);
		return;
	}
	if (sync_write(s, &result) == -1) {
		wa_api->job_retry(s->job, "database error", 0);
		goto out;
	}
	wa_api->log(wa_self, SB_LOG_INFO, "templates synced: %lld written, "
	    "%lld removed, %u skipped, %u pages",
	    (long long)sb_jint(result, "templates"),
	    (long long)sb_jint(result, "removed"), s->skipped, s->pages);
	wa_api->job_done(s->job, result);
out:
	json_decref(j);
	sync_free(s);
}

/*
 * The complete walk into the table, in one transaction: a template seen
 * twice (the list moved under the walk) is written as last seen.
 */
static int
sync_write(struct sync *s, json_t **result)
{
	const char	*params[1];
	char		*text;
	long long	 written, removed;

	if ((text = json_dumps(s->seen, JSON_COMPACT)) == NULL)
		return (-1);
	params[0] = text;
	if (wa_api->db_begin(wa_self) != SB_OK) {
		free(text);
		return (-1);
	}
	if (sb_db_count(wa_api, wa_self, "SELECT pg_advisory_xact_lock("
	    "hashtext('" SYNC_LOCK "'))", 0, NULL) != 1)
		goto fail;
	written = sb_db_count(wa_api, wa_self, "INSERT INTO "
	    "whatsapp_templates (name, language, status, category, graph_id, "
	    "components, params, synced_at) "
	    "SELECT DISTINCT ON (e->>'name', e->>'language') e->>'name', "
	    "e->>'language', e->>'status', e->>'category', e->>'id', "
	    "e->'components', e->'params', now() "
	    "FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS x(e, i) "
	    "ORDER BY e->>'name', e->>'language', i DESC "
	    "ON CONFLICT (name, language) DO UPDATE SET "
	    "status = EXCLUDED.status, category = EXCLUDED.category, "
	    "graph_id = EXCLUDED.graph_id, components = EXCLUDED.components, "
	    "params = EXCLUDED.params, synced_at = EXCLUDED.synced_at "
	    "RETURNING 1", 1, params);
	if (written == -1)
		goto fail;
	removed = sb_db_count(wa_api, wa_self, "DELETE FROM "
	    "whatsapp_templates WHERE (name, language) NOT IN "
	    "(SELECT e->>'name', e->>'language' FROM "
	    "jsonb_array_elements($1::jsonb) AS e) RETURNING 1", 1, params);
	if (removed == -1 || wa_api->db_commit(wa_self) != SB_OK)
		goto fail;
	free(text);
	*result = json_pack("{s:I, s:I, s:i, s:i}", "templates",
	    (json_int_t)written, "removed", (json_int_t)removed, "pages",
	    (int)s->pages, "skipped", (int)s->skipped);
	return (0);
fail:
	wa_api->db_rollback(wa_self);
	free(text);
	return (-1);
}

/* ---- the check of a send ---- */

int
wa_template_check(struct sb_req *req, const char *name,
    const char *language, json_t *components)
{
	struct sb_db_res	*r;
	struct shape		 sh;
	json_t			*comps = NULL;
	const char		*params[1];
	char			 msg[512];
	size_t			 o;
	int			 i, n, row = -1, rc = -1;

	if (name == NULL || language == NULL) {
		wa_err_field(req, 422, name == NULL ? "name" : "language",
		    "REQUIRED", "a template send names the template and its "
		    "language");
		return (-1);
	}
	params[0] = name;
	r = wa_api->db_query(wa_self, "SELECT language, status, "
	    "components::text FROM whatsapp_templates WHERE name = $1 "
	    "ORDER BY language", 1, params);
	if (!wa_api->db_ok(r)) {
		wa_err_db(req);
		goto out;
	}
	if ((n = wa_api->db_rows(r)) == 0) {
		wa_err_field(req, 422, "name", "NOT_FOUND", "no template has "
		    "this name (sync the templates after adding one)");
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (strcmp(wa_api->db_value(r, i, 0), language) == 0)
			row = i;
	}
	if (row == -1) {
		o = (size_t)snprintf(msg, sizeof(msg), "the template has no "
		    "such language; it has");
		for (i = 0; i < n && o < sizeof(msg); i++)
			o += (size_t)snprintf(msg + o, sizeof(msg) - o, "%s %s",
			    i == 0 ? "" : ",", wa_api->db_value(r, i, 0));
		wa_err_field(req, 422, "language", "NOT_FOUND", msg);
		goto out;
	}
	if (strcmp(wa_api->db_value(r, row, 1), "APPROVED") != 0) {
		(void)snprintf(msg, sizeof(msg), "the template is %s, not "
		    "APPROVED", wa_api->db_value(r, row, 1));
		wa_err_field(req, 422, "name", "NOT_APPROVED", msg);
		goto out;
	}
	if ((comps = json_loads(wa_api->db_value(r, row, 2), 0,
	    NULL)) == NULL) {
		wa_err_db(req);
		goto out;
	}
	shape_of(comps, &sh);
	rc = components_check(req, &sh, components);
out:
	json_decref(comps);
	wa_api->db_free(r);
	return (rc);
}

/* Is word one of the "|"-separated words of list? */
static int
in_list(const char *list, const char *word)
{
	const char	*s = list;
	size_t		 n = strlen(word);

	for (;;) {
		if (strncmp(s, word, n) == 0 && (s[n] == '\0' || s[n] == '|'))
			return (1);
		if ((s = strchr(s, '|')) == NULL)
			return (0);
		s++;
	}
}

/*
 * Parameter p (at position i) of a component `what` ("the body",
 * "button 0") that takes parameters of the types `want`
 * ("text|currency|date_time").  0, or -1 with msg set.
 */
static int
param_check(const char *what, json_t *p, const char *want, size_t i,
    char *msg, size_t len)
{
	const char	*type, *text;
	json_t		*v;

	type = sb_jstr(p, "type");
	if (type == NULL || !in_list("text|currency|date_time|image|"
	    "document|video|payload", type)) {
		(void)snprintf(msg, len, "parameter %zu of %s: type must be "
		    "text, currency, date_time, image, document, video or "
		    "payload", i, what);
		return (-1);
	}
	if (!in_list(want, type)) {
		(void)snprintf(msg, len, "parameter %zu of %s: type must be "
		    "%s", i, what, want);
		return (-1);
	}
	v = json_object_get(p, type);
	if (strcmp(type, "text") == 0) {
		if ((text = json_string_value(v)) == NULL || *text == '\0') {
			(void)snprintf(msg, len, "parameter %zu of %s: text "
			    "must be a non-empty string", i, what);
			return (-1);
		}
	} else if (strcmp(type, "payload") == 0) {
		if (!json_is_string(v)) {
			(void)snprintf(msg, len, "parameter %zu of %s: payload "
			    "must be a string", i, what);
			return (-1);
		}
	} else if (!json_is_object(v)) {
		(void)snprintf(msg, len, "parameter %zu of %s: %s must be an "
		    "object", i, what, type);
		return (-1);
	}
	return (0);
}

static int
components_check(struct sb_req *req, const struct shape *sh,
    json_t *components)
{
	json_t		*c, *ps, *p, *idx;
	const char	*type, *want, *bt;
	char		 msg[256], what[32];
	size_t		 i, k, nps;
	long long	 index;
	int		 header = 0, body = 0, buttons[BUTTONS_MAX];
	int		 expect;

	memset(buttons, 0, sizeof(buttons));
	if (components != NULL && !json_is_null(components) &&
	    !json_is_array(components)) {
		(void)snprintf(msg, sizeof(msg), "components must be an "
		    "array");
		goto bad;
	}
	if (json_array_size(components) > COMPONENTS_MAX) {
		(void)snprintf(msg, sizeof(msg), "at most %d components",
		    COMPONENTS_MAX);
		goto bad;
	}
	json_array_foreach(components, i, c) {
		type = sb_jstr(c, "type");
		ps = json_object_get(c, "parameters");
		if (!json_is_object(c) || type == NULL) {
			(void)snprintf(msg, sizeof(msg), "component %zu must "
			    "be an object with a type", i);
			goto bad;
		}
		if (!json_is_array(ps)) {
			(void)snprintf(msg, sizeof(msg), "component %zu: "
			    "parameters must be an array", i);
			goto bad;
		}
		nps = json_array_size(ps);
		if (strcasecmp(type, "header") == 0) {
			if (header++) {
				(void)snprintf(msg, sizeof(msg), "one header "
				    "component at most");
				goto bad;
			}
			(void)snprintf(what, sizeof(what), "the header");
			expect = sh->header;
			if (sh->header_format == NULL ||
			    strcasecmp(sh->header_format, "TEXT") == 0)
				want = "text";
			else if (strcasecmp(sh->header_format, "IMAGE") == 0)
				want = "image";
			else if (strcasecmp(sh->header_format, "VIDEO") == 0)
				want = "video";
			else
				want = "document";
		} else if (strcasecmp(type, "body") == 0) {
			if (body++) {
				(void)snprintf(msg, sizeof(msg), "one body "
				    "component at most");
				goto bad;
			}
			(void)snprintf(what, sizeof(what), "the body");
			expect = sh->body;
			want = "text|currency|date_time";
		} else if (strcasecmp(type, "button") == 0) {
			idx = json_object_get(c, "index");
			index = -1;
			if (json_is_integer(idx))
				index = json_integer_value(idx);
			else if (json_is_string(idx) &&
			    strlen(json_string_value(idx)) == 1 &&
			    json_string_value(idx)[0] >= '0' &&
			    json_string_value(idx)[0] <= '9')
				index = json_string_value(idx)[0] - '0';
			if (index < 0 || index >= (long long)sh->nbuttons) {
				(void)snprintf(msg, sizeof(msg), "component "
				    "%zu: a button's index must be 0..%d (the "
				    "template has %zu buttons)", i,
				    (int)sh->nbuttons - 1, sh->nbuttons);
				if (sh->nbuttons == 0)
					(void)snprintf(msg, sizeof(msg),
					    "the template has no buttons");
				goto bad;
			}
			if (buttons[index]++) {
				(void)snprintf(msg, sizeof(msg), "button %lld "
				    "is given twice", index);
				goto bad;
			}
			(void)snprintf(what, sizeof(what), "button %lld",
			    index);
			expect = sh->button[index];
			bt = sh->button_type[index];
			want = "text";
			if (bt != NULL && strcasecmp(bt, "QUICK_REPLY") == 0) {
				/* A quick reply may carry its payload. */
				want = "payload";
				if (nps == 1)
					expect = 1;
			}
		} else {
			(void)snprintf(msg, sizeof(msg), "component %zu: type "
			    "must be header, body or button", i);
			goto bad;
		}
		if ((int)nps != expect) {
			(void)snprintf(msg, sizeof(msg), "%s takes %d "
			    "parameter%s, got %zu", what, expect,
			    expect == 1 ? "" : "s", nps);
			goto bad;
		}
		json_array_foreach(ps, k, p) {
			if (param_check(what, p, want, k, msg,
			    sizeof(msg)) == -1)
				goto bad;
		}
	}
	if (!header && sh->header > 0) {
		(void)snprintf(msg, sizeof(msg), "the header takes %d "
		    "parameter%s, got 0", sh->header,
		    sh->header == 1 ? "" : "s");
		goto bad;
	}
	if (!body && sh->body > 0) {
		(void)snprintf(msg, sizeof(msg), "the body takes %d "
		    "parameter%s, got 0", sh->body, sh->body == 1 ? "" : "s");
		goto bad;
	}
	for (k = 0; k < sh->nbuttons; k++) {
		if (!buttons[k] && sh->button[k] > 0) {
			(void)snprintf(msg, sizeof(msg), "button %zu takes %d "
			    "parameter%s, got 0", k, sh->button[k],
			    sh->button[k] == 1 ? "" : "s");
			goto bad;
		}
	}
	return (0);
bad:
	wa_err_field(req, 422, "components", "INVALID", msg);
	return (-1);
}
