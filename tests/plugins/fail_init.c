/* Test plugin: sets up fine, then fails init() in every worker. */
#include <switchboard/plugin.h>

static const struct sb_host_api	*api;

static void
fail_init_hello(struct sb_req *req)
{
	api->respond_json(req, 200, json_pack("{s:b}", "reached", 1));
}

static const struct sb_route routes[] = {
	{ .method = "GET", .path = "/api/v1/fail-init/hello",
	  .flags = SB_ROUTE_PUBLIC, .handler = fail_init_hello },
	SB_ROUTE_END
};

static int
fail_init_setup(struct sb_plugin *p, const struct sb_host_api *host)
{
	api = host;
	return (api->routes_add(p, routes));
}

static int
fail_init_init(struct sb_plugin *p)
{
	api->log(p, SB_LOG_ERROR, "refusing to start on purpose");
	return (SB_ERROR);
}

SB_PLUGIN(
	.id = "io.switchboard.test.fail-init",
	.name = "fail_init",
	.version = "1.0.0",
	.setup = fail_init_setup,
	.init = fail_init_init,
)
