/*
 * Test plugin for the audit plugin: publishes an event with whatever
 * payload a test sends, so a black-box test can check what the audit log
 * keeps of it (secret scrubbing, targets, actors) and can drive many
 * concurrent appends.  Answers with the publishing worker's pid.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <switchboard/plugin.h>

static const struct sb_host_api	*api;

static const struct sb_field publish_body[] = {
	{ .name = "name", .type = SB_T_STRING, .min_len = 1, .max_len = 64,
	  .description = "Event name after \"audit_probe.\" (default: event)" },
	{ .name = "data", .type = SB_T_OBJECT, .flags = SB_F_REQUIRED,
	  .description = "The payload, published as is" },
	SB_FIELD_END
};

static void
audit_probe_publish(struct sb_req *req)
{
	json_t		*body = api->req_json(req);
	const char	*suffix;
	char		 name[96];

	suffix = json_string_value(json_object_get(body, "name"));
	snprintf(name, sizeof(name), "audit_probe.%s", suffix != NULL ?
	    suffix : "event");
	if (api->publish(api->req_plugin(req), name, 1,
	    json_object_get(body, "data")) != SB_OK) {
		api->respond_error(req, 400, "VALIDATION_ERROR", "the bus "
		    "refused the event", NULL);
		return;
	}
	api->respond_json(req, 202, json_pack("{s:i, s:s}", "pid",
	    (int)getpid(), "name", name));
}

static const struct sb_route routes[] = {
	{ .method = "POST", .path = "/api/v1/audit_probe/publish",
	  .flags = SB_ROUTE_PUBLIC, .handler = audit_probe_publish,
	  .body = publish_body, .body_max = 262144 },
	SB_ROUTE_END
};

static int
audit_probe_setup(struct sb_plugin *p, const struct sb_host_api *host)
{
	api = host;
	if (api->routes_add(p, routes) != SB_OK ||
	    api->event_declare(p, "audit_probe.event", "Test event") != SB_OK)
		return (SB_ERROR);
	return (SB_OK);
}

SB_PLUGIN(
	.id = "io.switchboard.test.audit_probe",
	.name = "audit_probe",
	.version = "1.0.0",
	.summary = "Publishes test events for the audit plugin",
	.setup = audit_probe_setup,
)
