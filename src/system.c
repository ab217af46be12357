/*
 * The host's own routes: liveness, readiness, the plugin registry, the
 * console panels plugins contribute and the OpenAPI document generated
 * from the route registry.
 */

#include <kore/kore.h>

#include <stdio.h>
#include <string.h>

#include "sb.h"
#include "router.h"
#include "validate.h"

static void	sys_healthz(struct sb_req *);
static void	sys_readyz(struct sb_req *);
static json_t	*upstreams_check(void);
static void	sys_plugins(struct sb_req *);
static void	sys_console_panels(struct sb_req *);
static void	sys_openapi(struct sb_req *);

const struct sb_route sb_system_routes[] = {
	{ .method = "GET", .path = "/healthz",
	  .flags = SB_ROUTE_PUBLIC | SB_ROUTE_PROBE,
	  .handler = sys_healthz, .summary = "Liveness",
	  .response_schema = "{\"type\":\"object\",\"properties\":"
	  "{\"status\":{\"const\":\"ok\"}}}" },
	{ .method = "GET", .path = "/readyz",
	  .flags = SB_ROUTE_PUBLIC | SB_ROUTE_PROBE,
	  .handler = sys_readyz,
	  .summary = "Readiness: the database and every enabled plugin" },
	{ .method = "GET", .path = "/api/v1/plugins",
	  .permission = "system.read", .handler = sys_plugins,
	  .summary = "Loaded plugins with their state, routes, permissions "
	  "and events" },
	{ .method = "GET", .path = "/api/v1/console/panels",
	  .flags = SB_ROUTE_STAFF, .handler = sys_console_panels,
	  .summary = "Console panels the caller may see (ABI 1.2), in plugin "
	  "load order, then declaration order",
	  .response_schema = "{\"type\":\"object\",\"properties\":{"
	  "\"data\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
	  "\"required\":[\"plugin\",\"id\",\"label\",\"script\","
	  "\"permission\"],\"properties\":{\"plugin\":{\"type\":\"string\"},"
	  "\"id\":{\"type\":\"string\"},\"label\":{\"type\":\"string\"},"
	  "\"script\":{\"type\":\"string\"},\"permission\":{\"type\":"
	  "[\"string\",\"null\"]}}}},\"next_cursor\":{\"type\":\"null\"}}}" },
	{ .method = "GET", .path = "/api/v1/openapi.json",
	  .flags = SB_ROUTE_PUBLIC, .handler = sys_openapi,
	  .summary = "This API as OpenAPI 3.1, generated from the route "
	  "registry" },
	SB_ROUTE_END
};

static void
sys_healthz(struct sb_req *req)
{
	sb_respond_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

/*
 * Outbound upstreams by circuit breaker.  A breaker that is not closed
 * makes its upstream (and the check) "degraded": calls to it fail fast,
 * but the host itself is ready, so this never turns /readyz into a 503.
 */
static json_t *
upstreams_check(void)
{
	json_t		*breakers, *b;
	const char	*name, *state;
	int		 degraded;

	breakers = sb_httpc_breakers();
	degraded = 0;
	json_object_foreach(breakers, name, b) {
		state = json_string_value(json_object_get(b, "state"));
		if (state != NULL && strcmp(state, "closed") != 0) {
			degraded = 1;
			json_object_set_new(b, "status",
			    json_string("degraded"));
		} else {
			json_object_set_new(b, "status", json_string("ok"));
		}
	}
	return (json_pack("{s:s, s:o}", "status", degraded ? "degraded" : "ok",
	    "breakers", breakers));
}

static void
sys_readyz(struct sb_req *req)
{
	struct sb_plugin	*p;
	json_t			*checks, *errors, *detail;
	char			 err[512], field[96];
	int			 ready;

	checks = json_object();
	errors = json_array();
	ready = 1;

	if (sb_db_ping(err, sizeof(err)) == 0) {
		json_object_set_new(checks, "database", json_pack("{s:s}",
		    "status", "ok"));
	} else {
		ready = 0;
		err[strcspn(err, "\n")] = '\0';
		json_array_append_new(errors, json_pack("{s:s, s:s, s:s}",
		    "field", "database", "code", "UNAVAILABLE", "message",
		    err));
	}

	TAILQ_FOREACH(p, &sb_plugins, list) {
		if (p == sb_host_plugin || p->state == SB_PLUGIN_DISABLED)
			continue;
		snprintf(field, sizeof(field), "plugin:%s", p->name);
		detail = json_object();
		if (p->state != SB_PLUGIN_READY) {
			ready = 0;
			json_array_append_new(errors, json_pack("{s:s, s:s, "
			    "s:s}", "field", field, "code", "UNAVAILABLE",
			    "message", p->error[0] ? p->error : "not ready"));
			json_decref(detail);
			continue;
		}
		if (p->d.health != NULL && p->d.health(p, detail) != SB_OK) {
			ready = 0;
			json_array_append_new(errors, json_pack("{s:s, s:s, "
			    "s:s}", "field", field, "code", "UNAVAILABLE",
			    "message", "health check failed"));
			json_decref(detail);
			continue;
		}
		json_object_set_new(detail, "status", json_string("ok"));
		json_object_set_new(checks, field, detail);
	}

	json_object_set_new(checks, "upstreams", upstreams_check());

	if (ready) {
		json_decref(errors);
		sb_respond_json(req, 200, json_pack("{s:s, s:o}", "status",
		    "ok", "checks", checks));
		return;
	}
	json_decref(checks);
	sb_respond_error(req, 503, "UNAVAILABLE", "not ready", errors);
}

static void
sys_plugins(struct sb_req *req)
{
	struct sb_plugin	*p;
	json_t			*data;

	data = json_array();
	TAILQ_FOREACH(p, &sb_plugins, list)
		json_array_append_new(data, sb_plugin_describe(p));
	sb_respond_json(req, 200, json_pack("{s:o, s:n}", "data", data,
	    "next_cursor"));
}

/*
 * A panel's permission only hides its navigation entry: its files are
 * static and public like the console's, and what the panel shows comes
 * from routes that check permissions themselves.  A plugin that is not
 * ready in this worker (init() failed, a migration failed) shows none.
 */
static void
sys_console_panels(struct sb_req *req)
{
	struct sb_plugin	*p;
	struct sb_panel		*c;
	json_t			*data;

	data = json_array();
	TAILQ_FOREACH(p, &sb_plugins, list) {
		if (p->state != SB_PLUGIN_READY)
			continue;
		TAILQ_FOREACH(c, &p->panels, list) {
			if (sb_req_allowed(req, c->permission))
				json_array_append_new(data,
				    sb_panel_json(p, c, 1));
		}
	}
	sb_respond_json(req, 200, json_pack("{s:o, s:n}", "data", data,
	    "next_cursor"));
}

/* ------------------------------------------------------------------------
 * OpenAPI 3.1
 */

static json_t *
error_response(const char *description)
{
	return (json_pack("{s:s, s:{s:{s:{s:s}}}}", "description", description,
	    "content", "application/json", "schema", "$ref",
	    "#/components/schemas/Error"));
}

static json_t *
edge_response(const char *name)
{
	char	ref[128];

	snprintf(ref, sizeof(ref), "#/components/responses/%s", name);
	return (json_pack("{s:s}", "$ref", ref));
}

static void
add_operation(const char *method, const char *pattern, void *data, void *arg)
{
	struct sb_route_entry	*e = data;
	const struct sb_route	*r = e->route;
	json_t			*paths = arg, *item, *op, *params, *resp;
	json_t			*schema, *sec;
	char			 lower[16], opid[256];
	const char		*p, *end;
	size_t			 i;

	(void)pattern;
	for (i = 0; method[i] != '\0' && i < sizeof(lower) - 1; i++)
		lower[i] = (char)(method[i] | 0x20);
	lower[i] = '\0';

	if ((item = json_object_get(paths, r->path)) == NULL) {
		item = json_object();
		json_object_set_new(paths, r->path, item);
	}

	snprintf(opid, sizeof(opid), "%s_%s", lower, r->path);
	for (i = 0; opid[i] != '\0'; i++) {
		if (!((opid[i] >= 'a' && opid[i] <= 'z') ||
		    (opid[i] >= 'A' && opid[i] <= 'Z') ||
		    (opid[i] >= '0' && opid[i] <= '9')))
			opid[i] = '_';
	}

	op = json_pack("{s:s, s:s, s:[s]}", "operationId", opid, "summary",
	    r->summary != NULL ? r->summary : "", "tags", e->owner->name);

	params = json_array();
	for (p = strchr(r->path, '{'); p != NULL; p = strchr(end, '{')) {
		if ((end = strchr(p, '}')) == NULL)
			break;
		json_array_append_new(params, json_pack("{s:s%, s:s, s:b, "
		    "s:{s:s}}", "name", p + 1, (size_t)(end - p - 1), "in",
		    "path", "required", 1, "schema", "type", "string"));
	}
	if (json_array_size(params) > 0)
		json_object_set_new(op, "parameters", params);
	else
		json_decref(params);

	json_object_set_new(op, "x-access", json_string(sb_route_access(r)));
	if (r->flags & SB_ROUTE_PUBLIC) {
		json_object_set_new(op, "security", json_array());
	} else if (r->permission != NULL) {
		json_object_set_new(op, "x-permission",
		    json_string(r->permission));
	}
	if (r->flags & SB_ROUTE_SIGNED) {
		/* Or a signed URL instead of credentials (signurl.c). */
		json_object_set_new(op, "x-signed-url", json_true());
		if ((sec = json_object_get(op, "parameters")) == NULL) {
			sec = json_array();
			json_object_set_new(op, "parameters", sec);
		}
		json_array_append_new(sec, json_pack("{s:s, s:s, s:b, s:s, "
		    "s:{s:s}}", "name", "exp", "in", "query", "required", 0,
		    "description", "signed URL: expiry, unix seconds",
		    "schema", "type", "integer"));
		json_array_append_new(sec, json_pack("{s:s, s:s, s:b, s:s, "
		    "s:{s:s}}", "name", "sig", "in", "query", "required", 0,
		    "description", "signed URL: the signature", "schema",
		    "type", "string"));
	}

	if (r->body != NULL) {
		json_object_set_new(op, "requestBody", json_pack("{s:b, "
		    "s:{s:{s:o}}}", "required", 1, "content",
		    "application/json", "schema",
		    sb_validate_schema(r->body)));
	}

	resp = json_object();
	schema = NULL;
	if (r->response_schema != NULL)
		schema = json_loads(r->response_schema, 0, NULL);
	if (schema != NULL) {
		json_object_set_new(resp, "200", json_pack("{s:s, "
		    "s:{s:{s:o}}}", "description", "Success", "content",
		    "application/json", "schema", schema));
	} else {
		json_object_set_new(resp, "200", json_pack("{s:s}",
		    "description", "Success"));
	}
	if (r->body != NULL)
		json_object_set_new(resp, "422",
		    error_response("Invalid request body"));
	if (!(r->flags & SB_ROUTE_PUBLIC)) {
		json_object_set_new(resp, "401",
		    error_response("Not authenticated"));
		json_object_set_new(resp, "403",
		    error_response("Missing permission"));
	}
	/* What the edge may answer on any route (docs/ARCHITECTURE.md,
	 * "The HTTP edge"). */
	json_object_set_new(resp, "408", edge_response("RequestTimeout"));
	json_object_set_new(resp, "413", edge_response("PayloadTooLarge"));
	json_object_set_new(resp, "414", edge_response("UriTooLong"));
	json_object_set_new(resp, "431", edge_response("HeadersTooLarge"));
	json_object_set_new(resp, "default", error_response("Error"));
	json_object_set_new(op, "responses", resp);

	json_object_set_new(item, lower, op);
}

json_t *
sb_openapi_build(void)
{
	json_t	*doc, *paths;

	paths = json_object();
	sb_router_foreach(sb_routes, add_operation, paths);

	doc = json_pack("{s:s, s:{s:s, s:s, s:s}, s:[{s:s}], s:o, "
	    "s:{s:{s:{s:s, s:s, s:s}, s:{s:s, s:s, s:s}}, s:{s:o}, "
	    "s:{s:o, s:o, s:o, s:o}}, "
	    "s:[{s:[]}, {s:[]}]}",
	    "openapi", "3.1.0",
	    "info", "title", "Switchboard API", "version", SB_VERSION,
	    "description", "Generated from the route registry of the running "
	    "host and its plugins.",
	    "servers", "url", "/",
	    "paths", paths,
	    "components",
	    "securitySchemes",
	    "bearerAuth", "type", "http", "scheme", "bearer", "bearerFormat",
	    "JWT",
	    "apiKey", "type", "apiKey", "in", "header", "name", "X-API-Key",
	    "schemas",
	    "Error", json_pack("{s:s, s:[s, s, s, s, s], s:{s:{s:s}, "
	    "s:{s:s, s:o}, s:{s:s}, s:{s:s, s:{s:s, s:{s:{s:s}, s:{s:s}, "
	    "s:{s:s}}}}, s:{s:s}}}",
	    "type", "object",
	    "required", "status", "code", "message", "errors", "request_id",
	    "properties",
	    "status", "const", "error",
	    "code", "type", "string", "enum", sb_error_codes_json(),
	    "message", "type", "string",
	    "errors", "type", "array", "items", "type", "object",
	    "properties", "field", "type", "string", "code", "type", "string",
	    "message", "type", "string",
	    "request_id", "type", "string"),
	    "responses",
	    "RequestTimeout", error_response("REQUEST_TIMEOUT: the request "
	    "did not arrive in time; the connection closes"),
	    "PayloadTooLarge", error_response("PAYLOAD_TOO_LARGE: the body "
	    "is over the route's limit, refused before it is read"),
	    "UriTooLong", error_response("URI_TOO_LONG: the request line "
	    "or query is over the limit; the connection closes"),
	    "HeadersTooLarge", error_response("HEADERS_TOO_LARGE: a header "
	    "or the header set is over the limit; the connection closes"),
	    "security", "bearerAuth", "apiKey");
	return (doc);
}

static void
sys_openapi(struct sb_req *req)
{
	static char	*cached = NULL;
	json_t		*doc;

	/* The registry is fixed once the workers run: build it once. */
	if (cached == NULL) {
		if ((doc = sb_openapi_build()) == NULL) {
			sb_respond_error(req, 500, "INTERNAL", "cannot build "
			    "the OpenAPI document", NULL);
			return;
		}
		cached = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_decref(doc);
	}
	if (cached == NULL) {
		sb_respond_error(req, 500, "INTERNAL", "internal error", NULL);
		return;
	}
	sb_resp_header(req, "cache-control", "no-cache");
	sb_respond_raw(req, 200, "application/json; charset=utf-8", cached,
	    strlen(cached));
}
