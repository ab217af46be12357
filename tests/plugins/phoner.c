/*
 * Test plugin: calls the host's phone-number helper (api->phone_e164)
 * from a sandboxed worker, so a black-box test sees that libphonenumber,
 * initialised in the parent, answers inside the chroot and seccomp.
 *
 *   GET /api/v1/phoner/e164?number=...&country=...  -> {"e164": "+..."}
 *      422 VALIDATION_ERROR (API.md: a number that is not one),
 *      400 without number
 */

#include <switchboard/plugin.h>

static const struct sb_host_api	*api;

static void
phoner_e164(struct sb_req *req)
{
	const char	*number, *country;
	char		 out[24];

	number = api->req_query(req, "number");
	country = api->req_query(req, "country");
	if (number == NULL) {
		api->respond_error(req, 400, "VALIDATION_ERROR", "number is "
		    "required", NULL);
		return;
	}
	if (api->phone_e164(api->req_plugin(req), number, country, out,
	    sizeof(out)) != SB_OK) {
		api->respond_error(req, 422, "VALIDATION_ERROR", "number is "
		    "not a phone number", json_pack("[{s:s, s:s, s:s}]",
		    "field", "number", "code", "INVALID_FORMAT", "message",
		    "not a possible E.164 number"));
		return;
	}
	api->respond_json(req, 200, json_pack("{s:s}", "e164", out));
}

static const struct sb_route routes[] = {
	{ .method = "GET", .path = "/api/v1/phoner/e164",
	  .flags = SB_ROUTE_PUBLIC, .handler = phoner_e164 },
	SB_ROUTE_END
};

static int
phoner_setup(struct sb_plugin *p, const struct sb_host_api *host)
{
	api = host;
	if (!SB_API_HAS(api, phone_e164)) {
		api->log(p, SB_LOG_ERROR, "this host has no phone_e164");
		return (SB_ERROR);
	}
	return (api->routes_add(p, routes));
}

SB_PLUGIN(
	.id = "io.switchboard.test.phoner",
	.name = "phoner",
	.version = "1.0.0",
	.summary = "Test: the phone-number helper from a worker",
	.setup = phoner_setup,
)
