/*
 * Test plugin: a plugin route that deletes a person through
 * api->privacy_erase_all (ABI 1.3), the way DELETE
 * /api/v1/customers/{id} does, so a black-box test sees the erase, its
 * counts and its audit record come out as POST /api/v1/privacy/delete's.
 *
 *   POST /api/v1/eraser/erase {"kind": "donor"|"customer"|"phone",
 *        "value": "...", "in_transaction": bool}
 *      200 {"deleted": {...}}; 500 when the host refused or failed
 *      (in_transaction: called with a transaction open, which it must
 *      refuse)
 */

#include <string.h>

#include <switchboard/plugin.h>

static const struct sb_host_api	*api;

static const char *const kinds[] = { "customer", "donor", "phone", NULL };

static const struct sb_field erase_body[] = {
	{ .name = "kind", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .choices = kinds },
	{ .name = "value", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .max_len = 1000 },
	{ .name = "in_transaction", .type = SB_T_BOOL },
	SB_FIELD_END
};

static void
eraser_erase(struct sb_req *req)
{
	struct sb_plugin	*p = api->req_plugin(req);
	struct sb_subject	 s;
	json_t			*body, *deleted;
	const char		*kind;
	int			 tx, rc;

	body = api->req_json(req);
	kind = json_string_value(json_object_get(body, "kind"));
	memset(&s, 0, sizeof(s));
	s.size = sizeof(s);
	s.kind = strcmp(kind, "customer") == 0 ? SB_SUBJECT_CUSTOMER :
	    strcmp(kind, "donor") == 0 ? SB_SUBJECT_DONOR : SB_SUBJECT_PHONE;
	s.value = json_string_value(json_object_get(body, "value"));
	tx = json_is_true(json_object_get(body, "in_transaction"));
	if (tx && api->db_begin(p) != SB_OK) {
		api->respond_error(req, 503, "UNAVAILABLE", "no database",
		    NULL);
		return;
	}
	rc = api->privacy_erase_all(req, &s, &deleted);
	if (tx)
		api->db_rollback(p);
	if (rc != SB_OK) {
		api->respond_error(req, 500, "INTERNAL", "the erase failed",
		    NULL);
		return;
	}
	api->respond_json(req, 200, json_pack("{s:o}", "deleted", deleted));
}

static const struct sb_route routes[] = {
	{ .method = "POST", .path = "/api/v1/eraser/erase",
	  .permission = "privacy.manage", .handler = eraser_erase,
	  .summary = "Test: erase a person through privacy_erase_all",
	  .body = erase_body },
	SB_ROUTE_END
};

static int
eraser_setup(struct sb_plugin *p, const struct sb_host_api *host)
{
	api = host;
	if (!SB_API_HAS(api, privacy_erase_all)) {
		api->log(p, SB_LOG_ERROR, "this host has no privacy_erase_all");
		return (SB_ERROR);
	}
	return (api->routes_add(p, routes));
}

SB_PLUGIN(
	.id = "io.switchboard.test.eraser",
	.name = "eraser",
	.version = "1.0.0",
	.summary = "Test: a plugin route erasing a person everywhere",
	.setup = eraser_setup,
)
