/*
 * Test plugin: calls getppid(2) without declaring it with seccomp_allow().
 * The worker sandbox must kill the worker (SIGSYS) rather than let it run;
 * Kore then starts a fresh worker and the host keeps serving.
 */
#include <sys/syscall.h>

#include <unistd.h>

#include <switchboard/plugin.h>

static const struct sb_host_api	*api;

static void
no_allow_ppid(struct sb_req *req)
{
	api->respond_json(req, 200, json_pack("{s:i}", "ppid",
	    (int)syscall(SYS_getppid)));
}

static const struct sb_route routes[] = {
	{ .method = "GET", .path = "/api/v1/no-allow/ppid",
	  .flags = SB_ROUTE_PUBLIC, .handler = no_allow_ppid },
	SB_ROUTE_END
};

static int
no_allow_setup(struct sb_plugin *p, const struct sb_host_api *host)
{
	api = host;
	return (api->routes_add(p, routes));
}

SB_PLUGIN(
	.id = "io.switchboard.test.no-allow",
	.name = "no_allow",
	.version = "1.0.0",
	.setup = no_allow_setup,
)
