/*
 * The audit plugin: an append-only, hash-chained record of who did what.
 *
 * It subscribes to every event on the bus (the host's security events and
 * every plugin's) and, in the one worker that published the event
 * (ev->local), appends a row to audit_log: the actor, the action (the
 * event name), the target, the request id and client address, and the
 * payload with secrets scrubbed.  Chaining (id, prev_hash, hash) happens
 * in the database, in a BEFORE INSERT trigger under an advisory lock, so
 * any number of workers and nodes can append at once; UPDATE, DELETE and
 * TRUNCATE are refused by triggers (migrations/001_audit.sql).
 *
 * Routes: GET /api/v1/audit (filters, cursor pagination, newest first)
 * and GET /api/v1/audit/verify (walks the chain in id order, recomputing
 * every hash in the database, a page at a time).
 */

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <switchboard/plugin.h>

#define AUDIT_DETAILS_MAX	(64 * 1024)	/* bytes of details kept */
#define AUDIT_SCRUB_DEPTH	32		/* deeper values are cut */
#define AUDIT_LIMIT_DEFAULT	50
#define AUDIT_LIMIT_MAX		200
#define AUDIT_VERIFY_PAGE	"1000"
#define AUDIT_TARGET_MAX	512
#define AUDIT_ACTION_MAX	128
#define AUDIT_REDACTED		"[REDACTED]"
#define AUDIT_GENESIS		\
	"0000000000000000000000000000000000000000000000000000000000000000"

static const struct sb_host_api	*api;
static unsigned long		 recorded;	/* per worker */
static unsigned long		 failed;	/* per worker */

static void	audit_list(struct sb_req *);
static void	audit_verify(struct sb_req *);
static void	audit_on_event(struct sb_plugin *, const struct sb_event *,
		    void *);
static json_t	*audit_scrub(json_t *, int);

/*
 * Key names whose values are never stored: a key is dropped when its
 * name, lowercased, is or ends with one of these ("api_key",
 * "refreshToken", "X-Auth-Token", "password_hash").  Deliberately blunt:
 * a dropped "monkey" costs a detail, a missed secret is a leak.  Names
 * that merely contain a word ("key_id", "token_type", "prefix") stay:
 * they identify or describe a credential, they do not prove one.
 */
static const char *const secret_suffixes[] = {
	"password", "passwords", "passwd", "secret", "secrets", "token",
	"tokens", "key", "keys", "hash", "hashes", "authorization",
	"cookie", "cookies", "credential", "credentials", NULL
};

static const struct sb_route routes[] = {
	{ .method = "GET", .path = "/api/v1/audit",
	  .permission = "audit.read", .handler = audit_list,
	  .summary = "List audit records, newest first (filters: actor_id, "
	  "action, target, from, to; limit, cursor)",
	  .response_schema = "{\"type\":\"object\",\"properties\":{"
	  "\"data\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}},"
	  "\"next_cursor\":{\"type\":[\"string\",\"null\"]}}}" },
	{ .method = "GET", .path = "/api/v1/audit/verify",
	  .permission = "audit.read", .handler = audit_verify,
	  .summary = "Recompute the audit hash chain",
	  .response_schema = "{\"type\":\"object\",\"properties\":{"
	  "\"ok\":{\"type\":\"boolean\"},"
	  "\"checked\":{\"type\":\"integer\"},"
	  "\"first_bad_id\":{\"type\":[\"integer\",\"null\"]}}}" },
	SB_ROUTE_END
};

static int
audit_setup(struct sb_plugin *p, const struct sb_host_api *host)
{
	api = host;
	if (api->permission_add(p, "audit.read", "Read and verify the audit "
	    "log") != SB_OK ||
	    api->routes_add(p, routes) != SB_OK ||
	    api->migrations_add(p, "migrations") != SB_OK ||
	    api->subscribe(p, "*", audit_on_event, NULL) != SB_OK)
		return (SB_ERROR);
	return (SB_OK);
}

static int
audit_init(struct sb_plugin *p)
{
	(void)p;
	recorded = failed = 0;
	return (SB_OK);
}

static int
audit_health(struct sb_plugin *p, json_t *detail)
{
	struct sb_db_res	*r;
	const char		*last;
	int			 rc;

	r = api->db_query(p, "SELECT max(id) FROM audit_log", 0, NULL);
	rc = api->db_ok(r) ? SB_OK : SB_ERROR;
	last = api->db_value(r, 0, 0);
	json_object_set_new(detail, "last_id", last != NULL ?
	    json_integer(strtoll(last, NULL, 10)) : json_null());
	json_object_set_new(detail, "recorded", json_integer(
	    (json_int_t)recorded));
	json_object_set_new(detail, "failed", json_integer(
	    (json_int_t)failed));
	api->db_free(r);
	return (rc);
}

/* --- Scrubbing ------------------------------------------------------- */

static int
secret_name(const char *key)
{
	const char *const	*s;
	size_t			 klen, slen, i;

	klen = strlen(key);
	for (s = secret_suffixes; *s != NULL; s++) {
		slen = strlen(*s);
		if (slen > klen)
			continue;
		for (i = 0; i < slen; i++) {
			if (tolower((unsigned char)key[klen - slen + i]) !=
			    (*s)[i])
				break;
		}
		if (i == slen)
			return (1);
	}
	return (0);
}

static int
b64url_char(char c)
{
	return (isalnum((unsigned char)c) || c == '-' || c == '_');
}

/*
 * Does s carry a credential by its shape: a JWT anywhere in it ("eyJ",
 * the base64url of '{"', then two dot-separated base64url segments) or
 * an Authorization header value ("Bearer <one word of 8+ characters>",
 * "Basic ..." alike; "Basic plan" stays).
 */
static int
secret_value(const char *s)
{
	const char	*p, *q;
	size_t		 n;

	p = NULL;
	if (strncasecmp(s, "bearer ", 7) == 0)
		p = s + 7;
	else if (strncasecmp(s, "basic ", 6) == 0)
		p = s + 6;
	if (p != NULL) {
		p += strspn(p, " ");
		n = strcspn(p, " \t\r\n");
		if (n >= 8 && p[n] == '\0')
			return (1);
	}
	for (p = strstr(s, "eyJ"); p != NULL; p = strstr(p + 1, "eyJ")) {
		for (q = p, n = 0; b64url_char(*q); q++)
			n++;
		if (n < 10 || *q != '.')
			continue;
		for (q++, n = 0; b64url_char(*q); q++)
			n++;
		if (n >= 8)
			return (1);
	}
	return (0);
}

/* A text column's value: NULL stays NULL, a secret-looking one is
 * replaced. */
static const char *
scrub_text(const char *s)
{
	return (s != NULL && secret_value(s) ? AUDIT_REDACTED : s);
}

/* A string for jsonb: NUL bytes (which jsonb refuses) removed. */
static json_t *
scrub_string(json_t *v)
{
	const char	*s;
	char		*copy;
	size_t		 len, i, o;
	json_t		*out;

	s = json_string_value(v);
	len = json_string_length(v);
	if (secret_value(s))
		return (json_string(AUDIT_REDACTED));
	if (memchr(s, '\0', len) == NULL)
		return (json_incref(v));
	if ((copy = malloc(len + 1)) == NULL)
		return (json_string(AUDIT_REDACTED));
	for (i = o = 0; i < len; i++) {
		if (s[i] != '\0')
			copy[o++] = s[i];
	}
	copy[o] = '\0';
	out = json_stringn(copy, o);
	free(copy);
	return (out != NULL ? out : json_string(AUDIT_REDACTED));
}

/*
 * A scrubbed deep copy of v (a new reference): keys with secret names
 * dropped at any depth, secret-looking strings replaced, values deeper
 * than AUDIT_SCRUB_DEPTH cut.
 */
static json_t *
audit_scrub(json_t *v, int depth)
{
	json_t		*out, *item, *copy;
	const char	*key;
	size_t		 i;

	if (depth > AUDIT_SCRUB_DEPTH)
		return (json_string("[TOO DEEP]"));
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		out = json_object();
		json_object_foreach(v, key, item) {
			if (secret_name(key) || secret_value(key))
				continue;
			if ((copy = audit_scrub(item, depth + 1)) != NULL)
				json_object_set_new(out, key, copy);
		}
		return (out);
	case JSON_ARRAY:
		out = json_array();
		json_array_foreach(v, i, item) {
			if ((copy = audit_scrub(item, depth + 1)) != NULL)
				json_array_append_new(out, copy);
		}
		return (out);
	case JSON_STRING:
		return (scrub_string(v));
	default:
		return (json_incref(v));
	}
}

/* --- Recording ------------------------------------------------------- */

static const char *
actor_type(enum sb_actor kind)
{
	switch (kind) {
	case SB_ACTOR_USER:
		return ("user");
	case SB_ACTOR_API_KEY:
		return ("api_key");
	case SB_ACTOR_DONOR:
		return ("donor");
	case SB_ACTOR_SYSTEM:
		return ("system");
	default:
		return ("anonymous");
	}
}

/*
 * The target the publisher named in data.target (scrubbed), copied into
 * buf: a string, cut to fit on a character boundary, or an integer as
 * text.  NULL when there is none (or it is empty).
 */
static const char *
event_target(json_t *details, char *buf, size_t len)
{
	json_t		*t;
	const char	*s;
	size_t		 n;

	t = json_object_get(details, "target");
	if (json_is_integer(t)) {
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT,
		    json_integer_value(t));
		return (buf);
	}
	if (!json_is_string(t) || *(s = json_string_value(t)) == '\0')
		return (NULL);
	if ((n = strlen(s)) >= len) {
		n = len - 1;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;	/* not inside a UTF-8 sequence */
	}
	memcpy(buf, s, n);
	buf[n] = '\0';
	return (buf);
}

static void
audit_on_event(struct sb_plugin *p, const struct sb_event *ev, void *arg)
{
	const struct sb_principal	*who;
	struct sb_db_res		*r;
	json_t				*details;
	char				*text;
	const char			*params[12], *target;
	char				 at[32], aid[32];
	char				 tbuf[AUDIT_TARGET_MAX + 1];

	(void)arg;
	if (!ev->local)
		return;		/* another worker records it */

	who = ev->actor;
	details = json_is_object(ev->data) ? audit_scrub(ev->data, 0) :
	    json_object();
	target = event_target(details, tbuf, sizeof(tbuf));
	text = details != NULL ? json_dumps(details, JSON_COMPACT) : NULL;
	if (text != NULL && strlen(text) > AUDIT_DETAILS_MAX) {
		/* Kept small on purpose: the row says how much was cut. */
		json_decref(details);
		details = json_pack("{s:b, s:I}", "truncated", 1, "bytes",
		    (json_int_t)strlen(text));
		free(text);
		text = details != NULL ? json_dumps(details, JSON_COMPACT) :
		    NULL;
	}

	snprintf(at, sizeof(at), "%lld", (long long)ev->published_at);
	aid[0] = '\0';
	if (who != NULL && (who->kind == SB_ACTOR_USER ||
	    who->kind == SB_ACTOR_API_KEY) && who->id > 0)
		snprintf(aid, sizeof(aid), "%lld", (long long)who->id);

	params[0] = ev->id;
	params[1] = ev->source != NULL ? ev->source : "host";
	params[2] = at;
	params[3] = actor_type(who != NULL ? who->kind : SB_ACTOR_SYSTEM);
	params[4] = aid[0] != '\0' ? aid : NULL;
	params[5] = who != NULL ? scrub_text(who->name) : NULL;
	params[6] = who != NULL && who->kind == SB_ACTOR_DONOR ?
	    scrub_text(who->donor_id) : NULL;
	params[7] = ev->name;
	params[8] = target;
	params[9] = scrub_text(ev->request_id);	/* a client may choose it */
	params[10] = ev->ip;
	params[11] = text != NULL ? text : "{}";

	/* A retried insert (the host retries once after a reconnect) finds
	 * the event id taken and adds nothing. */
	r = api->db_query(p, "INSERT INTO audit_log (event_id, source, time, "
	    "actor_type, actor_id, actor_name, donor_id, action, target, "
	    "request_id, ip, details) VALUES ($1, $2, 'epoch'::timestamptz + "
	    "$3::bigint * interval '1 millisecond', $4, $5::bigint, $6, $7, "
	    "$8, $9, $10, $11, $12::jsonb) ON CONFLICT (event_id) DO NOTHING",
	    12, params);
	if (api->db_ok(r)) {
		recorded++;
	} else {
		failed++;
		api->log(p, SB_LOG_ERROR, "cannot record event %s (%s): %s",
		    ev->id, ev->name, api->db_sqlstate(r) != NULL ?
		    api->db_sqlstate(r) : "?");
	}
	api->db_free(r);
	free(text);
	json_decref(details);
}

/* --- Query parameters ------------------------------------------------ */

static void
field_error(json_t *errors, const char *field, const char *code,
    const char *message)
{
	json_array_append_new(errors, json_pack("{s:s, s:s, s:s}", "field",
	    field, "code", code, "message", message));
}

/* A positive decimal integer of at most 18 digits, or -1. */
static long long
parse_id(const char *s)
{
	size_t	i;

	if (s[0] < '1' || s[0] > '9' || strlen(s) > 18)
		return (-1);
	for (i = 0; s[i] != '\0'; i++) {
		if (!isdigit((unsigned char)s[i]))
			return (-1);
	}
	return (strtoll(s, NULL, 10));
}

/* The value of n decimal digits at s, or -1. */
static int
digits(const char *s, int n)
{
	int	i, v;

	for (i = v = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return (-1);
		v = v * 10 + (s[i] - '0');
	}
	return (v);
}

/*
 * An RFC 3339 date-time (YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM))
 * checked field by field, copied into out for PostgreSQL.  A space where
 * the offset's sign goes is read as '+': an unescaped '+' in a query
 * string decodes to a space.
 */
static int
parse_time(const char *s, char *out, size_t outlen)
{
	static const int	mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30,
				    31, 30, 31 };
	int			y, mo, d, h, mi, sec, dim, oh, om;
	size_t			len, i;

	len = strlen(s);
	if (len < 20 || len >= outlen)
		return (-1);
	if ((y = digits(s, 4)) < 1 || s[4] != '-' ||
	    (mo = digits(s + 5, 2)) < 1 || mo > 12 || s[7] != '-' ||
	    (d = digits(s + 8, 2)) < 1 ||
	    (s[10] != 'T' && s[10] != 't') ||
	    (h = digits(s + 11, 2)) < 0 || h > 23 || s[13] != ':' ||
	    (mi = digits(s + 14, 2)) < 0 || mi > 59 || s[16] != ':' ||
	    (sec = digits(s + 17, 2)) < 0 || sec > 60)
		return (-1);
	dim = mdays[mo - 1];
	if (mo == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		dim = 29;
	if (d > dim)
		return (-1);
	i = 19;
	if (s[i] == '.') {
		for (i++; isdigit((unsigned char)s[i]); i++)
			;
		if (i == 20 || i > 29)
			return (-1);
	}
	memcpy(out, s, len + 1);
	if ((s[i] == 'Z' || s[i] == 'z') && s[i + 1] == '\0')
		return (0);
	if ((s[i] != '+' && s[i] != '-' && s[i] != ' ') || len != i + 6 ||
	    (oh = digits(s + i + 1, 2)) < 0 || oh > 23 || s[i + 3] != ':' ||
	    (om = digits(s + i + 4, 2)) < 0 || om > 59)
		return (-1);
	if (out[i] == ' ')
		out[i] = '+';
	return (0);
}

/* An event name or a prefix of one: [a-z0-9._-]. */
static int
action_chars(const char *s, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++) {
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return (0);
	}
	return (1);
}

/* --- Cursors ---------------------------------------------------------- */

/*
 * A cursor is base64url (no padding) of "<last id>.<check>", check being
 * the FNV-1a 32-bit hash of "audit:<last id>" in hex.  It is opaque to
 * clients and not a secret: the check only makes an edited or truncated
 * cursor a 400 instead of a silent jump to another place in the log.
 */
static const char	b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static uint32_t
fnv1a32(const char *s)
{
	uint32_t	h = 2166136261U;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619U;
	}
	return (h);
}

static void
cursor_make(long long id, char *out, size_t outlen)
{
	char		plain[64], tagged[48];
	size_t		len, i, o;
	uint32_t	v;

	snprintf(tagged, sizeof(tagged), "audit:%lld", id);
	len = (size_t)snprintf(plain, sizeof(plain), "%lld.%08" PRIx32, id,
	    fnv1a32(tagged));
	for (i = o = 0; i < len && o + 5 < outlen; i += 3) {
		v = (uint32_t)(unsigned char)plain[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)(unsigned char)plain[i + 1] << 8;
		if (i + 2 < len)
			v |= (unsigned char)plain[i + 2];
		out[o++] = b64url[(v >> 18) & 63];
		out[o++] = b64url[(v >> 12) & 63];
		if (i + 1 < len)
			out[o++] = b64url[(v >> 6) & 63];
		if (i + 2 < len)
			out[o++] = b64url[v & 63];
	}
	out[o] = '\0';
}

/* The id a cursor stands for, or -1 when it is not one we made. */
static long long
cursor_parse(const char *s)
{
	char		plain[64], again[96], *dot;
	const char	*c;
	size_t		len, i, o;
	uint32_t	v;
	int		n, bits;
	long long	id;

	len = strlen(s);
	if (len == 0 || len > 80 || len % 4 == 1)
		return (-1);
	v = 0;
	bits = 0;
	for (i = o = 0; i < len; i++) {
		if ((c = strchr(b64url, s[i])) == NULL || s[i] == '\0')
			return (-1);
		v = (v << 6) | (uint32_t)(c - b64url);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o + 1 >= sizeof(plain))
				return (-1);
			plain[o++] = (char)((v >> bits) & 0xff);
		}
	}
	plain[o] = '\0';
	if (strlen(plain) != o || (dot = strchr(plain, '.')) == NULL)
		return (-1);
	*dot = '\0';
	if ((id = parse_id(plain)) == -1)
		return (-1);
	/* Canonical: exactly what cursor_make() writes for that id. */
	cursor_make(id, again, sizeof(again));
	n = strcmp(again, s);
	return (n == 0 ? id : -1);
}

/* --- GET /api/v1/audit ------------------------------------------------ */

/*
 * Appends " WHERE <lhs>$<n><cast>" (" AND ..." after the first) to sql,
 * n being the next parameter number, and binds value to it.  The clause
 * texts are fixed strings: input only ever travels as a bound parameter.
 */
static void
add_clause(char *sql, size_t len, const char **params, int *n,
    const char *lhs, const char *cast, const char *value)
{
	size_t	used;

	used = strlen(sql);
	snprintf(sql + used, len - used, "%s%s$%d%s",
	    *n == 0 ? " WHERE " : " AND ", lhs, *n + 1, cast);
	params[(*n)++] = value;
}

static void
audit_list(struct sb_req *req)
{
	struct sb_plugin	*p = api->req_plugin(req);
	struct sb_db_res	*r;
	json_t			*errors, *data, *row;
	const char		*v, *params[10], *state;
	char			 sql[1024], from[40], to[40], prefix[160];
	char			 upper[160], limit_s[16], cursor_s[24];
	char			 next[96];
	long long		 limit, id;
	size_t			 len;
	int			 n, rows, i;

	errors = json_array();
	n = 0;
	snprintf(sql, sizeof(sql), "SELECT a.id, to_char(a.time AT TIME ZONE "
	    "'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS \"time\", "
	    "a.actor_type, a.actor_id, a.actor_name, a.donor_id, a.action, "
	    "a.target, a.request_id, a.ip, a.details, a.hash, a.prev_hash "
	    "FROM audit_log a");

	if ((v = api->req_query(req, "actor_id")) != NULL) {
		if (parse_id(v) == -1)
			field_error(errors, "actor_id", "INVALID_FORMAT",
			    "actor_id must be a positive integer");
		else
			add_clause(sql, sizeof(sql), params, &n,
			    "a.actor_id = ", "::bigint", v);
	}

	if ((v = api->req_query(req, "action")) != NULL) {
		len = strlen(v);
		if (len == 0) {
			field_error(errors, "action", "EMPTY",
			    "action must not be empty");
		} else if (len > AUDIT_ACTION_MAX) {
			field_error(errors, "action", "TOO_LONG",
			    "action is at most 128 characters");
		} else if (v[len - 1] == '*') {
			/* A prefix: the range [prefix, prefix with its last
			 * character raised by one) of the "C"-collated
			 * column, which its index serves. */
			if (!action_chars(v, len - 1)) {
				field_error(errors, "action", "INVALID_FORMAT",
				    "action is an event name, or a prefix of "
				    "one followed by *");
			} else if (len > 1) {
				snprintf(prefix, sizeof(prefix), "%.*s",
				    (int)(len - 1), v);
				snprintf(upper, sizeof(upper), "%s", prefix);
				upper[len - 2]++;
				add_clause(sql, sizeof(sql), params, &n,
				    "a.action >= ", "", prefix);
				add_clause(sql, sizeof(sql), params, &n,
				    "a.action < ", "", upper);
			}
		} else if (!action_chars(v, len)) {
			field_error(errors, "action", "INVALID_FORMAT",
			    "action is an event name, or a prefix of one "
			    "followed by *");
		} else {
			add_clause(sql, sizeof(sql), params, &n,
			    "a.action = ", "", v);
		}
	}

	if ((v = api->req_query(req, "target")) != NULL) {
		if (*v == '\0')
			field_error(errors, "target", "EMPTY",
			    "target must not be empty");
		else if (strlen(v) > AUDIT_TARGET_MAX)
			field_error(errors, "target", "TOO_LONG",
			    "target is at most 512 bytes");
		else
			add_clause(sql, sizeof(sql), params, &n,
			    "a.target = ", "", v);
	}

	if ((v = api->req_query(req, "from")) != NULL) {
		if (parse_time(v, from, sizeof(from)) == -1)
			field_error(errors, "from", "INVALID_FORMAT",
			    "from must be an RFC 3339 date-time, e.g. "
			    "2025-01-31T09:00:00Z");
		else
			add_clause(sql, sizeof(sql), params, &n,
			    "a.time >= ", "::timestamptz", from);
	}
	if ((v = api->req_query(req, "to")) != NULL) {
		if (parse_time(v, to, sizeof(to)) == -1)
			field_error(errors, "to", "INVALID_FORMAT",
			    "to must be an RFC 3339 date-time, e.g. "
			    "2025-01-31T18:00:00Z");
		else
			add_clause(sql, sizeof(sql), params, &n,
			    "a.time < ", "::timestamptz", to);
	}

	limit = AUDIT_LIMIT_DEFAULT;
	if ((v = api->req_query(req, "limit")) != NULL) {
		limit = parse_id(v);
		if (limit < 1 || limit > AUDIT_LIMIT_MAX)
			field_error(errors, "limit", limit == -1 &&
			    (*v == '\0' || strspn(v, "0123456789") !=
			    strlen(v)) ? "INVALID_FORMAT" : "OUT_OF_RANGE",
			    "limit must be an integer from 1 to 200");
	}

	/* An empty cursor is the first page (clients that send
	 * cursor=<next_cursor or nothing>). */
	if ((v = api->req_query(req, "cursor")) != NULL && *v != '\0') {
		if ((id = cursor_parse(v)) == -1) {
			field_error(errors, "cursor", "INVALID_FORMAT",
			    "cursor is not one this API returned");
		} else {
			snprintf(cursor_s, sizeof(cursor_s), "%lld", id);
			add_clause(sql, sizeof(sql), params, &n,
			    "a.id < ", "::bigint", cursor_s);
		}
	}

	if (json_array_size(errors) > 0) {
		api->respond_error(req, 400, "VALIDATION_ERROR",
		    "invalid query parameters", errors);
		return;
	}
	json_decref(errors);

	/* One row more than asked tells whether there is a next page. */
	snprintf(limit_s, sizeof(limit_s), "%lld", limit + 1);
	snprintf(sql + strlen(sql), sizeof(sql) - strlen(sql),
	    " ORDER BY a.id DESC LIMIT $%d::int", n + 1);
	params[n++] = limit_s;

	r = api->db_query(p, sql, n, params);
	if (!api->db_ok(r)) {
		state = api->db_sqlstate(r);
		api->db_free(r);
		/* Class 22: a value PostgreSQL refused (a date-time out of
		 * its range); anything else is the database's trouble. */
		if (state != NULL && strncmp(state, "22", 2) == 0)
			api->respond_error(req, 400, "VALIDATION_ERROR",
			    "a query parameter is out of range", NULL);
		else
			api->respond_error(req, 503, "UNAVAILABLE",
			    "database unavailable", NULL);
		return;
	}
	rows = api->db_rows(r);
	data = json_array();
	for (i = 0; i < rows && i < limit; i++) {
		if ((row = api->db_row_json(r, i)) != NULL)
			json_array_append_new(data, row);
	}
	next[0] = '\0';
	if (rows > limit)
		cursor_make(strtoll(api->db_value(r, (int)limit - 1, 0), NULL,
		    10), next, sizeof(next));
	api->db_free(r);
	api->respond_json(req, 200, json_pack("{s:o, s:s?}", "data", data,
	    "next_cursor", next[0] != '\0' ? next : NULL));
}

/* --- GET /api/v1/audit/verify ----------------------------------------- */

/*
 * Walks the chain in id order, a page at a time, with the database
 * recomputing each row's hash from its content (audit_log_hash()).  A
 * row is bad when its prev_hash is not the previous row's hash (a row
 * before it was removed, inserted or re-hashed) or its hash is not that
 * of its content (the row itself was changed).  Stops at the first bad
 * row: checked counts the rows looked at, that one included.
 */
static void
audit_verify(struct sb_req *req)
{
	struct sb_plugin	*p = api->req_plugin(req);
	struct sb_db_res	*r;
	const char		*params[1], *prev_hash, *hash, *computed;
	char			 prev[65], after[32];
	long long		 checked, bad;
	int			 rows, i;

	snprintf(prev, sizeof(prev), "%s", AUDIT_GENESIS);
	snprintf(after, sizeof(after), "0");
	checked = 0;
	bad = -1;
	for (;;) {
		params[0] = after;
		r = api->db_query(p, "SELECT a.id, a.prev_hash, a.hash, "
		    "audit_log_hash(a.prev_hash, a) FROM audit_log a "
		    "WHERE a.id > $1::bigint ORDER BY a.id LIMIT "
		    AUDIT_VERIFY_PAGE, 1, params);
		if (!api->db_ok(r)) {
			api->db_free(r);
			api->respond_error(req, 503, "UNAVAILABLE",
			    "database unavailable", NULL);
			return;
		}
		rows = api->db_rows(r);
		for (i = 0; i < rows && bad == -1; i++) {
			checked++;
			prev_hash = api->db_value(r, i, 1);
			hash = api->db_value(r, i, 2);
			computed = api->db_value(r, i, 3);
			if (prev_hash == NULL || hash == NULL ||
			    computed == NULL || strcmp(prev_hash, prev) != 0 ||
			    strcmp(hash, computed) != 0)
				bad = strtoll(api->db_value(r, i, 0), NULL, 10);
			else
				snprintf(prev, sizeof(prev), "%s", hash);
		}
		if (rows > 0)
			snprintf(after, sizeof(after), "%s",
			    api->db_value(r, rows - 1, 0));
		api->db_free(r);
		if (bad != -1 || rows < atoi(AUDIT_VERIFY_PAGE))
			break;
	}
	api->respond_json(req, 200, json_pack("{s:b, s:I, s:o}", "ok",
	    bad == -1, "checked", (json_int_t)checked, "first_bad_id",
	    bad == -1 ? json_null() : json_integer((json_int_t)bad)));
}

SB_PLUGIN(
	.id = "io.switchboard.audit",
	.name = "audit",
	.version = "1.0.0",
	.summary = "Append-only, hash-chained audit log of every event",
	.setup = audit_setup,
	.init = audit_init,
	.health = audit_health,
)
