/*
 * The request path.  kore.conf routes every path to sb_http_dispatch(),
 * which owns everything between Kore and a handler:
 *
 *   request id -> CORS / OPTIONS -> route match (404, 405 + Allow) or a
 *   static asset -> plugin state -> authentication -> permission ->
 *   body limit, media type, JSON parse, declarative validation ->
 *   handler -> security headers -> one JSON access-log line.
 *
 * A handler may defer its answer (sb_req_defer): the request is then
 * parked with Kore (http_request_sleep, KORE_RESULT_RETRY) and finished
 * by the one respond_* that comes later, from a callback.  Every sb_req
 * lives on the heap for that reason, with its route match beside it.
 * If the client goes away first, Kore frees the http_request and calls
 * req_onfree(): the sb_req forgets it (http = NULL), so the late answer
 * only writes the log line and frees what is left.
 *
 * Every failure a client can cause leaves through sb_respond_error(), the
 * one error envelope of API.md.
 */

#include <arpa/inet.h>

#include <kore/kore.h>
#include <kore/http.h>

#include <openssl/evp.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sb.h"
#include "router.h"
#include "ratelimit.h"
#include "text.h"
#include "validate.h"

int	sb_http_dispatch(struct http_request *);

struct sb_req	*sb_current_req = NULL;

static void	set_request_id(struct sb_req *);
static int	cors(struct sb_req *, const char *allow);
static int	read_body(struct sb_req *);
static void	body_max_of(const char *, const char *, void *, void *);
static void	access_log(struct sb_req *, uint64_t started);
static void	common_headers(struct sb_req *);
static void	parse_query(struct sb_req *);
static void	client_ip(struct sb_req *);
static int	authorize(struct sb_req *);
static int	rate_limited(struct sb_req *);
static int	req_resume(struct http_request *);
static void	req_park(struct sb_req *);
static void	req_onfree(struct http_request *);
static void	req_finish(struct sb_req *);
static void	woken_nudge(void *, u_int64_t);
static void	respond_queued(struct sb_req *);

/* Deferred requests answered and woken, not yet finished by Kore. */
static unsigned int	woken_pending = 0;

/* One allocation per request: what a deferred answer must keep. */
struct req_box {
	struct sb_req		req;		/* first: freed through it */
	struct sb_router_match	m;
};

static const struct {
	int		status;
	const char	*code;
} status_codes[] = {
	{ 400, "VALIDATION_ERROR" },
	{ 401, "UNAUTHENTICATED" },
	{ 403, "FORBIDDEN" },
	{ 404, "NOT_FOUND" },
	{ 405, "METHOD_NOT_ALLOWED" },
	{ 408, "REQUEST_TIMEOUT" },
	{ 409, "CONFLICT" },
	{ 411, "VALIDATION_ERROR" },	/* a chunked request body */
	{ 413, "PAYLOAD_TOO_LARGE" },
	{ 414, "URI_TOO_LONG" },
	{ 415, "UNSUPPORTED_MEDIA_TYPE" },
	{ 422, "VALIDATION_ERROR" },
	{ 429, "RATE_LIMITED" },
	{ 431, "HEADERS_TOO_LARGE" },
	{ 500, "INTERNAL" },
	{ 502, "UPSTREAM_ERROR" },
	{ 503, "UNAVAILABLE" },
	{ 0, NULL }
};

const char *
sb_error_code_for(int status)
{
	int	i;

	for (i = 0; status_codes[i].code != NULL; i++) {
		if (status_codes[i].status == status)
			return (status_codes[i].code);
	}
	return (status >= 500 ? "INTERNAL" : "VALIDATION_ERROR");
}

/* Every code of the envelope, once each, for the OpenAPI document. */
json_t *
sb_error_codes_json(void)
{
	json_t	*out;
	size_t	 i, j;

	out = json_array();
	for (i = 0; status_codes[i].code != NULL; i++) {
		for (j = 0; j < i; j++) {
			if (strcmp(status_codes[j].code,
			    status_codes[i].code) == 0)
				break;
		}
		if (j == i)
			json_array_append_new(out,
			    json_string(status_codes[i].code));
	}
	return (out);
}

void
sb_http_worker_init(void)
{
}

int
sb_http_dispatch(struct http_request *http)
{
	struct req_box		*box;
	struct sb_req		*req;
	struct sb_router_match	*m;
	struct sb_route_entry	*e;
	const char		*method;
	enum sb_match		 rc;
	char			 allow[128];

	/* Kore runs the handler again when a parked request wakes up. */
	if (http->hdlr_extra != NULL)
		return (req_resume(http));

	if ((box = calloc(1, sizeof(*box))) == NULL) {
		http_response(http, 503, NULL, 0);
		return (KORE_RESULT_OK);
	}
	req = &box->req;
	m = &box->m;
	req->started = kore_time_ms();
	req->http = http;
	req->match = m;
	set_request_id(req);
	client_ip(req);
	sb_current_req = req;

	method = http_method_text(http->method);
	rc = sb_router_match(sb_routes, http->method == HTTP_METHOD_OPTIONS ?
	    "GET" : method, http->path, m);
	if (http->method == HTTP_METHOD_OPTIONS) {
		/* OPTIONS matches any route on the path, whatever its method. */
		if (rc == SB_MATCH_NOT_FOUND) {
			sb_respond_error(req, 404, "NOT_FOUND",
			    "no such resource", NULL);
		} else {
			snprintf(allow, sizeof(allow), "%s", m->allow);
			(void)cors(req, allow);
			sb_resp_header(req, "allow", allow);
			sb_respond_raw(req, 204, NULL, NULL, 0);
		}
		goto done;
	}

	if (cors(req, NULL) == -1)
		goto done;

	if (rc == SB_MATCH_NOT_FOUND) {
		if ((http->method == HTTP_METHOD_GET ||
		    http->method == HTTP_METHOD_HEAD) &&
		    sb_assets_serve(req, http->path) == 0)
			goto done;
		sb_respond_error(req, 404, "NOT_FOUND", "no such resource",
		    NULL);
		goto done;
	}
	if (rc == SB_MATCH_METHOD) {
		sb_resp_header(req, "allow", m->allow);
		sb_respond_error(req, 405, "METHOD_NOT_ALLOWED",
		    "method not allowed on this resource", NULL);
		goto done;
	}

	e = m->data;
	req->route = e->route;
	req->plugin = e->owner;
	req->plugin->requests++;

	if (req->plugin->state != SB_PLUGIN_READY) {
		sb_respond_error(req, 503, "UNAVAILABLE", "the plugin serving "
		    "this route is not available", NULL);
		goto done;
	}

	if (sb_auth_authenticate(req) == -1)
		goto done;	/* answered 401 */

	if (!(req->route->flags & SB_ROUTE_PROBE) && rate_limited(req))
		goto done;	/* answered 429 */

	if (authorize(req) == -1)
		goto done;	/* answered 401 or 403 */

	if (read_body(req) == -1)
		goto done;

	req->route->handler(req);
	if (!req->responded && req->deferred) {
		req_park(req);
		sb_current_req = NULL;
		return (KORE_RESULT_RETRY);
	}
	if (!req->responded) {
		sb_log(SB_LOG_ERROR, "http", "handler for %s %s (plugin %s) "
		    "returned without a response", req->route->method,
		    req->route->path, req->plugin->name);
		sb_respond_error(req, 500, "INTERNAL", "internal error", NULL);
	}

done:
	sb_current_req = NULL;
	req_finish(req);
	return (KORE_RESULT_OK);
}

/*
 * The handler will answer later: nothing may be sent now, and Kore must
 * neither run the request again nor finish it until the answer is in.
 */
void
sb_req_defer(struct sb_req *req)
{
	if (req != NULL && req->deferred == 0 && !req->responded)
		req->deferred = 1;
}

static void
req_park(struct sb_req *req)
{
	struct http_request	*http = req->http;

	req->deferred = 2;
	http->hdlr_extra = req;
	/* Ours (malloc'd), not Kore's to kore_free. */
	http->flags |= HTTP_REQUEST_RETAIN_EXTRA;
	http->onfree = req_onfree;
	http_request_sleep(http);
}

/*
 * A parked request woke up: sb_respond_raw() queued the answer and woke
 * it, so what is left is the flush (Kore's, on KORE_RESULT_OK), the log
 * line and the memory.
 */
static int
req_resume(struct http_request *http)
{
	struct sb_req	*req = http->hdlr_extra;

	if (!req->responded) {
		http_request_sleep(http);
		return (KORE_RESULT_RETRY);
	}
	http->hdlr_extra = NULL;
	http->onfree = NULL;
	http->flags &= ~HTTP_REQUEST_RETAIN_EXTRA;
	req_finish(req);
	return (KORE_RESULT_OK);
}

/*
 * Kore frees a parked request whose client went away (or that it is
 * dropping after the answer was queued).  From here on the sb_req has no
 * http_request: a late respond_* logs and frees it.
 */
static void
req_onfree(struct http_request *http)
{
	struct sb_req	*req = http->hdlr_extra;

	http->hdlr_extra = NULL;
	http->onfree = NULL;
	if (req == NULL)
		return;
	req->gone_method = http_method_text(http->method);
	req->gone_path = sb_strdup(http->path);
	req->http = NULL;
	if (req->responded)
		req_finish(req);
}

/* The access-log line, then everything the request owns. */
static void
req_finish(struct sb_req *req)
{
	if (req->deferred == 3)
		woken_pending--;
	access_log(req, req->started);
	sb_router_match_clear(req->match);
	json_decref(req->body);
	free(req->raw);
	sb_parts_free(req->parts);
	json_decref(req->query);
	json_decref(req->perms);
	json_decref(req->user);
	free(req->principal_name);
	free(req->principal_role);
	free(req->principal_donor);
	free(req->gone_path);
	free(req);	/* the whole req_box */
}

const char *
sb_req_path(struct sb_req *req)
{
	return (req->http != NULL ? req->http->path : req->gone_path);
}

/*
 * The client address.  Behind a reverse proxy every peer is the proxy, so
 * when the peer is listed in [host] trusted_proxies the right-most
 * X-Forwarded-For entry (the address the proxy itself saw) is used; from
 * any other peer the header is ignored, since a client can forge it.
 */
static void
client_ip(struct sb_req *req)
{
	struct connection	*c = req->http->owner;
	const void		*addr;
	const char		*xff, *last;
	char			**t;
	size_t			 len;

	req->ip[0] = '\0';
	if (c->family != AF_INET && c->family != AF_INET6)
		return;
	addr = c->family == AF_INET6 ? (const void *)&c->addr.ipv6.sin6_addr :
	    (const void *)&c->addr.ipv4.sin_addr;
	(void)inet_ntop(c->family, addr, req->ip, sizeof(req->ip));

	for (t = sb_settings.trusted_proxies; t != NULL && *t != NULL; t++) {
		if (strcmp(*t, req->ip) != 0)
			continue;
		if (!http_request_header(req->http, "x-forwarded-for", &xff))
			return;
		last = strrchr(xff, ',');
		last = last != NULL ? last + 1 : xff;
		while (*last == ' ')
			last++;
		len = strcspn(last, " ");
		if (len > 0 && len < sizeof(req->ip) &&
		    strspn(last, "0123456789abcdefABCDEF.:") >= len) {
			memcpy(req->ip, last, len);
			req->ip[len] = '\0';
		}
		return;
	}
}

const char *
sb_req_ip(struct sb_req *req)
{
	return (req->ip);
}

/*
 * The node-wide request budgets: the host's general one per caller, and
 * the route's own when it declares one.  Over budget: 429 + Retry-After.
 */
static int
rate_limited(struct sb_req *req)
{
	char		 who[200], key[400], buf[16];
	unsigned int	 retry;
	uint64_t	 now;

	switch (req->principal.kind) {
	case SB_ACTOR_USER:
		snprintf(who, sizeof(who), "u:%lld",
		    (long long)req->principal.id);
		break;
	case SB_ACTOR_API_KEY:
		snprintf(who, sizeof(who), "k:%lld",
		    (long long)req->principal.id);
		break;
	case SB_ACTOR_DONOR:
		snprintf(who, sizeof(who), "d:%s", req->principal.donor_id);
		break;
	default:
		snprintf(who, sizeof(who), "ip:%s", req->ip);
		break;
	}
	now = (uint64_t)sb_now_ms();
	retry = 0;
	snprintf(key, sizeof(key), "rl:%s", who);
	/* A provider's webhook skips the general budget (plugin.h). */
	if ((req->route->flags & SB_ROUTE_WEBHOOK) ||
	    sb_rate_hit(key, sb_settings.rate_requests,
	    sb_settings.rate_window, now, &retry) == 0) {
		if (req->route->rate.requests == 0)
			return (0);
		snprintf(key, sizeof(key), "rr:%s %s:%s", req->route->method,
		    req->route->path, who);
		if (sb_rate_hit(key, req->route->rate.requests,
		    req->route->rate.seconds, now, &retry) == 0)
			return (0);
	}
	snprintf(buf, sizeof(buf), "%u", retry > 0 ? retry : 1);
	sb_resp_header(req, "retry-after", buf);
	sb_respond_error(req, 429, "RATE_LIMITED", "too many requests: try "
	    "again later", NULL);
	return (1);
}

/*
 * The route's access rule against the authenticated principal:
 * anonymous callers get 401 on anything not public; authenticated ones
 * that the rule excludes get 403 (and a host event for the audit log).
 */
static int
authorize(struct sb_req *req)
{
	unsigned int	access = req->route->flags & SB_ROUTE_ACCESS_MASK;
	int		ok;

	if (access == SB_ROUTE_PUBLIC)
		return (0);
	if ((req->route->flags & SB_ROUTE_SIGNED) &&
	    (sb_req_query(req, "sig") != NULL ||
	    sb_req_query(req, "exp") != NULL)) {
		if (sb_signed_verify(req->plugin->d.id, req->http->path,
		    sb_req_query(req, "exp"), sb_req_query(req, "sig"))) {
			req->signed_url = 1;
			return (0);
		}
		sb_respond_error(req, 403, "FORBIDDEN", "the signed URL is "
		    "invalid or has expired", NULL);
		return (-1);
	}
	if (req->principal.kind == SB_ACTOR_ANONYMOUS) {
		sb_resp_header(req, "www-authenticate", "Bearer");
		sb_respond_error(req, 401, "UNAUTHENTICATED",
		    "authentication required", NULL);
		return (-1);
	}
	if (access == SB_ROUTE_AUTHENTICATED)
		ok = 1;
	else if (access == SB_ROUTE_STAFF)
		ok = req->principal.kind == SB_ACTOR_USER;
	else if (access == SB_ROUTE_DONOR)
		ok = req->principal.kind == SB_ACTOR_DONOR;
	else
		ok = sb_req_allowed(req, req->route->permission);
	if (ok)
		return (0);
	sb_host_event("auth.permission.denied", json_pack("{s:s, s:s, s:s?, "
	    "s:s}", "method", req->route->method, "path", req->route->path,
	    "permission", req->route->permission, "access",
	    sb_route_access(req->route)));
	sb_respond_error(req, 403, "FORBIDDEN", access == SB_ROUTE_STAFF ?
	    "staff only" : access == SB_ROUTE_DONOR ? "donors only" :
	    "missing permission", NULL);
	return (-1);
}

/* A client's X-Request-Id is echoed when it is sane, else one is made. */
static void
set_request_id(struct sb_req *req)
{
	const char	*v, *p;
	size_t		len;

	if (http_request_header(req->http, "x-request-id", &v)) {
		len = strlen(v);
		if (len > 0 && len < sizeof(req->id)) {
			for (p = v; *p != '\0'; p++) {
				if (!isalnum((unsigned char)*p) && *p != '-' &&
				    *p != '_' && *p != '.' && *p != ':')
					break;
			}
			if (*p == '\0') {
				memcpy(req->id, v, len + 1);
				return;
			}
		}
	}
	sb_random_hex(req->id, 16);
}

static int
origin_allowed(const char *origin)
{
	char	**o;

	for (o = sb_settings.cors_origins; o != NULL && *o != NULL; o++) {
		if (strcmp(*o, "*") == 0 || strcmp(*o, origin) == 0)
			return (1);
	}
	return (0);
}

/*
 * CORS for configured origins.  A preflight (OPTIONS with
 * Access-Control-Request-Method) gets the allowed methods and headers;
 * other requests get the origin echoed.  Unlisted origins get no CORS
 * headers at all, so the browser refuses the response.
 */
static int
cors(struct sb_req *req, const char *allow)
{
	const char	*origin;

	if (!http_request_header(req->http, "origin", &origin))
		return (0);
	sb_resp_header(req, "vary", "Origin");
	if (!origin_allowed(origin))
		return (0);
	sb_resp_header(req, "access-control-allow-origin", origin);
	sb_resp_header(req, "access-control-expose-headers",
	    "X-Request-Id, Retry-After, Allow");
	if (allow != NULL) {
		sb_resp_header(req, "access-control-allow-methods", allow);
		sb_resp_header(req, "access-control-allow-headers",
		    "Authorization, Content-Type, X-API-Key, X-Request-Id");
		sb_resp_header(req, "access-control-max-age", "600");
	}
	return (0);
}

static int
is_json_type(const char *ctype)
{
	size_t	n;

	n = strlen("application/json");
	if (strncasecmp(ctype, "application/json", n) != 0)
		return (0);
	return (ctype[n] == '\0' || ctype[n] == ';' || ctype[n] == ' ');
}

/*
 * The whole body into req->raw, once (NUL-terminated, raw_len bytes), for
 * JSON parsing and for sb_req_body().  The route's size limit was checked
 * before.  A body Kore streamed to a file (over [host] body_memory_max)
 * is read back from it the same way: only a route's own limit bounds
 * what this holds, so routes taking large uploads use sb_req_parts().
 * 0, or -1 out of memory, or -2 when the body came short.
 */
static int
slurp(struct sb_req *req)
{
	size_t		len;
	ssize_t		r;

	if (req->raw_read)
		return (0);
	req->raw_read = 1;
	if (req->http == NULL || (len = req->http->http_body_length) == 0)
		return (0);
	if ((req->raw = malloc(len + 1)) == NULL)
		return (-1);
	r = http_body_read(req->http, req->raw, len);
	if (r < 0 || (size_t)r != len) {
		free(req->raw);
		req->raw = NULL;
		return (-2);
	}
	req->raw[len] = '\0';
	req->raw_len = len;
	return (0);
}

/* slurp(), answering its failures.  -1 after answering. */
int
sb_req_raw(struct sb_req *req)
{
	switch (slurp(req)) {
	case -1:
		sb_respond_error(req, 503, "UNAVAILABLE", "out of memory",
		    NULL);
		return (-1);
	case -2:
		sb_respond_error(req, 400, "VALIDATION_ERROR", "incomplete "
		    "request body", NULL);
		return (-1);
	}
	return (0);
}

/* The raw body for a handler (webhook signatures); NULL when there is
 * none or it could not be read whole. */
const void *
sb_req_body(struct sb_req *req, size_t *len)
{
	(void)slurp(req);
	*len = req->raw_len;
	return (req->raw);
}

/*
 * Kore asks this once the head is in (patches/kore/0006), so a body over
 * its route's limit is refused before any of it is read.  A path no route
 * takes gets the default limit; its 404 comes once the body is in.
 */
size_t
sb_http_body_max(struct http_request *http)
{
	struct sb_router_match	 m;
	struct sb_route_entry	*e;
	size_t			 limit;

	limit = sb_settings.body_max;
	memset(&m, 0, sizeof(m));
	if (sb_router_match(sb_routes, http_method_text(http->method),
	    http->path, &m) == SB_MATCH_OK) {
		e = m.data;
		if (e->route->body_max != 0)
			limit = e->route->body_max;
	}
	sb_router_match_clear(&m);
	return (limit);
}

static void
body_max_of(const char *method, const char *pattern, void *data, void *arg)
{
	struct sb_route_entry	*e = data;
	size_t			*max = arg;

	(void)method;
	(void)pattern;
	if (e->route->body_max > *max)
		*max = e->route->body_max;
}

/* The largest body any registered route takes (its body_max, or the
 * default): Kore's own cap is raised to it once the routes are in. */
size_t
sb_http_routes_body_max(void)
{
	size_t	max;

	max = sb_settings.body_max;
	sb_router_foreach(sb_routes, body_max_of, &max);
	return (max);
}

/*
 * The body of a route with a schema: limits, media type, strict JSON
 * (duplicate keys refused), an object, then the field table.
 */
static int
read_body(struct sb_req *req)
{
	struct http_request	*http = req->http;
	const char		*ctype;
	size_t			 limit, len;
	char			*buf;
	json_error_t		 jerr;
	json_t			*errors;

	/* Every route's limit holds, whether or not it takes JSON. */
	limit = req->route->body_max ? req->route->body_max :
	    sb_settings.body_max;
	if (http->http_body_length > limit) {
		sb_respond_error(req, 413, "PAYLOAD_TOO_LARGE", "request body "
		    "too large", NULL);
		return (-1);
	}
	if (req->route->body == NULL)
		return (0);

	if (http->http_body_length == 0) {
		sb_respond_error(req, 400, "VALIDATION_ERROR", "a JSON request "
		    "body is required", NULL);
		return (-1);
	}
	if (!http_request_header(http, "content-type", &ctype) ||
	    !is_json_type(ctype)) {
		sb_respond_error(req, 415, "UNSUPPORTED_MEDIA_TYPE", "the body "
		    "must be application/json", NULL);
		return (-1);
	}

	if (sb_req_raw(req) == -1)
		return (-1);
	len = req->raw_len;
	buf = req->raw;

	req->body = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (req->body == NULL) {
		char	msg[256];

		snprintf(msg, sizeof(msg), "malformed JSON at line %d column "
		    "%d: %s", jerr.line, jerr.column, jerr.text);
		sb_respond_error(req, 400, "VALIDATION_ERROR", msg, NULL);
		return (-1);
	}
	if (!json_is_object(req->body)) {
		sb_respond_error(req, 400, "VALIDATION_ERROR", "the body must "
		    "be a JSON object", NULL);
		return (-1);
	}

	errors = json_array();
	if (sb_validate(req->route->body, req->body, errors) > 0) {
		sb_respond_error(req, 422, "VALIDATION_ERROR", "the request "
		    "body has invalid fields", errors);
		return (-1);
	}
	json_decref(errors);
	return (0);
}

static void
common_headers(struct sb_req *req)
{
	http_response_header(req->http, "x-request-id", req->id);
	http_response_header(req->http, "x-content-type-options", "nosniff");
	http_response_header(req->http, "x-frame-options", "DENY");
	http_response_header(req->http, "referrer-policy", "no-referrer");
	http_response_header(req->http, "cross-origin-resource-policy",
	    "same-origin");
}

void
sb_resp_header(struct sb_req *req, const char *name, const char *value)
{
	if (req->http == NULL || name == NULL || value == NULL ||
	    strpbrk(name, "\r\n:") != NULL || strpbrk(value, "\r\n") != NULL)
		return;
	http_response_header(req->http, name, value);
}

/*
 * The part every respond_* shares before the answer is queued: one
 * answer per request, and a deferred one whose client has gone ends
 * here.  0 when the caller should queue the answer and call
 * respond_queued().
 */
static int
respond_begin(struct sb_req *req, int status, const char *ctype)
{
	if (req->responded) {
		sb_log(SB_LOG_ERROR, "http", "second response to %s %s "
		    "ignored", req->http != NULL ?
		    http_method_text(req->http->method) : req->gone_method,
		    sb_req_path(req));
		return (-1);
	}
	req->responded = 1;
	req->status = status;
	if (req->http == NULL) {
		/* A deferred answer whose client has gone: nobody to send
		 * it to.  The request ends here. */
		req_finish(req);
		return (-1);
	}
	common_headers(req);
	if (ctype != NULL)
		http_response_header(req->http, "content-type", ctype);
	return (0);
}

void
sb_respond_raw(struct sb_req *req, int status, const char *ctype,
    const void *data, size_t len)
{
	if (respond_begin(req, status, ctype) == -1)
		return;
	http_response(req->http, status, data, len);
	respond_queued(req);
}

/*
 * A file sent from a descriptor in FILE_CHUNK pieces: one netbuf (Kore
 * patch 0010, NETBUF_REFILL) refilled with pread as the socket drains,
 * so a response holds one chunk of memory whatever the file's size.  The
 * descriptor is closed on the netbuf's last callback, when it is sent or
 * the connection goes away.
 */
#define FILE_CHUNK	(64 * 1024)

struct file_out {
	int		fd;
	uint64_t	off;		/* next byte to read */
	uint64_t	left;		/* bytes not read yet */
	uint8_t		buf[FILE_CHUNK];
};

/* Up to FILE_CHUNK bytes into fo->buf; 0 at the end or on an error. */
static size_t
file_read(struct file_out *fo)
{
	size_t		want;
	ssize_t		r;

	want = fo->left < FILE_CHUNK ? (size_t)fo->left : FILE_CHUNK;
	if (want == 0)
		return (0);
	for (;;) {
		r = pread(fo->fd, fo->buf, want, (off_t)fo->off);
		if (r == -1 && errno == EINTR)
			continue;
		break;
	}
	if (r <= 0) {
		sb_log(SB_LOG_ERROR, "http", "respond_file: %s",
		    r == 0 ? "file shorter than its length" : strerror(errno));
		return (0);
	}
	fo->off += (uint64_t)r;
	fo->left -= (uint64_t)r;
	return ((size_t)r);
}

static int
file_refill(struct netbuf *nb)
{
	struct file_out	*fo = nb->extra;
	size_t		 n;

	if (nb->flags & NETBUF_REFILL) {
		if ((n = file_read(fo)) > 0) {
			nb->b_len = n;
			nb->m_len = n;
			return (KORE_RESULT_RETRY);
		}
		/* Short of Content-Length: the client must not take the
		 * connection for a complete answer. */
		if (fo->left > 0)
			nb->owner->flags |= CONN_CLOSE_EMPTY;
		return (KORE_RESULT_OK);
	}
	close(fo->fd);
	free(fo);
	return (KORE_RESULT_OK);
}

void
sb_respond_file(struct sb_req *req, int status, const char *ctype, int fd,
    uint64_t offset, uint64_t len)
{
	struct file_out	*fo;
	struct netbuf	*nb;
	size_t		 n;
	char		 clen[32];

	if (fd < 0) {
		sb_respond_error(req, 500, "INTERNAL", "internal error", NULL);
		return;
	}
	if ((fo = malloc(sizeof(*fo))) == NULL) {
		close(fd);
		sb_respond_error(req, 503, "UNAVAILABLE", "out of memory",
		    NULL);
		return;
	}
	fo->fd = fd;
	fo->off = offset;
	fo->left = len;
	if (respond_begin(req, status, ctype) == -1) {
		close(fd);
		free(fo);
		return;
	}
	snprintf(clen, sizeof(clen), "%llu", (unsigned long long)len);
	http_response_header(req->http, "content-length", clen);
	req->http->flags |= HTTP_REQUEST_NO_CONTENT_LENGTH;
	if (req->http->method == HTTP_METHOD_HEAD ||
	    req->http->owner == NULL) {
		/* Kore queues no body for HEAD (nor for a request without
		 * a connection): nothing would call back. */
		http_response(req->http, status, NULL, 0);
		close(fd);
		free(fo);
		respond_queued(req);
		return;
	}
	n = file_read(fo);
	http_response_stream(req->http, status, fo->buf, n, file_refill, fo);
	nb = TAILQ_LAST(&req->http->owner->send_queue, netbuf_head);
	nb->flags |= NETBUF_REFILL;
	if (n == 0 && fo->left > 0)
		req->http->owner->flags |= CONN_CLOSE_EMPTY;
	respond_queued(req);
}

/* After the answer is queued: a parked request must wake up to finish. */
static void
respond_queued(struct sb_req *req)
{
	if (req->deferred == 2) {
		req->deferred = 3;
		http_request_wakeup(req->http);
		if (woken_pending++ == 0)
			(void)kore_timer_add(woken_nudge, 1, NULL,
			    KORE_TIMER_ONESHOT);
	}
}

/*
 * Kore's http_process() stops after ~10 ms of handler time per loop and
 * its next event wait is bounded only by the next timer (a curl timeout
 * can be seconds away), so a woken request left over by a busy loop
 * would wait for an unrelated event.  While any is pending, this timer
 * keeps the wait at 1 ms.
 */
static void
woken_nudge(void *arg, u_int64_t now)
{
	(void)arg;
	(void)now;
	if (woken_pending > 0)
		(void)kore_timer_add(woken_nudge, 1, NULL, KORE_TIMER_ONESHOT);
}

void
sb_respond_json(struct sb_req *req, int status, json_t *body)
{
	char	*out;

	if (body == NULL) {
		sb_respond_error(req, 500, "INTERNAL", "internal error", NULL);
		return;
	}
	out = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(body);
	if (out == NULL) {
		sb_respond_error(req, 500, "INTERNAL", "internal error", NULL);
		return;
	}
	if (req->route != NULL && req->http != NULL)
		http_response_header(req->http, "cache-control", "no-store");
	sb_respond_raw(req, status, "application/json; charset=utf-8", out,
	    strlen(out));
	free(out);
}

void
sb_respond_error(struct sb_req *req, int status, const char *code,
    const char *message, json_t *errors)
{
	json_t	*body;

	if (status < 400 || status > 599)
		status = 500;
	if (code == NULL)
		code = sb_error_code_for(status);
	if (message == NULL)
		message = http_status_text(status);
	if (errors == NULL || !json_is_array(errors)) {
		json_decref(errors);
		errors = json_array();
	}
	req->error_code = code;
	body = json_pack("{s:s, s:s, s:s, s:o, s:s}", "status", "error",
	    "code", code, "message", message, "errors", errors,
	    "request_id", req->id);
	if (body == NULL) {
		/* message was not UTF-8: never echo it. */
		body = json_pack("{s:s, s:s, s:s, s:[], s:s}", "status",
		    "error", "code", code, "message", http_status_text(status),
		    "errors", "request_id", req->id);
	}
	sb_respond_json(req, status, body);
}

const char *
sb_req_header(struct sb_req *req, const char *name)
{
	const char	*v;

	if (req->http != NULL && http_request_header(req->http, name, &v))
		return (v);
	return (NULL);
}

const char *
sb_req_param(struct sb_req *req, const char *name)
{
	return (sb_router_param(req->match, name));
}

/* Decode application/x-www-form-urlencoded in place; -1 on bad input. */
static int
form_decode(char *s)
{
	char	*r, *w;
	int	hi, lo;

	for (r = w = s; *r != '\0'; r++, w++) {
		if (*r == '+') {
			*w = ' ';
		} else if (*r == '%') {
			if ((hi = sb_hexval(r[1])) < 0 || (lo = sb_hexval(r[2])) < 0)
				return (-1);
			*w = (char)(hi << 4 | lo);
			if (*w == '\0')
				return (-1);
			r += 2;
		} else {
			*w = *r;
		}
	}
	*w = '\0';
	return (0);
}

static void
parse_query(struct sb_req *req)
{
	char	*copy, *pair, *save, *eq;
	json_t	*v;

	req->query = json_object();
	if (req->http == NULL || req->http->query_string == NULL)
		return;
	copy = sb_strdup(req->http->query_string);
	for (pair = strtok_r(copy, "&", &save); pair != NULL;
	    pair = strtok_r(NULL, "&", &save)) {
		if ((eq = strchr(pair, '=')) != NULL)
			*eq++ = '\0';
		else
			eq = pair + strlen(pair);
		if (form_decode(pair) == -1 || form_decode(eq) == -1)
			continue;
		/* The first occurrence wins; invalid UTF-8 is dropped. */
		if (json_object_get(req->query, pair) != NULL)
			continue;
		if ((v = json_string(eq)) != NULL)
			json_object_set_new(req->query, pair, v);
	}
	free(copy);
}

const char *
sb_req_query(struct sb_req *req, const char *name)
{
	if (req->query == NULL)
		parse_query(req);
	return (json_string_value(json_object_get(req->query, name)));
}

/* Does the caller hold `permission`, or one of "a.b|c.d"? */
int
sb_req_allowed(struct sb_req *req, const char *permission)
{
	const char	*alt, *bar, *have;
	size_t		 i, len;
	json_t		*v;

	if (permission == NULL)
		return (1);
	if (req->superuser)
		return (1);
	for (alt = permission; *alt != '\0'; alt = bar + (*bar == '|')) {
		if ((bar = strchr(alt, '|')) == NULL)
			bar = alt + strlen(alt);
		len = (size_t)(bar - alt);
		json_array_foreach(req->perms, i, v) {
			have = json_string_value(v);
			if (strlen(have) == len && memcmp(have, alt, len) == 0)
				return (1);
		}
	}
	return (0);
}

static void
access_log(struct sb_req *req, uint64_t started)
{
	json_t		*line;

	/* Counted whether or not the line is written. */
	sb_metrics_request(req->plugin, req->status,
	    kore_time_ms() - started);
	if (!sb_settings.access_log)
		return;

	line = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:s}",
	    "level", "info", "component", "access",
	    "method", req->http != NULL ? http_method_text(req->http->method) :
	    req->gone_method,
	    "path", req->route != NULL &&
	    (req->route->flags & SB_ROUTE_SECRET_PATH) ? req->route->path :
	    sb_req_path(req),
	    "request_id", req->id,
	    "status", req->status,
	    "duration_ms", (json_int_t)(kore_time_ms() - started),
	    "ip", req->ip);
	if (line == NULL)
		return;
	if (req->plugin != NULL)
		json_object_set_new(line, "plugin", json_string(req->plugin->name));
	if (req->route != NULL)
		json_object_set_new(line, "route", json_string(req->route->path));
	if (req->principal.kind != SB_ACTOR_ANONYMOUS)
		json_object_set_new(line, "actor_id",
		    json_integer(req->principal.id));
	if (req->error_code != NULL)
		json_object_set_new(line, "error", json_string(req->error_code));
	if (req->deferred >= 2)
		json_object_set_new(line, "deferred", json_true());
	if (req->http == NULL)
		json_object_set_new(line, "client_gone", json_true());
	sb_log_json(line);
}

/* ------------------------------------------------------------------------
 * Lists: ?limit= (default 50, max 200) and an opaque ?cursor=, which is
 * the base64url of the last id a page returned (pages go newest first).
 */

static long long
cursor_decode(const char *c)
{
	unsigned char	 out[64];
	char		 buf[64], *end;
	size_t		 len, i;
	int		 n;
	long long	 id;

	len = strlen(c);
	if (len == 0 || len > 40)
		return (-1);
	for (i = 0; i < len; i++) {
		if (c[i] == '-')
			buf[i] = '+';
		else if (c[i] == '_')
			buf[i] = '/';
		else if (isalnum((unsigned char)c[i]))
			buf[i] = c[i];
		else
			return (-1);
	}
	while (i % 4 != 0)
		buf[i++] = '=';
	buf[i] = '\0';
	if ((n = EVP_DecodeBlock(out, (unsigned char *)buf, (int)i)) <= 0)
		return (-1);
	out[n] = '\0';
	/* EVP_DecodeBlock counts padding bytes as zeros. */
	n = (int)strnlen((char *)out, (size_t)n);
	if (n == 0 || n > 18)
		return (-1);
	id = strtoll((char *)out, &end, 10);
	if (*end != '\0' || id <= 0)
		return (-1);
	return (id);
}

int
sb_page_params(struct sb_req *req, long long *limit, long long *before)
{
	const char	*v;
	char		*end;
	long long	 n;

	*limit = 50;
	*before = 0;
	if ((v = sb_req_query(req, "limit")) != NULL) {
		n = strtoll(v, &end, 10);
		if (*v == '\0' || *end != '\0' || n < 1 || n > 200) {
			sb_respond_error(req, 400, "VALIDATION_ERROR", "limit "
			    "must be a number from 1 to 200",
			    json_pack("[{s:s, s:s, s:s}]", "field", "limit",
			    "code", "OUT_OF_RANGE", "message", "1 to 200"));
			return (-1);
		}
		*limit = n;
	}
	if ((v = sb_req_query(req, "cursor")) != NULL) {
		if ((*before = cursor_decode(v)) == -1) {
			sb_respond_error(req, 400, "VALIDATION_ERROR", "invalid "
			    "cursor", json_pack("[{s:s, s:s, s:s}]", "field",
			    "cursor", "code", "INVALID_FORMAT", "message",
			    "not a cursor this API returned"));
			return (-1);
		}
	}
	return (0);
}

/* {"data": data, "next_cursor": ...}; data is stolen. */
void
sb_respond_page(struct sb_req *req, json_t *data, int more)
{
	json_t		*last;
	char		 idbuf[32], cur[64];
	json_int_t	 id;

	last = json_array_get(data, json_array_size(data) - 1);
	id = json_integer_value(json_object_get(last, "id"));
	if (more && id > 0) {
		snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id);
		sb_base64url((unsigned char *)idbuf, strlen(idbuf), cur,
		    sizeof(cur));
		sb_respond_json(req, 200, json_pack("{s:o, s:s}", "data", data,
		    "next_cursor", cur));
	} else {
		sb_respond_json(req, 200, json_pack("{s:o, s:n}", "data", data,
		    "next_cursor"));
	}
}

/* The answer when the database cannot be reached. */
void
sb_respond_db_down(struct sb_req *req)
{
	sb_respond_error(req, 503, "UNAVAILABLE", "database unavailable",
	    NULL);
}

/*
 * A path parameter that must be a positive decimal id (no sign, spaces
 * or leading junk).  -1 after answering 404 "no such <what>".
 */
int
sb_req_id(struct sb_req *req, const char *param, const char *what,
    int64_t *out)
{
	const char	*s;
	int64_t		 v;
	char		 msg[64];

	s = sb_req_param(req, param);
	v = 0;
	if (s != NULL && *s != '\0' && strlen(s) <= 18) {
		for (; *s >= '0' && *s <= '9'; s++)
			v = v * 10 + (*s - '0');
		if (*s != '\0')
			v = 0;
	}
	if (v <= 0) {
		snprintf(msg, sizeof(msg), "no such %s", what);
		sb_respond_error(req, 404, "NOT_FOUND", msg, NULL);
		return (-1);
	}
	*out = v;
	return (0);
}

/*
 * A list page from a query that fetched limit + 1 rows (the extra one
 * says there is a next page).  Takes r; answers 503 when it failed.
 */
void
sb_respond_rows(struct sb_req *req, struct sb_db_res *r, long long limit)
{
	json_t	*data;
	int	 i, n;

	if (!r->ok) {
		sb_db_free(r);
		sb_respond_db_down(req);
		return;
	}
	data = json_array();
	n = sb_db_rows(r);
	for (i = 0; i < n && i < limit; i++)
		json_array_append_new(data, sb_db_row_json(r, i));
	sb_db_free(r);
	sb_respond_page(req, data, n > limit);
}
