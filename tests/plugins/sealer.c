/*
 * Test plugin for sealed data and key rotation: seals values into its own
 * table with a blind index each, checks that they all open, and implements
 * the rekey hook the host's rotation job (src/rekey.c) calls.
 *
 * Routes (public: this is a test plugin):
 *   POST /api/v1/sealer/fill   {n, prefix}: seals "<prefix>-<i>" for i in
 *                              1..n, in one transaction -> {inserted}
 *   GET  /api/v1/sealer/check  -> {total, opened, current, indexed}:
 *                              values that open to their label, that are
 *                              already under the current key (reseal
 *                              0), whose stored index is the index of
 *                              their label now
 *   GET  /api/v1/sealer/find?label=  rows whose blind index matches
 *
 * Config: rekey_delay_ms (default 0) makes each rekey batch take at least
 * that long (pg_sleep inside the batch's transaction), so that a test can
 * kill a worker while a batch is open.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <switchboard/plugin.h>

static const struct sb_host_api	*api;
static long long		 delay_ms;

static int
sealer_rekey(struct sb_plugin *p, json_t *state, unsigned int batch,
    unsigned int *resealed)
{
	struct sb_db_res	*r, *u;
	const char		*params[3];
	char			 after[32], lim[16], secs[32], *out, *idx;
	const char		*label;
	int			 i, n, rc, ret = -1;
	long long		 last;

	if (delay_ms > 0) {
		snprintf(secs, sizeof(secs), "%.3f", (double)delay_ms / 1000);
		params[0] = secs;
		r = api->db_query(p, "SELECT pg_sleep($1::float8)", 1, params);
		api->db_free(r);
	}
	last = json_integer_value(json_object_get(state, "after"));
	snprintf(after, sizeof(after), "%lld", last);
	snprintf(lim, sizeof(lim), "%u", batch);
	params[0] = after;
	params[1] = lim;
	r = api->db_query(p, "SELECT id, sealed, label FROM sealer_values "
	    "WHERE id > $1::bigint ORDER BY id LIMIT $2::int", 2, params);
	if (!api->db_ok(r))
		goto out;
	n = api->db_rows(r);
	for (i = 0; i < n; i++) {
		rc = api->reseal(p, api->db_value(r, i, 1), &out);
		if (rc == -1)
			goto out;
		if (rc == 1) {
			/* The index is recomputed from the plaintext: a new
			 * SB_INDEX_KEY takes effect with the rotation. */
			label = api->db_value(r, i, 2);
			idx = api->blind_index(p, "label", label,
			    strlen(label));
			params[0] = api->db_value(r, i, 0);
			params[1] = out;
			params[2] = idx;
			u = api->db_query(p, "UPDATE sealer_values SET sealed = "
			    "$2, idx = coalesce($3, idx) WHERE id = $1::bigint",
			    3, params);
			free(out);
			free(idx);
			if (!api->db_ok(u)) {
				api->db_free(u);
				goto out;
			}
			api->db_free(u);
			(*resealed)++;
		}
		last = strtoll(api->db_value(r, i, 0), NULL, 10);
	}
	json_object_set_new(state, "after", json_integer(last));
	ret = n < (int)batch ? 0 : 1;
out:
	api->db_free(r);
	return (ret);
}

static void
sealer_fill(struct sb_req *req)
{
	struct sb_plugin	*p = api->req_plugin(req);
	json_t			*body = api->req_json(req), *labels, *sealed;
	json_t			*idxs;
	struct sb_db_res	*r;
	const char		*prefix, *params[3];
	char			 label[128], *s, *idx, *t[3];
	long long		 n, i;
	int			 ok;

	n = json_integer_value(json_object_get(body, "n"));
	prefix = json_string_value(json_object_get(body, "prefix"));
	labels = json_array();
	sealed = json_array();
	idxs = json_array();
	for (i = 1; i <= n; i++) {
		snprintf(label, sizeof(label), "%s-%lld", prefix, i);
		s = api->seal(p, label, strlen(label));
		idx = api->blind_index(p, "label", label, strlen(label));
		if (s == NULL || idx == NULL) {
			free(s);
			free(idx);
			json_decref(labels);
			json_decref(sealed);
			json_decref(idxs);
			api->respond_error(req, 503, "UNAVAILABLE", "no data "
			    "key", NULL);
			return;
		}
		json_array_append_new(labels, json_string(label));
		json_array_append_new(sealed, json_string(s));
		json_array_append_new(idxs, json_string(idx));
		free(s);
		free(idx);
	}
	t[0] = json_dumps(labels, JSON_COMPACT);
	t[1] = json_dumps(sealed, JSON_COMPACT);
	t[2] = json_dumps(idxs, JSON_COMPACT);
	params[0] = t[0];
	params[1] = t[1];
	params[2] = t[2];
	r = api->db_query(p, "INSERT INTO sealer_values (label, sealed, idx) "
	    "SELECT l, s, x FROM unnest(ARRAY(SELECT jsonb_array_elements_text("
	    "$1::jsonb)), ARRAY(SELECT jsonb_array_elements_text($2::jsonb)), "
	    "ARRAY(SELECT jsonb_array_elements_text($3::jsonb))) AS v(l, s, x)",
	    3, params);
	ok = api->db_ok(r);
	api->db_free(r);
	free(t[0]);
	free(t[1]);
	free(t[2]);
	json_decref(labels);
	json_decref(sealed);
	json_decref(idxs);
	if (!ok) {
		api->respond_error(req, 503, "UNAVAILABLE", "database", NULL);
		return;
	}
	api->respond_json(req, 201, json_pack("{s:I}", "inserted",
	    (json_int_t)n));
}

static void
sealer_check(struct sb_req *req)
{
	struct sb_plugin	*p = api->req_plugin(req);
	struct sb_db_res	*r;
	const char		*label;
	char			*plain, *again, *idx;
	int			 i, n, opened = 0, current = 0, indexed = 0;

	r = api->db_query(p, "SELECT label, sealed, idx FROM sealer_values "
	    "ORDER BY id", 0, NULL);
	if (!api->db_ok(r)) {
		api->db_free(r);
		api->respond_error(req, 503, "UNAVAILABLE", "database", NULL);
		return;
	}
	n = api->db_rows(r);
	for (i = 0; i < n; i++) {
		label = api->db_value(r, i, 0);
		plain = api->unseal(p, api->db_value(r, i, 1), NULL);
		if (plain != NULL && strcmp(plain, label) == 0)
			opened++;
		free(plain);
		if (api->reseal(p, api->db_value(r, i, 1), &again) == 0)
			current++;
		free(again);
		idx = api->blind_index(p, "label", label, strlen(label));
		if (idx != NULL && strcmp(idx, api->db_value(r, i, 2)) == 0)
			indexed++;
		free(idx);
	}
	api->db_free(r);
	api->respond_json(req, 200, json_pack("{s:i, s:i, s:i, s:i}", "total",
	    n, "opened", opened, "current", current, "indexed", indexed));
}

static void
sealer_find(struct sb_req *req)
{
	struct sb_plugin	*p = api->req_plugin(req);
	struct sb_db_res	*r;
	const char		*label, *params[1];
	char			*idx;
	json_t			*out;
	int			 i;

	if ((label = api->req_query(req, "label")) == NULL) {
		api->respond_error(req, 400, "VALIDATION_ERROR", "label is "
		    "required", json_pack("[{s:s, s:s, s:s}]", "field",
		    "label", "code", "REQUIRED", "message", "required"));
		return;
	}
	if ((idx = api->blind_index(p, "label", label, strlen(label))) ==
	    NULL) {
		api->respond_error(req, 503, "UNAVAILABLE", "no key", NULL);
		return;
	}
	params[0] = idx;
	r = api->db_query(p, "SELECT id, label FROM sealer_values WHERE idx = "
	    "$1 ORDER BY id", 1, params);
	free(idx);
	out = json_array();
	for (i = 0; api->db_ok(r) && i < api->db_rows(r); i++)
		json_array_append_new(out, api->db_row_json(r, i));
	api->db_free(r);
	api->respond_json(req, 200, json_pack("{s:o}", "data", out));
}

static const struct sb_field fill_body[] = {
	{ .name = "n", .type = SB_T_INT, .flags = SB_F_REQUIRED | SB_F_RANGE,
	  .min = 1, .max = 20000 },
	{ .name = "prefix", .type = SB_T_STRING,
	  .flags = SB_F_REQUIRED | SB_F_NONEMPTY, .min_len = 1,
	  .max_len = 64 },
	SB_FIELD_END
};

static const struct sb_route routes[] = {
	{ .method = "POST", .path = "/api/v1/sealer/fill",
	  .flags = SB_ROUTE_PUBLIC, .handler = sealer_fill,
	  .body = fill_body, .body_max = 4096 },
	{ .method = "GET", .path = "/api/v1/sealer/check",
	  .flags = SB_ROUTE_PUBLIC, .handler = sealer_check },
	{ .method = "GET", .path = "/api/v1/sealer/find",
	  .flags = SB_ROUTE_PUBLIC, .handler = sealer_find },
	SB_ROUTE_END
};

static const struct sb_config_key config[] = {
	{ .key = "rekey_delay_ms", .default_value = "0",
	  .description = "Least time of each rekey batch" },
	SB_CONFIG_END
};

static int
sealer_setup(struct sb_plugin *p, const struct sb_host_api *host)
{
	api = host;
	if (!SB_API_HAS(api, reseal) || !SB_API_HAS(api, blind_index))
		return (SB_ERROR);
	if (api->config_declare(p, config) != SB_OK)
		return (SB_ERROR);
	delay_ms = api->config_int(p, "rekey_delay_ms", 0);
	if (api->routes_add(p, routes) != SB_OK ||
	    api->migrations_add(p, "sealer_migrations") != SB_OK)
		return (SB_ERROR);
	return (SB_OK);
}

SB_PLUGIN(
	.id = "io.switchboard.test.sealer",
	.name = "sealer",
	.version = "1.0.0",
	.summary = "Test plugin for sealed values and key rotation",
	.setup = sealer_setup,
	.rekey = sealer_rekey,
)
