/*
 * Test plugin: outbound HTTP from a request handler.  POST
 * /api/v1/outbound/fetch defers its answer, makes the call it is told to
 * make with api->http_send() and answers from the callback with what came
 * back, so a black-box test sees the host's HTTP client from outside:
 * {status, body, error, retry_after, elapsed_ms, content_type, x_upstream}.
 * A request http_send() refuses is answered 400 at once.
 */
#include <stdlib.h>
#include <string.h>

#include <switchboard/plugin.h>

#define MAX_HEADERS	16

static const struct sb_host_api	*api;

static const struct sb_field fetch_body[] = {
	{ .name = "url", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .min_len = 1, .max_len = 4096 },
	{ .name = "method", .type = SB_T_STRING, .max_len = 16 },
	{ .name = "body", .type = SB_T_STRING, .max_len = 65536 },
	{ .name = "headers", .type = SB_T_OBJECT,
	  .description = "name -> value, at most 16" },
	{ .name = "timeout_ms", .type = SB_T_INT, .flags = SB_F_RANGE,
	  .min = 1, .max = 120000 },
	{ .name = "max_response", .type = SB_T_INT, .flags = SB_F_RANGE,
	  .min = 1, .max = 16777216 },
	{ .name = "upstream", .type = SB_T_STRING, .max_len = 127 },
	SB_FIELD_END
};

static void
outbound_fetched(struct sb_plugin *p, const struct sb_http_response *resp,
    void *arg)
{
	struct sb_req	*req = arg;
	json_t		*out;

	(void)p;
	out = json_pack("{s:i, s:s%, s:s?, s:i, s:i, s:s?, s:s?}",
	    "status", resp->status,
	    "body", (const char *)resp->body, resp->body_len,
	    "error", resp->error,
	    "retry_after", (int)resp->retry_after,
	    "elapsed_ms", (int)resp->elapsed_ms,
	    "content_type", api->http_header(resp, "content-type"),
	    "x_upstream", api->http_header(resp, "x-upstream"));
	api->respond_json(req, 200, out);
}

static void
outbound_fetch(struct sb_req *req)
{
	struct sb_http_request	 r;
	struct sb_http_header	 hdrs[MAX_HEADERS];
	json_t			*b, *h, *v;
	const char		*name;

	b = api->req_json(req);
	memset(&r, 0, sizeof(r));
	r.url = json_string_value(json_object_get(b, "url"));
	r.method = json_string_value(json_object_get(b, "method"));
	if (r.method == NULL)
		r.method = "GET";
	if ((v = json_object_get(b, "body")) != NULL) {
		r.body = json_string_value(v);
		r.body_len = json_string_length(v);
	}
	r.timeout_ms = (unsigned int)json_integer_value(json_object_get(b,
	    "timeout_ms"));
	r.max_response = (size_t)json_integer_value(json_object_get(b,
	    "max_response"));
	r.upstream = json_string_value(json_object_get(b, "upstream"));
	h = json_object_get(b, "headers");
	json_object_foreach(h, name, v) {
		if (r.nheaders == MAX_HEADERS || !json_is_string(v)) {
			api->respond_error(req, 422, "VALIDATION_ERROR",
			    "headers: at most 16 strings", NULL);
			return;
		}
		hdrs[r.nheaders].name = name;
		hdrs[r.nheaders].value = json_string_value(v);
		r.nheaders++;
	}
	r.headers = hdrs;

	api->req_defer(req);
	if (api->http_send(api->req_plugin(req), &r, outbound_fetched, req) !=
	    SB_OK) {
		/* Deferred, but answering now is allowed. */
		api->respond_error(req, 400, "VALIDATION_ERROR", "the request "
		    "was refused by http_send", NULL);
	}
}

/* POST with an empty body: GET ?url= (timeout_ms=), answered deferred. */
static void
outbound_fetch_query(struct sb_req *req)
{
	struct sb_http_request	 r;
	const char		*t = api->req_query(req, "timeout_ms");

	memset(&r, 0, sizeof(r));
	r.method = "GET";
	r.url = api->req_query(req, "url");
	r.timeout_ms = t != NULL ? (unsigned int)strtoul(t, NULL, 10) : 0;
	api->req_defer(req);
	if (r.url == NULL || api->http_send(api->req_plugin(req), &r,
	    outbound_fetched, req) != SB_OK)
		api->respond_error(req, 400, "VALIDATION_ERROR", "the request "
		    "was refused by http_send", NULL);
}

static const struct sb_route routes[] = {
	{ .method = "POST", .path = "/api/v1/outbound/fetch",
	  .flags = SB_ROUTE_PUBLIC, .handler = outbound_fetch,
	  .summary = "Make an outbound call; answer with its result",
	  .body = fetch_body },
	{ .method = "POST", .path = "/api/v1/outbound/fetch-query",
	  .flags = SB_ROUTE_PUBLIC, .handler = outbound_fetch_query,
	  .summary = "GET ?url= with an empty request body" },
	SB_ROUTE_END
};

static int
outbound_setup(struct sb_plugin *p, const struct sb_host_api *a)
{
	api = a;
	if (!SB_API_HAS(a, http_send) || !SB_API_HAS(a, req_defer))
		return (SB_ERROR);
	return (api->routes_add(p, routes));
}

SB_PLUGIN(
	.id = "io.switchboard.test.outbound",
	.name = "outbound",
	.version = "1.0.0",
	.summary = "Test plugin: outbound HTTP from a deferred handler",
	.setup = outbound_setup,
);
