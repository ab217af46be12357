/*
 * Test plugin: exports the service "svcx.rows" (svc_test.h).  Its one
 * function writes into svcx's own table through svcx's own handle, kept
 * from setup(), whoever calls it.
 */
#include <switchboard/plugin.h>

#include "svc_test.h"

static const struct sb_host_api	*api;
static struct sb_plugin		*self;

static json_t *
svcx_add(struct sb_plugin *caller, const char *label)
{
	struct sb_db_res	*r;
	const char		*params[1] = { label };
	json_t			*out = NULL;

	(void)caller;
	r = api->db_query(self, "INSERT INTO svcx_rows (label) VALUES ($1) "
	    "RETURNING id, txid_current()::text AS txid, pg_backend_pid() "
	    "AS backend", 1, params);
	if (api->db_ok(r) && api->db_rows(r) == 1)
		out = api->db_row_json(r, 0);
	api->db_free(r);
	return (out);
}

static const struct svcx_rows service = {
	.hdr = { .size = sizeof(struct svcx_rows),
	    .version = SVCX_ROWS_VERSION },
	.add = svcx_add,
};

static int
svcx_setup(struct sb_plugin *p, const struct sb_host_api *host)
{
	api = host;
	self = p;
	if (api->migrations_add(p, "svcx_migrations") != SB_OK ||
	    api->service_export(p, SVCX_ROWS, &service.hdr) != SB_OK)
		return (SB_ERROR);
	return (SB_OK);
}

SB_PLUGIN(
	.id = "io.switchboard.test.svcx",
	.name = "svcx",
	.version = "1.0.0",
	.summary = "Test service exporter",
	.setup = svcx_setup,
)
