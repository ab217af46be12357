/* Test plugin: registers a route the example plugin already serves. */
#include <switchboard/plugin.h>

static const struct sb_host_api	*api;

static void
clash_hello(struct sb_req *req)
{
	api->respond_json(req, 200, json_pack("{s:s}", "from", "clash"));
}

static const struct sb_route routes[] = {
	{ .method = "GET", .path = "/api/v1/clash/own",
	  .flags = SB_ROUTE_PUBLIC, .handler = clash_hello },
	/* Same shape as example's /api/v1/example/notes/{id}. */
	{ .method = "GET", .path = "/api/v1/example/notes/{note}",
	  .flags = SB_ROUTE_PUBLIC, .handler = clash_hello },
	SB_ROUTE_END
};

static const char *const deps[] = { "io.switchboard.example", NULL };

static int
clash_setup(struct sb_plugin *p, const struct sb_host_api *host)
{
	api = host;
	return (api->routes_add(p, routes));
}

SB_PLUGIN(
	.id = "io.switchboard.test.clash",
	.name = "clash",
	.version = "1.0.0",
	.setup = clash_setup,
	.depends = deps,
)
