/*
 * Test plugin: imports "svcx.missing", which nobody exports, so its setup
 * fails; the route it declared must never be served.
 */
#include <switchboard/plugin.h>

static const struct sb_host_api	*api;
static const struct sb_service	*missing;

static void
svcm_hello(struct sb_req *req)
{
	api->respond_json(req, 200, json_pack("{s:s}", "from", "svcm"));
}

static const struct sb_route routes[] = {
	{ .method = "GET", .path = "/api/v1/svcm/hello",
	  .flags = SB_ROUTE_PUBLIC, .handler = svcm_hello },
	SB_ROUTE_END
};

static const char *const deps[] = { "io.switchboard.test.svcx", NULL };

static int
svcm_setup(struct sb_plugin *p, const struct sb_host_api *host)
{
	api = host;
	if (api->routes_add(p, routes) != SB_OK ||
	    api->service_import(p, "svcx.missing", 1, &missing) != SB_OK)
		return (SB_ERROR);
	return (SB_OK);
}

SB_PLUGIN(
	.id = "io.switchboard.test.svcm",
	.name = "svcm",
	.version = "1.0.0",
	.summary = "Test consumer of a service nobody exports",
	.depends = deps,
	.setup = svcm_setup,
)
