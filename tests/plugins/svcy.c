/*
 * Test plugin: imports "svcx.rows" and has one route that, in one
 * transaction, calls the service and writes its own row, then commits or
 * (with "rollback": true) rolls back.  The answer shows both writes'
 * transaction id and database backend: one connection, one transaction.
 */
#include <string.h>

#include <switchboard/plugin.h>

#include "svc_test.h"

static const struct sb_host_api	*api;
static const struct sb_service	*rows_svc;

#define ROWS	((const struct svcx_rows *)rows_svc)

static const struct sb_field write_body[] = {
	{ .name = "label", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .min_len = 1, .max_len = 64 },
	{ .name = "rollback", .type = SB_T_BOOL },
	SB_FIELD_END
};

static void
svcy_write(struct sb_req *req)
{
	struct sb_plugin	*p = api->req_plugin(req);
	json_t			*body = api->req_json(req), *theirs, *mine;
	struct sb_db_res	*r;
	const char		*params[1];
	int			 rollback;

	params[0] = json_string_value(json_object_get(body, "label"));
	rollback = json_is_true(json_object_get(body, "rollback"));
	if (api->db_begin(p) != SB_OK) {
		api->respond_error(req, 503, "UNAVAILABLE", "database "
		    "unavailable", NULL);
		return;
	}
	if ((theirs = ROWS->add(p, params[0])) == NULL) {
		api->db_rollback(p);
		api->respond_error(req, 500, "INTERNAL", "service failed",
		    NULL);
		return;
	}
	r = api->db_query(p, "INSERT INTO svcy_rows (label) VALUES ($1) "
	    "RETURNING id, txid_current()::text AS txid, pg_backend_pid() "
	    "AS backend", 1, params);
	mine = api->db_ok(r) && api->db_rows(r) == 1 ?
	    api->db_row_json(r, 0) : NULL;
	api->db_free(r);
	if (mine == NULL || rollback || api->db_commit(p) != SB_OK) {
		api->db_rollback(p);
		if (mine == NULL) {
			json_decref(theirs);
			api->respond_error(req, 500, "INTERNAL", "own write "
			    "failed", NULL);
			return;
		}
	}
	api->respond_json(req, 200, json_pack("{s:o, s:o, s:b, s:i}",
	    "exporter", theirs, "own", mine, "committed", !rollback,
	    "service_version", (int)rows_svc->version));
}

static const struct sb_route routes[] = {
	{ .method = "POST", .path = "/api/v1/svcy/write",
	  .flags = SB_ROUTE_PUBLIC, .handler = svcy_write,
	  .body = write_body },
	SB_ROUTE_END
};

static const char *const deps[] = { "io.switchboard.test.svcx", NULL };

static int
svcy_setup(struct sb_plugin *p, const struct sb_host_api *host)
{
	api = host;
	if (api->service_import(p, SVCX_ROWS, 1, &rows_svc) != SB_OK ||
	    rows_svc != NULL ||		/* never during setup() */
	    api->migrations_add(p, "svcy_migrations") != SB_OK ||
	    api->routes_add(p, routes) != SB_OK)
		return (SB_ERROR);
	return (SB_OK);
}

SB_PLUGIN(
	.id = "io.switchboard.test.svcy",
	.name = "svcy",
	.version = "1.0.0",
	.summary = "Test service consumer",
	.depends = deps,
	.setup = svcy_setup,
)
