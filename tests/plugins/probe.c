/*
 * Test plugin: observes the host from inside.  It publishes events and
 * records, per worker process, the ones its subscription receives, so a
 * black-box test can check exactly-once delivery to every worker.  It
 * also has a handler that forgets to answer and one that touches the
 * database on every call.
 */
#include <sys/syscall.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <switchboard/plugin.h>

static const struct sb_host_api	*api;

static const struct sb_field publish_body[] = {
	{ .name = "token", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .min_len = 1, .max_len = 64 },
	SB_FIELD_END
};

static void
probe_publish(struct sb_req *req)
{
	json_t	*data;

	data = json_pack("{s:O}", "token", json_object_get(api->req_json(req),
	    "token"));
	api->publish(api->req_plugin(req), "probe.ping", 1, data);
	json_decref(data);
	api->respond_json(req, 202, json_pack("{s:i}", "pid", getpid()));
}

static void
probe_received(struct sb_req *req)
{
	struct sb_db_res	*r;
	const char		*params[1];
	json_t			*rows;
	int			 i;

	params[0] = api->req_query(req, "token");
	if (params[0] == NULL) {
		api->respond_error(req, 400, "VALIDATION_ERROR", "token is "
		    "required", NULL);
		return;
	}
	r = api->db_query(api->req_plugin(req), "SELECT pid, count(*)::int "
	    "AS count FROM probe_received WHERE token = $1 GROUP BY pid "
	    "ORDER BY pid", 1, params);
	rows = json_array();
	for (i = 0; i < api->db_rows(r); i++)
		json_array_append_new(rows, api->db_row_json(r, i));
	api->db_free(r);
	api->respond_json(req, 200, json_pack("{s:o, s:n}", "data", rows,
	    "next_cursor"));
}

static void
probe_noresponse(struct sb_req *req)
{
	(void)req;
}

static void
probe_db(struct sb_req *req)
{
	struct sb_db_res	*r;

	r = api->db_query(api->req_plugin(req), "SELECT now() AS now, "
	    "pg_backend_pid() AS backend", 0, NULL);
	if (!api->db_ok(r)) {
		api->db_free(r);
		api->respond_error(req, 503, "UNAVAILABLE", "database "
		    "unavailable", NULL);
		return;
	}
	api->respond_json(req, 200, api->db_row_json(r, 0));
	api->db_free(r);
}

static void
probe_whoami(struct sb_req *req)
{
	api->respond_json(req, 200, json_pack("{s:i, s:s?}", "pid", getpid(),
	    "param", api->req_param(req, "name")));
}

/* Needs getppid(2), which Kore's worker filter does not allow: the
 * allowance declared in setup() is what lets this run in the sandbox. */
static void
probe_ppid(struct sb_req *req)
{
	api->respond_json(req, 200, json_pack("{s:i, s:i}", "pid", getpid(),
	    "ppid", (int)syscall(SYS_getppid)));
}

static const struct sb_route routes[] = {
	{ .method = "POST", .path = "/api/v1/probe/publish",
	  .flags = SB_ROUTE_PUBLIC, .handler = probe_publish,
	  .body = publish_body },
	{ .method = "GET", .path = "/api/v1/probe/received",
	  .flags = SB_ROUTE_PUBLIC, .handler = probe_received },
	{ .method = "GET", .path = "/api/v1/probe/noresponse",
	  .flags = SB_ROUTE_PUBLIC, .handler = probe_noresponse },
	{ .method = "GET", .path = "/api/v1/probe/ppid",
	  .flags = SB_ROUTE_PUBLIC, .handler = probe_ppid },
	{ .method = "GET", .path = "/api/v1/probe/db",
	  .flags = SB_ROUTE_PUBLIC, .handler = probe_db },
	{ .method = "GET", .path = "/api/v1/probe/hello/{name}",
	  .flags = SB_ROUTE_PUBLIC, .handler = probe_whoami },
	{ .method = "DELETE", .path = "/api/v1/probe/hello/{name}",
	  .permission = "probe.manage", .handler = probe_whoami },
	SB_ROUTE_END
};

static void
probe_on_ping(struct sb_plugin *p, const struct sb_event *ev, void *arg)
{
	struct sb_db_res	*r;
	const char		*params[2];
	char			 pid[16];

	(void)arg;
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	params[0] = json_string_value(json_object_get(ev->data, "token"));
	params[1] = pid;
	r = api->db_query(p, "INSERT INTO probe_received (token, pid) "
	    "VALUES ($1, $2::int)", 2, params);
	if (!api->db_ok(r))
		api->log(p, SB_LOG_ERROR, "cannot record %s", ev->id);
	api->db_free(r);
}

static const long probe_syscalls[] = { SYS_getppid };

static const struct sb_config_key probe_config[] = {
	{ .key = "label", .default_value = "probe",
	  .description = "Shown in /api/v1/plugins" },
	{ .key = "token", .flags = SB_CONF_SECRET,
	  .description = "A secret: never shown" },
	SB_CONFIG_END
};

static int
probe_setup(struct sb_plugin *p, const struct sb_host_api *host)
{
	api = host;
	if (api->seccomp_allow(p, probe_syscalls, 1) != SB_OK ||
	    api->config_declare(p, probe_config) != SB_OK ||
	    api->permission_add(p, "probe.manage", "Test permission") !=
	    SB_OK || api->routes_add(p, routes) != SB_OK ||
	    api->migrations_add(p, "probe_migrations") != SB_OK ||
	    api->event_declare(p, "probe.ping", "Test event") != SB_OK ||
	    api->subscribe(p, "probe.*", probe_on_ping, NULL) != SB_OK)
		return (SB_ERROR);
	return (SB_OK);
}

SB_PLUGIN(
	.id = "io.switchboard.test.probe",
	.name = "probe",
	.version = "1.0.0",
	.summary = "Test probe",
	.setup = probe_setup,
)
