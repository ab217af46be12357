/*
 * Test plugin: imports "svcx.rows" at a version svcx does not have (3),
 * so its setup fails after setup() returned; the route it declared must
 * never be served.
 */
#include <switchboard/plugin.h>

#include "svc_test.h"

static const struct sb_host_api	*api;
static const struct sb_service	*rows_svc;

static void
svcz_hello(struct sb_req *req)
{
	api->respond_json(req, 200, json_pack("{s:s}", "from", "svcz"));
}

static const struct sb_route routes[] = {
	{ .method = "GET", .path = "/api/v1/svcz/hello",
	  .flags = SB_ROUTE_PUBLIC, .handler = svcz_hello },
	SB_ROUTE_END
};

static const char *const deps[] = { "io.switchboard.test.svcx", NULL };

static int
svcz_setup(struct sb_plugin *p, const struct sb_host_api *host)
{
	api = host;
	if (api->routes_add(p, routes) != SB_OK ||
	    api->service_import(p, SVCX_ROWS, SVCX_ROWS_VERSION + 1,
	    &rows_svc) != SB_OK)
		return (SB_ERROR);
	return (SB_OK);
}

SB_PLUGIN(
	.id = "io.switchboard.test.svcz",
	.name = "svcz",
	.version = "1.0.0",
	.summary = "Test consumer wanting a too-new service",
	.depends = deps,
	.setup = svcz_setup,
)
