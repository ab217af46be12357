/*
 * Test plugin: a channel plugin as the customers plugin sees one.  It
 * imports "customers.directory", adds two timeline sources ("alpha",
 * "beta") from init() that return rows of its own table, and has a route
 * that finds or creates the customer of an inbound number inside its own
 * transaction, the way telephony and WhatsApp will.  Nothing in the
 * customers plugin knows about it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <switchboard/plugin.h>
#include <switchboard/helpers.h>
#include <switchboard/services/customers.h>

static const struct sb_host_api			*api;
static struct sb_plugin				*self;
static const struct sb_customers_directory	*dir;
static int					 bad_refused, dup_refused;

static json_t	*alpha_items(struct sb_plugin *, int64_t, const json_t *,
		    unsigned int);
static json_t	*beta_items(struct sb_plugin *, int64_t, const json_t *,
		    unsigned int);

static const struct sb_timeline_source alpha = {
	.size = sizeof(struct sb_timeline_source), .channel = "alpha",
	.items = alpha_items
};
static const struct sb_timeline_source beta = {
	.size = sizeof(struct sb_timeline_source), .channel = "beta",
	.items = beta_items
};
static const struct sb_timeline_source bad = {
	.size = sizeof(struct sb_timeline_source), .channel = "Not-A-Channel",
	.items = alpha_items
};

static json_t *
items(const char *channel, int64_t customer_id, const json_t *before,
    unsigned int limit)
{
	struct sb_db_res	*r;
	const char		*params[6];
	char			 cid[32], lim[32], bid[32];
	json_t			*out;
	int			 i;

	snprintf(cid, sizeof(cid), "%lld", (long long)customer_id);
	snprintf(lim, sizeof(lim), "%u", limit);
	params[0] = channel;
	params[1] = cid;
	/* The cursor is the host's, already validated: {at, channel, id}. */
	params[2] = json_string_value(json_object_get(before, "at"));
	params[3] = json_string_value(json_object_get(before, "channel"));
	snprintf(bid, sizeof(bid), "%lld", (long long)json_integer_value(
	    json_object_get(before, "id")));
	params[4] = bid;
	params[5] = lim;
	/* Older than the cursor in the timeline's order: at descending,
	 * then channel, then id descending. */
	r = api->db_query(self, "SELECT id, direction, status, summary, "
	    "CASE channel WHEN 'alpha' THEN 'message' ELSE 'call' END AS kind, "
	    SB_SQL_TS("at") " AS at FROM timeline_probe_items WHERE "
	    "channel = $1 AND customer_id = $2::bigint AND ($3::timestamptz "
	    "IS NULL OR at < $3::timestamptz OR (at = $3::timestamptz AND "
	    "($1 COLLATE \"C\" > $4::text COLLATE \"C\" OR ($1 = $4::text "
	    "AND id < $5::bigint)))) ORDER BY at DESC, id DESC "
	    "LIMIT $6::bigint", 6, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		return (NULL);
	}
	out = json_array();
	for (i = 0; i < api->db_rows(r); i++)
		json_array_append_new(out, api->db_row_json(r, i));
	api->db_free(r);
	return (out);
}

static json_t *
alpha_items(struct sb_plugin *p, int64_t customer_id, const json_t *before,
    unsigned int limit)
{
	(void)p;
	return (items("alpha", customer_id, before, limit));
}

static json_t *
beta_items(struct sb_plugin *p, int64_t customer_id, const json_t *before,
    unsigned int limit)
{
	(void)p;
	return (items("beta", customer_id, before, limit));
}

static const char *const channels[] = { "alpha", "beta", NULL };

static const struct sb_field item_body[] = {
	{ .name = "customer_id", .type = SB_T_INT,
	  .flags = SB_F_REQUIRED | SB_F_RANGE, .min = 1,
	  .max = 9007199254740991LL },
	{ .name = "channel", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .choices = channels },
	{ .name = "summary", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .max_len = 140 },
	{ .name = "at", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .format = "date-time" },
	SB_FIELD_END
};

static const struct sb_field inbound_body[] = {
	{ .name = "phone", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .max_len = 64 },
	SB_FIELD_END
};

/* Add an item to the probe's own table. */
static void
probe_item(struct sb_req *req)
{
	struct sb_db_res	*r;
	json_t			*b = api->req_json(req);
	const char		*params[4];
	char			 cid[32];

	snprintf(cid, sizeof(cid), "%lld", (long long)sb_jint(b,
	    "customer_id"));
	params[0] = sb_jstr(b, "channel");
	params[1] = cid;
	params[2] = sb_jstr(b, "summary");
	params[3] = sb_jstr(b, "at");
	r = api->db_query(self, "INSERT INTO timeline_probe_items (channel, "
	    "customer_id, direction, status, summary, at) VALUES ($1, "
	    "$2::bigint, 'outbound', 'sent', $3, $4::timestamptz) "
	    "RETURNING id", 4, params);
	if (!api->db_ok(r))
		api->respond_error(req, 503, "UNAVAILABLE", "database", NULL);
	else
		api->respond_json(req, 201, json_pack("{s:I}", "id",
		    (json_int_t)strtoll(api->db_value(r, 0, 0), NULL, 10)));
	api->db_free(r);
}

/* An inbound message from a number: the customer is found or created
 * and the message stored, in one transaction of this plugin's. */
static void
probe_inbound(struct sb_req *req)
{
	struct sb_db_res	*r;
	const char		*params[2];
	char			 e164[32], cid[32];
	int64_t			 id;
	int			 created;

	if (api->phone_e164(self, sb_jstr(api->req_json(req), "phone"), NULL,
	    e164, sizeof(e164)) != SB_OK) {
		api->respond_error(req, 422, "VALIDATION_ERROR", "bad phone",
		    sb_field_error("phone", "INVALID_FORMAT", "not a phone "
		    "number"));
		return;
	}
	if (api->db_begin(self) != SB_OK) {
		api->respond_error(req, 503, "UNAVAILABLE", "database", NULL);
		return;
	}
	if ((id = dir->find_or_create(self, e164, &created)) == -1) {
		api->db_rollback(self);
		api->respond_error(req, 503, "UNAVAILABLE", "find_or_create "
		    "failed", NULL);
		return;
	}
	snprintf(cid, sizeof(cid), "%lld", (long long)id);
	params[0] = cid;
	r = api->db_query(self, "INSERT INTO timeline_probe_items (channel, "
	    "customer_id, direction, status, summary) VALUES ('alpha', "
	    "$1::bigint, 'inbound', 'received', 'inbound message')", 1,
	    params);
	if (!api->db_ok(r) || api->db_commit(self) != SB_OK) {
		api->db_free(r);
		api->db_rollback(self);
		api->respond_error(req, 503, "UNAVAILABLE", "database", NULL);
		return;
	}
	api->db_free(r);
	api->respond_json(req, 200, json_pack("{s:I, s:b, s:i}",
	    "customer_id", (json_int_t)id, "created", created, "pid",
	    (int)getpid()));
}

/* The customer through the service, and what init() saw. */
static void
probe_get(struct sb_req *req)
{
	const char	*id = sb_positive_id(api->req_param(req, "id"));
	json_t		*c;
	int		 dberr = 0;

	c = id == NULL ? NULL : dir->get(self, strtoll(id, NULL, 10), &dberr);
	api->respond_json(req, 200, json_pack("{s:o, s:b, s:b, s:b}",
	    "customer", c != NULL ? c : json_null(), "dberr", dberr,
	    "bad_refused", bad_refused, "dup_refused", dup_refused));
}

static const struct sb_route routes[] = {
	{ .method = "POST", .path = "/api/v1/timeline-probe/items",
	  .flags = SB_ROUTE_STAFF, .handler = probe_item, .body = item_body },
	{ .method = "POST", .path = "/api/v1/timeline-probe/inbound",
	  .flags = SB_ROUTE_STAFF, .handler = probe_inbound,
	  .body = inbound_body },
	{ .method = "GET", .path = "/api/v1/timeline-probe/customers/{id}",
	  .flags = SB_ROUTE_STAFF, .handler = probe_get },
	SB_ROUTE_END
};

static const char *const deps[] = { "io.switchboard.customers", NULL };

static int
probe_setup(struct sb_plugin *p, const struct sb_host_api *host)
{
	api = host;
	self = p;
	if (api->routes_add(p, routes) != SB_OK ||
	    api->migrations_add(p, "timeline_probe_migrations") != SB_OK ||
	    api->service_import(p, SB_CUSTOMERS_DIRECTORY,
	    SB_CUSTOMERS_DIRECTORY_VERSION,
	    (const struct sb_service **)&dir) != SB_OK)
		return (SB_ERROR);
	return (SB_OK);
}

static int
probe_init(struct sb_plugin *p)
{
	if (dir->timeline_source_add(p, &alpha) != SB_OK ||
	    dir->timeline_source_add(p, &beta) != SB_OK)
		return (SB_ERROR);
	bad_refused = dir->timeline_source_add(p, &bad) == SB_ERROR;
	dup_refused = dir->timeline_source_add(p, &alpha) == SB_ERROR;
	return (SB_OK);
}

SB_PLUGIN(
	.id = "io.switchboard.test.timeline_probe",
	.name = "timeline_probe",
	.version = "1.0.0",
	.depends = deps,
	.setup = probe_setup,
	.init = probe_init,
)
