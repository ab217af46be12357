/* Test plugin: depends on the example plugin and serves one route. */
#include <switchboard/plugin.h>

static const struct sb_host_api	*api;

static void
dependent_hello(struct sb_req *req)
{
	api->respond_json(req, 200, json_pack("{s:s}", "from", "dependent"));
}

static const struct sb_route routes[] = {
	{ .method = "GET", .path = "/api/v1/dependent/hello",
	  .flags = SB_ROUTE_PUBLIC, .handler = dependent_hello },
	SB_ROUTE_END
};

static const char *const deps[] = { "io.switchboard.example", NULL };

static int
dependent_setup(struct sb_plugin *p, const struct sb_host_api *host)
{
	api = host;
	return (api->routes_add(p, routes));
}

SB_PLUGIN(
	.id = "io.switchboard.test.dependent",
	.name = "dependent",
	.version = "1.0.0",
	.depends = deps,
	.setup = dependent_setup,
)
