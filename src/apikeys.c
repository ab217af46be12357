/*
 * API keys for integrations, and donor sessions minted for them.
 *
 * A key is "sbk_<prefix>_<secret>": 12 hex characters shown in lists to
 * identify it, then 256 random bits.  Only its SHA-256 is stored and the
 * whole key appears once, in the creation response.  A key's scopes are
 * permissions (registered ones, and only ones its creator holds); it may
 * expire and can be revoked at any time, with immediate effect.
 */

#include <kore/kore.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "sb.h"
#include "validate.h"

static void	keys_list(struct sb_req *);
static void	keys_create(struct sb_req *);
static void	keys_revoke(struct sb_req *);
static void	donor_session(struct sb_req *);

static const struct sb_field key_create_body[] = {
	{ .name = "name", .type = SB_T_STRING,
	  .flags = SB_F_REQUIRED | SB_F_NONEMPTY, .min_len = 1,
	  .max_len = 100 },
	{ .name = "scopes", .type = SB_T_ARRAY, .flags = SB_F_REQUIRED,
	  .item_type = SB_T_STRING, .max_len = 500,
	  .description = "Permissions the key carries" },
	{ .name = "expires_at", .type = SB_T_STRING, .flags = SB_F_NULLABLE,
	  .format = "date-time", .description = "RFC 3339, in the future" },
	SB_FIELD_END
};

static const struct sb_field donor_session_body[] = {
	{ .name = "donor_id", .type = SB_T_STRING,
	  .flags = SB_F_REQUIRED | SB_F_NONEMPTY, .min_len = 1,
	  .max_len = 128, .description = "The donor's id in your system" },
	{ .name = "donor", .type = SB_T_STRING,
	  .flags = SB_F_REQUIRED | SB_F_NONEMPTY, .min_len = 1,
	  .max_len = 200, .description = "The donor's display name" },
	SB_FIELD_END
};

const struct sb_route sb_apikey_routes[] = {
	{ .method = "GET", .path = "/api/v1/api-keys",
	  .permission = "api_keys.manage", .handler = keys_list,
	  .summary = "API keys (never their secrets), newest first" },
	{ .method = "POST", .path = "/api/v1/api-keys",
	  .permission = "api_keys.manage", .handler = keys_create,
	  .summary = "Create an API key: the key is shown in this response "
	  "only", .body = key_create_body },
	{ .method = "DELETE", .path = "/api/v1/api-keys/{id}",
	  .permission = "api_keys.manage", .handler = keys_revoke,
	  .summary = "Revoke an API key" },
	{ .method = "POST", .path = "/api/v1/donor-sessions",
	  .permission = "donors.impersonate", .handler = donor_session,
	  .summary = "Mint a donor token for an external system's donor "
	  "(API keys only)", .body = donor_session_body },
	SB_ROUTE_END
};

#define KEY_COLUMNS							\
	"id, name, prefix, array_to_json(scopes) AS scopes, expires_at, "\
	"last_used_at, created_by, created_at, revoked_at"

static void
keys_list(struct sb_req *req)
{
	struct sb_db_res	*r;
	const char		*params[2];
	char			 lim[16], before[32];
	long long		 limit, cursor;

	if (sb_page_params(req, &limit, &cursor) == -1)
		return;
	snprintf(lim, sizeof(lim), "%lld", limit + 1);
	snprintf(before, sizeof(before), "%lld", cursor);
	params[0] = lim;
	params[1] = before;
	r = sb_db_query("SELECT " KEY_COLUMNS " FROM api_keys WHERE "
	    "($2::bigint = 0 OR id < $2::bigint) ORDER BY id DESC "
	    "LIMIT $1::int", 2, params);
	sb_respond_rows(req, r, limit);
}

static int
scopes_ok(struct sb_req *req, json_t *scopes)
{
	json_t		*errors, *v;
	size_t		 i;
	char		 field[32];
	int		 forbidden;

	errors = json_array();
	forbidden = 0;
	json_array_foreach(scopes, i, v) {
		snprintf(field, sizeof(field), "scopes[%zu]", i);
		if (!sb_permission_exists(json_string_value(v)))
			json_array_append_new(errors, json_pack("{s:s, s:s, "
			    "s:s}", "field", field, "code", "INVALID_CHOICE",
			    "message", "not a registered permission"));
		else if (!sb_req_allowed(req, json_string_value(v)))
			forbidden = 1;
	}
	if (json_array_size(errors) > 0) {
		sb_respond_error(req, 422, "VALIDATION_ERROR", "the request "
		    "body has invalid fields", errors);
		return (0);
	}
	json_decref(errors);
	if (forbidden) {
		sb_respond_error(req, 403, "FORBIDDEN", "a key cannot carry "
		    "permissions you do not hold", NULL);
		return (0);
	}
	return (1);
}

static void
keys_create(struct sb_req *req)
{
	struct sb_db_res	*r;
	json_t			*scopes, *key;
	const char		*params[6], *expires;
	char			 prefix[13], secret[64], full[96], sum[65];
	char			 creator[32], *lit, target[48];
	unsigned char		 raw[32];

	scopes = json_object_get(req->body, "scopes");
	if (!scopes_ok(req, scopes))
		return;
	expires = json_string_value(json_object_get(req->body, "expires_at"));

	sb_random_hex(prefix, 6);
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		fatalx("RAND_bytes failed");
	sb_base64url(raw, sizeof(raw), secret, sizeof(secret));
	OPENSSL_cleanse(raw, sizeof(raw));
	snprintf(full, sizeof(full), "sbk_%s_%s", prefix, secret);
	sb_sha256_hex(full, strlen(full), sum);

	lit = sb_db_text_array(scopes);

	snprintf(creator, sizeof(creator), "%lld",
	    (long long)req->principal.id);
	params[0] = json_string_value(json_object_get(req->body, "name"));
	params[1] = prefix;
	params[2] = sum;
	params[3] = lit;
	params[4] = expires;
	params[5] = req->principal.kind == SB_ACTOR_USER ? creator : NULL;
	r = sb_db_query("INSERT INTO api_keys (name, prefix, key_hash, scopes, "
	    "expires_at, created_by) SELECT $1, $2, $3, $4::text[], "
	    "$5::timestamptz, $6::bigint WHERE $5::timestamptz IS NULL OR "
	    "$5::timestamptz > now() RETURNING " KEY_COLUMNS, 6, params);
	free(lit);
	if (!r->ok) {
		sb_db_free(r);
		sb_respond_db_down(req);
		return;
	}
	if (sb_db_rows(r) != 1) {
		sb_db_free(r);
		sb_respond_error(req, 422, "VALIDATION_ERROR", "the request "
		    "body has invalid fields", json_pack("[{s:s, s:s, s:s}]",
		    "field", "expires_at", "code", "OUT_OF_RANGE", "message",
		    "must be in the future"));
		return;
	}
	key = sb_db_row_json(r, 0);
	sb_db_free(r);
	snprintf(target, sizeof(target), "api_key:%lld", (long long)
	    json_integer_value(json_object_get(key, "id")));
	sb_host_event("api_keys.created", json_pack("{s:s, s:O, s:O, s:O, "
	    "s:O}", "target", target, "id", json_object_get(key, "id"),
	    "name", json_object_get(key, "name"), "prefix",
	    json_object_get(key, "prefix"), "scopes", scopes));
	json_object_set_new(key, "key", json_string(full));
	OPENSSL_cleanse(full, sizeof(full));
	OPENSSL_cleanse(secret, sizeof(secret));
	sb_respond_json(req, 201, key);
}

static void
keys_revoke(struct sb_req *req)
{
	struct sb_db_res	*r;
	const char		*params[1];
	char			 idbuf[32], target[48];
	int64_t			 id;

	if (sb_req_id(req, "id", "API key", &id) == -1)
		return;
	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id);
	params[0] = idbuf;
	r = sb_db_query("UPDATE api_keys SET revoked_at = coalesce(revoked_at, "
	    "now()) WHERE id = $1::bigint RETURNING id", 1, params);
	if (!r->ok || sb_db_rows(r) != 1) {
		sb_respond_error(req, r->ok ? 404 : 503, r->ok ? "NOT_FOUND" :
		    "UNAVAILABLE", r->ok ? "no such API key" :
		    "database unavailable", NULL);
		sb_db_free(r);
		return;
	}
	sb_db_free(r);
	snprintf(target, sizeof(target), "api_key:%lld", (long long)id);
	sb_host_event("api_keys.revoked", json_pack("{s:s, s:I}", "target",
	    target, "id", (json_int_t)id));
	sb_respond_raw(req, 204, NULL, NULL, 0);
}

static void
donor_session(struct sb_req *req)
{
	const char	*donor_id, *name;
	char		*token, target[160];

	/* An integration acts for its donors; a person does not. */
	if (req->principal.kind != SB_ACTOR_API_KEY) {
		sb_respond_error(req, 403, "FORBIDDEN", "donor sessions are "
		    "minted with an API key", NULL);
		return;
	}
	donor_id = json_string_value(json_object_get(req->body, "donor_id"));
	name = json_string_value(json_object_get(req->body, "donor"));
	if ((token = sb_auth_donor_token(donor_id, name)) == NULL) {
		sb_respond_error(req, 500, "INTERNAL", "internal error", NULL);
		return;
	}
	snprintf(target, sizeof(target), "donor:%s", donor_id);
	sb_host_event("auth.donor_session.created", json_pack("{s:s, s:s}",
	    "target", target, "donor_id", donor_id));
	sb_respond_json(req, 201, json_pack("{s:s, s:s, s:I}", "donor_token",
	    token, "token_type", "Bearer", "expires_in",
	    (json_int_t)sb_settings.donor_ttl));
	OPENSSL_cleanse(token, strlen(token));
	free(token);
}
