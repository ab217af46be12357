/*
 * What the SMS core and the call core share (tel.h): the routing over
 * the providers, phone numbers, answers, list filters and the
 * verification of provider webhooks.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <switchboard/plugin.h>
#include <switchboard/helpers.h>

#include "tel.h"
#include "sms.h"

const struct sb_host_api		*tel_api;
struct sb_plugin			*tel_self;
const struct sb_customers_directory	*tel_dir;

#define api	tel_api
#define self	tel_self

static const char	*routing;
static const char	*country;

/* Every provider this build has, in no particular order: routing picks. */
const struct tel_provider *const tel_providers[] = { &tel_twilio,
	&tel_exotel, NULL };

int
tel_core_init(struct sb_plugin *p, const struct sb_host_api *host)
{
	char	err[160];

	tel_api = host;
	tel_self = p;
	routing = api->config_get(p, "routing");
	if (routing == NULL)
		routing = "";
	if (tel_route_parse(routing, err, sizeof(err)) == -1) {
		api->log(p, SB_LOG_ERROR, "%s", err);
		return (SB_ERROR);
	}
	country = api->config_get(p, "default_country");
	if (country != NULL && *country == '\0')
		country = NULL;
	return (SB_OK);
}

/* ---- providers and routing ---- */

const struct tel_provider *
tel_provider_find(const char *name, size_t len)
{
	size_t	i;

	for (i = 0; tel_providers[i] != NULL; i++)
		if (strlen(tel_providers[i]->name) == len &&
		    strncmp(tel_providers[i]->name, name, len) == 0)
			return (tel_providers[i]);
	return (NULL);
}

int
tel_provider_ready(const struct tel_provider *tp, unsigned int chan)
{
	const char	*missing;

	return (tp != NULL && (tp->channels & chan) &&
	    tp->configured(&missing));
}

int
tel_candidates(const char *channel, const char *explicit, const char *e164,
    char *out, size_t len)
{
	if (explicit != NULL) {
		if ((size_t)snprintf(out, len, "%s", explicit) >= len)
			return (-1);
		return (0);
	}
	return (tel_route_lookup(routing, channel, e164, out, len));
}

const char *
tel_from_number(const char *provider)
{
	const struct tel_provider	*tp;
	const char			*f;

	tp = provider != NULL ? tel_provider_find(provider, strlen(provider)) :
	    NULL;
	if (tp == NULL || tp->from_number == NULL ||
	    (f = tp->from_number()) == NULL || *f == '\0')
		return (NULL);
	return (f);
}

int
tel_any_ready(const char *list, unsigned int chan)
{
	const char	*s, *e;

	for (s = list; *s != '\0'; s = *e == ',' ? e + 1 : e) {
		e = s + strcspn(s, ",");
		if (tel_provider_ready(tel_provider_find(s, (size_t)(e - s)),
		    chan))
			return (1);
	}
	return (0);
}

/* ---- numbers ---- */

int
tel_normalise(const char *in, char *out, size_t len)
{
	return (api->phone_e164(self, in, country, out, len));
}

char *
tel_phone_index(const char *e164)
{
	return (api->blind_index(self, "phone", e164, strlen(e164)));
}

/* ---- answers ---- */

void
tel_err_field(struct sb_req *req, int status, const char *field,
    const char *code, const char *msg)
{
	api->respond_error(req, status, "VALIDATION_ERROR", msg,
	    sb_field_error(field, code, msg));
}

void
tel_err_db(struct sb_req *req)
{
	api->respond_error(req, 500, "INTERNAL", "database error", NULL);
}

void
tel_twiml(struct sb_req *req, const char *xml)
{
	api->respond_raw(req, 200, "text/xml", xml, strlen(xml));
}

/* The fast answer to a provider's webhook: empty TwiML for Twilio, an
 * empty 200 for the others. */
void
tel_hook_ok(struct sb_req *req, const char *prov)
{
	if (strcmp(prov, "twilio") == 0)
		tel_twiml(req, TEL_TWIML_EMPTY);
	else
		api->respond_raw(req, 200, "text/plain", "", 0);
}

/* ---- rows and filters ---- */

void
tel_unseal_into(json_t *row, const char *col, const char *key)
{
	sb_unseal_into(api, self, row, col, key);
}

/* "2026-12-07" or an RFC 3339 time. */
int
tel_looks_like_time(const char *s)
{
	return (strlen(s) >= 10 && s[4] == '-' && s[7] == '-' &&
	    s[0] >= '0' && s[0] <= '9');
}

int
tel_enum_ok(const char *v, const char *const *choices)
{
	for (; *choices != NULL; choices++)
		if (strcmp(v, *choices) == 0)
			return (1);
	return (0);
}

/*
 * The filters `from` and `to` take a time (a date or RFC 3339: created
 * at or after / before) or a phone number (the item's own from/to,
 * matched by blind index).
 */
int
tel_filter_fromto(struct sb_req *req, const char *name, const char **time,
    char **index)
{
	const char	*v = api->req_query(req, name);
	char		 e164[32];

	*time = NULL;
	*index = NULL;
	if (v == NULL || *v == '\0')
		return (0);
	if (strlen(v) > 64) {
		tel_err_field(req, 400, name, "TOO_LONG", "at most 64 "
		    "characters");
		return (-1);
	}
	if (tel_looks_like_time(v)) {
		*time = v;
		return (0);
	}
	if (tel_normalise(v, e164, sizeof(e164)) != SB_OK) {
		tel_err_field(req, 400, name, "INVALID_FORMAT", "neither a time "
		    "nor a phone number");
		return (-1);
	}
	*index = tel_phone_index(e164);
	explicit_bzero(e164, sizeof(e164));
	if (*index == NULL) {
		api->respond_error(req, 503, "UNAVAILABLE", "no data key",
		    NULL);
		return (-1);
	}
	return (0);
}

int
tel_filter_id(struct sb_req *req, const char *name, const char **out)
{
	const char	*v = api->req_query(req, name);

	*out = NULL;
	if (v == NULL || *v == '\0')
		return (0);
	if ((*out = sb_positive_id(v)) == NULL) {
		tel_err_field(req, 400, name, "INVALID_FORMAT", "not a positive "
		    "integer");
		return (-1);
	}
	return (0);
}

/*
 * The `status` and `provider` filters of a list, checked against their
 * choices: NULL when absent; -1 after answering 400.
 */
int
tel_filter_enums(struct sb_req *req, const char *const *statuses,
    const char *const *providers, const char **status, const char **provider)
{
	*status = api->req_query(req, "status");
	*provider = api->req_query(req, "provider");
	if (*status != NULL && **status == '\0')
		*status = NULL;
	if (*provider != NULL && **provider == '\0')
		*provider = NULL;
	if (*status != NULL && !tel_enum_ok(*status, statuses)) {
		tel_err_field(req, 400, "status", "INVALID_VALUE", "not one of "
		    "the statuses");
		return (-1);
	}
	if (*provider != NULL && !tel_enum_ok(*provider, providers)) {
		tel_err_field(req, 400, "provider", "INVALID_VALUE", "not a "
		    "provider");
		return (-1);
	}
	return (0);
}

int
tel_stats_bounds(struct sb_req *req, const char **from, const char **to)
{
	struct sb_db_res	*r;
	const char		*params[2], *bad = NULL;

	*from = api->req_query(req, "from");
	*to = api->req_query(req, "to");
	if (*from != NULL && **from == '\0')
		*from = NULL;
	if (*to != NULL && **to == '\0')
		*to = NULL;
	if (*from != NULL && (strlen(*from) > 40 ||
	    !tel_looks_like_time(*from)))
		bad = "from";
	else if (*to != NULL && (strlen(*to) > 40 || !tel_looks_like_time(*to)))
		bad = "to";
	if (bad == NULL) {
		params[0] = *from;
		params[1] = *to;
		r = api->db_query(self, "SELECT $1::text::timestamptz IS NULL, "
		    "$2::text::timestamptz IS NULL", 2, params);
		if (!api->db_ok(r)) {
			const char *st = api->db_sqlstate(r);

			api->db_free(r);
			if (st == NULL || strncmp(st, "22", 2) != 0) {
				tel_err_db(req);
				return (-1);
			}
			bad = "from";
			/* Which one?  Ask again with `from` alone. */
			r = api->db_query(self, "SELECT $1::text::timestamptz",
			    1, params);
			if (api->db_ok(r))
				bad = "to";
		}
		api->db_free(r);
	}
	if (bad != NULL) {
		tel_err_field(req, 400, bad, "INVALID_FORMAT", "a date "
		    "(YYYY-MM-DD) or RFC 3339 time");
		return (-1);
	}
	return (0);
}

int
tel_sid_lock(const char *what, const char *provider, const char *id)
{
	const char	*params[3] = { what, provider, id };

	return (sb_db_count(api, self, "SELECT pg_advisory_xact_lock("
	    "hashtext($1 || ':' || $2 || ':' || $3))", 3, params) == 1 ? 0 : -1);
}

/* ---- messages and calls: loading, events, the room, budgets ---- */

/*
 * The SQL of each kind of item: its events table and the item's column
 * there.  Constants only: nothing from a request is spliced into SQL.
 */
static const struct kind {
	const char	*name;
	const char	*events_sql;
	const char	*event_add_sql;
} kinds[] = {
	{ "sms",
	  "SELECT coalesce(json_agg(json_strip_nulls(json_build_object("
	  "'status', status, 'at', " SB_SQL_TS("at") ", 'detail', detail)) "
	  "ORDER BY id), '[]')::text FROM telephony_sms_events WHERE "
	  "sms_id = $1::bigint",
	  "INSERT INTO telephony_sms_events (sms_id, status, detail, callback) "
	  "VALUES ($1::bigint, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING id" },
	{ "call",
	  "SELECT coalesce(json_agg(json_strip_nulls(json_build_object("
	  "'status', status, 'at', " SB_SQL_TS("at") ", 'detail', detail)) "
	  "ORDER BY id), '[]')::text FROM telephony_call_events WHERE "
	  "call_id = $1::bigint",
	  "INSERT INTO telephony_call_events (call_id, status, detail, "
	  "callback) VALUES ($1::bigint, $2, $3, $4) ON CONFLICT DO NOTHING "
	  "RETURNING id" },
};

static const struct kind *
kind_of(const char *name)
{
	return (strcmp(name, "call") == 0 ? &kinds[1] : &kinds[0]);
}

json_t *
tel_item_load(const char *kind, const char *select_sql, const char *id,
    int events, json_t *(*to_json)(json_t *), int *dberr)
{
	struct sb_db_res	*r;
	const char		*params[1] = { id };
	json_t			*m, *ev;

	*dberr = 0;
	r = api->db_query(self, select_sql, 1, params);
	if (!api->db_ok(r) || api->db_rows(r) != 1) {
		*dberr = !api->db_ok(r);
		api->db_free(r);
		return (NULL);
	}
	m = to_json(api->db_row_json(r, 0));
	api->db_free(r);
	if (m == NULL || !events)
		return (m);
	if ((ev = sb_db_json(api, self, kind_of(kind)->events_sql, 1,
	    params)) == NULL) {
		json_decref(m);
		*dberr = 1;
		return (NULL);
	}
	json_object_set_new(m, "events", ev);
	return (m);
}

int
tel_event_add(const char *kind, const char *id, const char *status,
    const char *detail, const char *callback, int *added)
{
	struct sb_db_res	*r;
	const char		*params[4];
	int			 ok;

	params[0] = id;
	params[1] = status;
	params[2] = detail;
	params[3] = callback;
	r = api->db_query(self, kind_of(kind)->event_add_sql, 4, params);
	ok = api->db_ok(r);
	if (added != NULL)
		*added = ok && api->db_rows(r) == 1;
	api->db_free(r);
	return (ok ? 0 : -1);
}

/* The room sees no numbers or bodies: clients GET the item. */
void
tel_publish(const char *name, json_t *m)
{
	json_t	*e;

	if ((e = json_copy(m)) == NULL)
		return;
	json_object_del(e, "to");
	json_object_del(e, "from");
	json_object_del(e, "body");
	json_object_del(e, "events");
	(void)api->publish_room(self, TEL_ROOM, name, 1, e);
	json_decref(e);
}

int
tel_rate_ok(struct sb_req *req, const char *what, unsigned int per_minute,
    const char *who, const char *index, const char *message)
{
	char		 key[160], ra[16];
	unsigned int	 retry = 0;

	if (per_minute == 0)
		return (1);
	(void)snprintf(key, sizeof(key), "telephony:%s:user:%s", what, who);
	if (api->rate_hit(self, key, per_minute, 60, &retry) == 0) {
		(void)snprintf(key, sizeof(key), "telephony:%s:to:%s", what,
		    index);
		if (api->rate_hit(self, key, per_minute, 60, &retry) == 0)
			return (1);
	}
	(void)snprintf(ra, sizeof(ra), "%u", retry > 0 ? retry : 1);
	api->resp_header(req, "Retry-After", ra);
	api->respond_error(req, 429, "RATE_LIMITED", message, NULL);
	return (0);
}

/* ---- webhooks ---- */

static int
form_put(const char *name, const char *value, void *arg)
{
	return (json_object_set_new(arg, name, json_string(value)) == 0 ?
	    0 : -1);
}

/* A form body as an object of strings, or NULL after answering 400. */
static json_t *
form_json(struct sb_req *req, const void *body, size_t len)
{
	json_t	*f;

	if ((f = json_object()) == NULL) {
		tel_err_db(req);
		return (NULL);
	}
	if (tel_form_parse(body, len, 256, form_put, f) == -1) {
		json_decref(f);
		api->respond_error(req, 400, "VALIDATION_ERROR", "not a form "
		    "body", NULL);
		return (NULL);
	}
	return (f);
}

/*
 * The URL Twilio signed: the public base URL (behind a proxy) + the
 * path, else http://<Host><path> as received.
 */
static void
hook_url(struct sb_req *req, char *url, size_t len)
{
	const char	*host;

	if (tel_public_url_for(self, api, api->req_path(req), url, len) == -1) {
		host = api->req_header(req, "host");
		(void)snprintf(url, len, "http://%s%s", host != NULL ? host :
		    "", api->req_path(req));
	}
}

json_t *
tel_twilio_hook(struct sb_req *req)
{
	const char	*sig, *acct, *mine;
	const void	*body;
	char		 url[1024];
	size_t		 len;
	json_t		*f;

	mine = api->config_get(self, "twilio_auth_token");
	if (mine == NULL || *mine == '\0') {
		/* Nothing can be verified: nothing is read. */
		api->respond_error(req, 503, "UNAVAILABLE", "Twilio is not "
		    "configured", NULL);
		return (NULL);
	}
	body = api->req_body(req, &len);
	sig = api->req_header(req, "x-twilio-signature");
	if (sig == NULL || *sig == '\0') {
		api->respond_error(req, 401, "UNAUTHENTICATED", "missing "
		    "X-Twilio-Signature", NULL);
		return (NULL);
	}
	hook_url(req, url, sizeof(url));
	if (!tel_twilio_verify(url, body, len, sig)) {
		api->respond_error(req, 403, "FORBIDDEN", "bad "
		    "X-Twilio-Signature", NULL);
		return (NULL);
	}
	if ((f = form_json(req, body, len)) == NULL)
		return (NULL);
	acct = sb_jstr(f, "AccountSid");
	mine = api->config_get(self, "twilio_account_sid");
	if (acct != NULL && mine != NULL && strcmp(acct, mine) != 0) {
		/* Signed with our token but for another account: ignore. */
		json_decref(f);
		tel_twiml(req, TEL_TWIML_EMPTY);
		return (NULL);
	}
	return (f);
}

json_t *
tel_exotel_hook(struct sb_req *req)
{
	const void	*body;
	const char	*ct;
	size_t		 len;
	json_t		*j, *v;
	const char	*k;

	/* The path token is the only check: nothing is read without it. */
	if (!tel_exotel_token_ok(api->req_param(req, "token"))) {
		api->respond_error(req, 404, "NOT_FOUND", "no such webhook",
		    NULL);
		return (NULL);
	}
	body = api->req_body(req, &len);
	ct = api->req_header(req, "content-type");
	if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0)
		return (form_json(req, body, len));
	/* StatusCallbackContentType=application/json: the top level's
	 * scalars as strings, as a form would have them; Legs kept. */
	j = json_loadb(body, len, 0, NULL);
	if (!json_is_object(j)) {
		json_decref(j);
		api->respond_error(req, 400, "VALIDATION_ERROR", "not a JSON "
		    "object", NULL);
		return (NULL);
	}
	json_object_foreach(j, k, v) {
		char	num[32];

		if (json_is_integer(v)) {
			(void)snprintf(num, sizeof(num), "%lld",
			    (long long)json_integer_value(v));
			json_object_set_new(j, k, json_string(num));
		} else if (json_is_real(v)) {
			(void)snprintf(num, sizeof(num), "%.0f",
			    json_real_value(v));
			json_object_set_new(j, k, json_string(num));
		} else if (json_is_null(v))
			json_object_set_new(j, k, json_string(""));
	}
	return (j);
}
