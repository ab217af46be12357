/*
 * Test plugin: owns the WebSocket room prefix "roomy".  Staff may join any
 * roomy:* room, a donor only roomy:<its donor_id>, nobody else anything.
 * Public test routes publish to a room (the answer says which worker
 * published and that worker's running count, so a test can check the
 * order of delivery per publisher) and mint donor tokens.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <switchboard/plugin.h>

static const struct sb_host_api	*api;
static long long		 published;	/* per worker */

static const struct sb_field publish_body[] = {
	{ .name = "room", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .min_len = 1, .max_len = 256 },
	{ .name = "name", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .min_len = 1, .max_len = 128 },
	{ .name = "data", .type = SB_T_OBJECT },
	SB_FIELD_END
};

static const struct sb_field donor_body[] = {
	{ .name = "donor_id", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .min_len = 1, .max_len = 128 },
	SB_FIELD_END
};

static void
roomy_publish(struct sb_req *req)
{
	json_t		*body, *data;
	long long	 n;

	body = api->req_json(req);
	data = json_object_get(body, "data");
	data = data != NULL ? json_deep_copy(data) : json_object();
	n = ++published;
	json_object_set_new(data, "_pid", json_integer(getpid()));
	json_object_set_new(data, "_n", json_integer(n));
	if (api->publish_room(api->req_plugin(req), json_string_value(
	    json_object_get(body, "room")), json_string_value(
	    json_object_get(body, "name")), 1, data) != SB_OK) {
		json_decref(data);
		api->respond_error(req, 422, "VALIDATION_ERROR", "refused by "
		    "publish_room", NULL);
		return;
	}
	json_decref(data);
	api->respond_json(req, 202, json_pack("{s:i, s:I}", "pid", getpid(),
	    "n", n));
}

static void
roomy_donor(struct sb_req *req)
{
	char	*token;

	token = api->donor_token(api->req_plugin(req), json_string_value(
	    json_object_get(api->req_json(req), "donor_id")), "Test Donor");
	if (token == NULL) {
		api->respond_error(req, 500, "INTERNAL", "no token", NULL);
		return;
	}
	api->respond_json(req, 201, json_pack("{s:s}", "donor_token", token));
	free(token);
}

static int
roomy_authorise(struct sb_plugin *p, const struct sb_principal *who,
    const char *room)
{
	(void)p;
	if (strncmp(room, "roomy:", 6) != 0)
		return (0);
	if (who->kind == SB_ACTOR_USER)
		return (1);
	return (who->kind == SB_ACTOR_DONOR && who->donor_id != NULL &&
	    strcmp(room + 6, who->donor_id) == 0);
}

static const struct sb_route routes[] = {
	{ .method = "POST", .path = "/api/v1/roomy/publish",
	  .flags = SB_ROUTE_PUBLIC, .handler = roomy_publish,
	  .body = publish_body, .body_max = 1048576 },
	{ .method = "POST", .path = "/api/v1/roomy/donor",
	  .flags = SB_ROUTE_PUBLIC, .handler = roomy_donor,
	  .body = donor_body },
	SB_ROUTE_END
};

static int
roomy_setup(struct sb_plugin *p, const struct sb_host_api *host)
{
	api = host;
	if (!SB_API_HAS(api, room_add) || !SB_API_HAS(api, publish_room))
		return (SB_ERROR);
	if (api->routes_add(p, routes) != SB_OK ||
	    api->room_add(p, "roomy", roomy_authorise) != SB_OK)
		return (SB_ERROR);
	return (SB_OK);
}

SB_PLUGIN(
	.id = "io.switchboard.test.roomy",
	.name = "roomy",
	.version = "1.0.0",
	.summary = "Test plugin owning the WebSocket room prefix roomy",
	.setup = roomy_setup,
)
