/*
 * Staff users: management (users.manage) and each user's own profile.
 *
 * Rules that keep the system governable:
 *   - nobody grants what they do not hold: creating or changing a user to
 *     a role needs every permission of that role, and only a super-admin
 *     makes, edits or unmakes super-admins;
 *   - the last active super-admin can be neither deactivated nor demoted
 *     (checked under row locks, so two concurrent requests cannot both
 *     pass);
 *   - deactivation and a password reset end the user's sessions at once;
 *     changing one's own password ends every other session.
 * Users are deactivated, never deleted: the audit trail keeps its actors.
 */

#include <kore/kore.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb.h"

static void	users_list(struct sb_req *);
static void	users_create(struct sb_req *);
static void	users_get(struct sb_req *);
static void	users_patch(struct sb_req *);
static void	users_delete(struct sb_req *);
static void	me_get(struct sb_req *);
static void	me_patch(struct sb_req *);
static void	me_password(struct sb_req *);
static void	me_fcm_token(struct sb_req *);

static const struct sb_field user_create_body[] = {
	{ .name = "username", .type = SB_T_STRING,
	  .flags = SB_F_REQUIRED | SB_F_NONEMPTY, .min_len = 1,
	  .max_len = 150, .description = "Unique, case-insensitively" },
	{ .name = "password", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .min_len = SB_PASSWORD_MIN, .max_len = 1024 },
	{ .name = "name", .type = SB_T_STRING, .max_len = 200 },
	{ .name = "email", .type = SB_T_STRING, .flags = SB_F_NULLABLE,
	  .format = "email", .max_len = 254 },
	{ .name = "role", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .min_len = 1, .max_len = 64, .description = "A role name" },
	SB_FIELD_END
};

static const struct sb_field user_patch_body[] = {
	{ .name = "name", .type = SB_T_STRING, .max_len = 200 },
	{ .name = "email", .type = SB_T_STRING, .flags = SB_F_NULLABLE,
	  .format = "email", .max_len = 254 },
	{ .name = "role", .type = SB_T_STRING, .min_len = 1, .max_len = 64 },
	{ .name = "is_active", .type = SB_T_BOOL },
	{ .name = "password", .type = SB_T_STRING, .min_len = SB_PASSWORD_MIN,
	  .max_len = 1024, .description = "Reset the password (ends the "
	  "user's sessions)" },
	SB_FIELD_END
};

static const struct sb_field me_patch_body[] = {
	{ .name = "name", .type = SB_T_STRING, .max_len = 200 },
	{ .name = "email", .type = SB_T_STRING, .flags = SB_F_NULLABLE,
	  .format = "email", .max_len = 254 },
	SB_FIELD_END
};

static const struct sb_field password_body[] = {
	{ .name = "current_password", .type = SB_T_STRING,
	  .flags = SB_F_REQUIRED, .min_len = 1, .max_len = 1024 },
	{ .name = "new_password", .type = SB_T_STRING,
	  .flags = SB_F_REQUIRED, .min_len = SB_PASSWORD_MIN,
	  .max_len = 1024 },
	SB_FIELD_END
};

static const struct sb_field fcm_body[] = {
	{ .name = "fcm_token", .type = SB_T_STRING,
	  .flags = SB_F_REQUIRED | SB_F_NULLABLE, .min_len = 1,
	  .max_len = 4096, .description = "null clears it" },
	SB_FIELD_END
};

const struct sb_route sb_user_routes[] = {
	{ .method = "GET", .path = "/api/v1/users/me",
	  .flags = SB_ROUTE_STAFF, .handler = me_get,
	  .summary = "My profile, role and effective permissions" },
	{ .method = "PATCH", .path = "/api/v1/users/me",
	  .flags = SB_ROUTE_STAFF, .handler = me_patch,
	  .summary = "Change my name or e-mail", .body = me_patch_body },
	{ .method = "PUT", .path = "/api/v1/users/me/password",
	  .flags = SB_ROUTE_STAFF, .handler = me_password,
	  .summary = "Change my password (ends my other sessions)",
	  .body = password_body, .rate = { 10, 900 } },
	{ .method = "PUT", .path = "/api/v1/users/me/fcm-token",
	  .flags = SB_ROUTE_STAFF, .handler = me_fcm_token,
	  .summary = "Set or clear my push-notification token",
	  .body = fcm_body },
	{ .method = "GET", .path = "/api/v1/users",
	  .permission = "users.manage", .handler = users_list,
	  .summary = "Staff users, newest first (?q=, ?role=, ?is_active=)" },
	{ .method = "POST", .path = "/api/v1/users",
	  .permission = "users.manage", .handler = users_create,
	  .summary = "Create a staff user", .body = user_create_body },
	{ .method = "GET", .path = "/api/v1/users/{id}",
	  .permission = "users.manage", .handler = users_get,
	  .summary = "A staff user" },
	{ .method = "PATCH", .path = "/api/v1/users/{id}",
	  .permission = "users.manage", .handler = users_patch,
	  .summary = "Change a user's name, e-mail, role, activity or "
	  "password", .body = user_patch_body },
	{ .method = "DELETE", .path = "/api/v1/users/{id}",
	  .permission = "users.manage", .handler = users_delete,
	  .summary = "Deactivate a user (users are never destroyed)" },
	SB_ROUTE_END
};

/* The public view of a user, or NULL (no such user / database down). */
json_t *
sb_user_json(int64_t id)
{
	return (sb_db_row_by_id("SELECT " USER_COLUMNS " FROM users u JOIN "
	    "roles r ON r.id = u.role_id WHERE u.id = $1::bigint", id));
}

static void
user_event(const char *name, int64_t id, json_t *changes)
{
	sb_host_change_event(name, "user", id, changes);
}

/*
 * May the caller give someone this role?  Every permission of the role
 * must be the caller's own; SUPER_ADMIN only from a super-admin.
 * 1 yes, 0 no (answered 403), -1 no such role (answered 422).
 */
static int
may_grant_role(struct sb_req *req, const char *role, int64_t *role_id)
{
	struct sb_db_res	*r;
	const char		*params[1];
	json_t			*perms, *v, *errors;
	size_t			 i;
	int			 ok;

	params[0] = role;
	r = sb_db_query("SELECT id, array_to_json(permissions) FROM roles "
	    "WHERE name = $1", 1, params);
	if (sb_db_rows(r) != 1) {
		sb_db_free(r);
		errors = json_pack("[{s:s, s:s, s:s}]", "field", "role",
		    "code", "INVALID_CHOICE", "message", "no such role");
		sb_respond_error(req, 422, "VALIDATION_ERROR", "the request "
		    "body has invalid fields", errors);
		return (-1);
	}
	*role_id = strtoll(sb_db_value(r, 0, 0), NULL, 10);
	perms = json_loads(sb_db_value(r, 0, 1), 0, NULL);
	sb_db_free(r);

	ok = req->superuser;
	if (!ok && strcmp(role, "SUPER_ADMIN") != 0) {
		ok = 1;
		json_array_foreach(perms, i, v) {
			if (!sb_req_allowed(req, json_string_value(v)))
				ok = 0;
		}
	}
	json_decref(perms);
	if (!ok)
		sb_respond_error(req, 403, "FORBIDDEN", "you cannot grant a "
		    "role with permissions you do not hold", NULL);
	return (ok);
}

static int
password_acceptable(struct sb_req *req, const char *field, const char *pw,
    const char *username)
{
	const char	*problem;

	if ((problem = sb_auth_password_problem(pw, username)) == NULL)
		return (1);
	sb_respond_error(req, 422, "VALIDATION_ERROR", "the request body has "
	    "invalid fields", json_pack("[{s:s, s:s, s:s}]", "field", field,
	    "code", "WEAK_PASSWORD", "message", problem));
	return (0);
}

static int
path_id(struct sb_req *req, int64_t *id)
{
	return (sb_req_id(req, "id", "user", id));
}

static void
users_list(struct sb_req *req)
{
	struct sb_db_res	*r;
	const char		*params[5], *active;
	char			 lim[16], before[32];
	long long		 limit, cursor;

	if (sb_page_params(req, &limit, &cursor) == -1)
		return;
	active = sb_req_query(req, "is_active");
	if (active != NULL && strcmp(active, "true") != 0 &&
	    strcmp(active, "false") != 0) {
		sb_respond_error(req, 400, "VALIDATION_ERROR", "is_active must "
		    "be true or false", json_pack("[{s:s, s:s, s:s}]", "field",
		    "is_active", "code", "INVALID_CHOICE", "message",
		    "true or false"));
		return;
	}
	snprintf(lim, sizeof(lim), "%lld", limit + 1);
	snprintf(before, sizeof(before), "%lld", cursor);
	params[0] = lim;
	params[1] = before;
	params[2] = sb_req_query(req, "q");
	params[3] = sb_req_query(req, "role");
	params[4] = active;
	r = sb_db_query("SELECT " USER_COLUMNS " FROM users u JOIN roles r "
	    "ON r.id = u.role_id WHERE ($2::bigint = 0 OR u.id < $2::bigint) "
	    "AND ($3::text IS NULL OR u.username ILIKE '%' || $3 || '%' OR "
	    "u.name ILIKE '%' || $3 || '%' OR u.email ILIKE '%' || $3 || '%') "
	    "AND ($4::text IS NULL OR r.name = $4) "
	    "AND ($5::boolean IS NULL OR u.is_active = $5::boolean) "
	    "ORDER BY u.id DESC LIMIT $1::int", 5, params);
	sb_respond_rows(req, r, limit);
}

static void
users_get(struct sb_req *req)
{
	json_t	*u;
	int64_t	 id;

	if (path_id(req, &id) == -1)
		return;
	if ((u = sb_user_json(id)) == NULL) {
		sb_respond_error(req, 404, "NOT_FOUND", "no such user", NULL);
		return;
	}
	sb_respond_json(req, 200, u);
}

static void
users_create(struct sb_req *req)
{
	struct sb_db_res	*r;
	const char		*username, *password, *params[5];
	char			 hash[256], rid[32];
	int64_t			 role_id, id;
	json_t			*u;

	username = json_string_value(json_object_get(req->body, "username"));
	password = json_string_value(json_object_get(req->body, "password"));
	if (may_grant_role(req, json_string_value(json_object_get(req->body,
	    "role")), &role_id) != 1)
		return;
	if (!password_acceptable(req, "password", password, username))
		return;
	if (sb_auth_hash_password(password, hash, sizeof(hash)) == -1) {
		sb_respond_error(req, 500, "INTERNAL", "internal error", NULL);
		return;
	}
	snprintf(rid, sizeof(rid), "%lld", (long long)role_id);
	params[0] = username;
	params[1] = hash;
	params[2] = json_string_value(json_object_get(req->body, "name"));
	params[3] = json_string_value(json_object_get(req->body, "email"));
	params[4] = rid;
	r = sb_db_query("INSERT INTO users (username, password_hash, name, "
	    "email, role_id) VALUES ($1, $2, coalesce($3, ''), $4, "
	    "$5::bigint) RETURNING id", 5, params);
	if (!r->ok) {
		if (strcmp(r->sqlstate, "23505") == 0)
			sb_respond_error(req, 409, "CONFLICT", "that username "
			    "is taken", json_pack("[{s:s, s:s, s:s}]", "field",
			    "username", "code", "DUPLICATE", "message",
			    "already taken"));
		else
			sb_respond_db_down(req);
		sb_db_free(r);
		return;
	}
	id = strtoll(sb_db_value(r, 0, 0), NULL, 10);
	sb_db_free(r);
	u = sb_user_json(id);
	user_event("users.created", id, json_pack("{s:s, s:O}", "username",
	    username, "role", json_object_get(req->body, "role")));
	sb_respond_json(req, 201, u);
}

/*
 * Would this change leave no active super-admin?  Locks the super-admin
 * rows for the rest of the transaction.  1 yes (answered 409), 0 no,
 * -1 error (answered).
 */
static int
last_super_admin(struct sb_req *req, int64_t id)
{
	struct sb_db_res	*r;
	int			 i, n, other;

	r = sb_db_query("SELECT u.id FROM users u JOIN roles r ON r.id = "
	    "u.role_id WHERE r.name = 'SUPER_ADMIN' AND u.is_active "
	    "FOR UPDATE OF u", 0, NULL);
	if (!r->ok) {
		sb_db_free(r);
		sb_respond_db_down(req);
		return (-1);
	}
	n = sb_db_rows(r);
	other = 0;
	for (i = 0; i < n; i++) {
		if (strtoll(sb_db_value(r, i, 0), NULL, 10) != id)
			other = 1;
	}
	sb_db_free(r);
	if (other)
		return (0);
	sb_respond_error(req, 409, "CONFLICT", "this is the last active "
	    "super-admin: make another one first", NULL);
	return (1);
}

/* The target user's username, role and activity, or -1 (answered). */
static int
load_target(struct sb_req *req, int64_t id, char *username, size_t ulen,
    char *role, size_t rlen, int *active)
{
	struct sb_db_res	*r;
	const char		*params[1];
	char			 buf[32];

	snprintf(buf, sizeof(buf), "%lld", (long long)id);
	params[0] = buf;
	r = sb_db_query("SELECT u.username, r.name, u.is_active FROM users u "
	    "JOIN roles r ON r.id = u.role_id WHERE u.id = $1::bigint "
	    "FOR UPDATE OF u", 1, params);
	if (sb_db_rows(r) != 1) {
		sb_db_free(r);
		sb_respond_error(req, 404, "NOT_FOUND", "no such user", NULL);
		return (-1);
	}
	snprintf(username, ulen, "%s", sb_db_value(r, 0, 0));
	snprintf(role, rlen, "%s", sb_db_value(r, 0, 1));
	*active = strcmp(sb_db_value(r, 0, 2), "t") == 0;
	sb_db_free(r);
	return (0);
}

/*
 * PATCH and DELETE share this: apply `body` (role, is_active, name,
 * email, password) to user id inside one transaction.
 */
static void
user_update(struct sb_req *req, int64_t id, json_t *body, const char *event)
{
	const char	*role, *password, *params[6];
	char		 username[160], cur_role[80], buf[32], rid[32];
	char		 hash[256];
	json_t		*active_v, *changes, *u;
	int64_t		 role_id;
	int		 active, deactivate, demote, revoke;

	role = json_string_value(json_object_get(body, "role"));
	password = json_string_value(json_object_get(body, "password"));
	active_v = json_object_get(body, "is_active");

	if (sb_db_begin() == -1) {
		sb_respond_db_down(req);
		return;
	}
	if (load_target(req, id, username, sizeof(username), cur_role,
	    sizeof(cur_role), &active) == -1)
		goto fail;

	if (strcmp(cur_role, "SUPER_ADMIN") == 0 && !req->superuser) {
		sb_respond_error(req, 403, "FORBIDDEN", "only a super-admin "
		    "changes a super-admin", NULL);
		goto fail;
	}
	role_id = 0;
	if (role != NULL && strcmp(role, cur_role) != 0 &&
	    may_grant_role(req, role, &role_id) != 1)
		goto fail;
	if (password != NULL &&
	    !password_acceptable(req, "password", password, username))
		goto fail;

	deactivate = active && active_v != NULL && !json_is_true(active_v);
	demote = role_id != 0 && strcmp(cur_role, "SUPER_ADMIN") == 0;
	if ((deactivate || demote) && strcmp(cur_role, "SUPER_ADMIN") == 0 &&
	    last_super_admin(req, id) != 0)
		goto fail;

	snprintf(buf, sizeof(buf), "%lld", (long long)id);
	snprintf(rid, sizeof(rid), "%lld", (long long)role_id);
	params[0] = buf;
	params[1] = json_string_value(json_object_get(body, "name"));
	params[2] = json_object_get(body, "email") != NULL ?
	    json_string_value(json_object_get(body, "email")) : NULL;
	params[3] = json_object_get(body, "email") != NULL ? "t" : "f";
	params[4] = role_id != 0 ? rid : NULL;
	params[5] = active_v != NULL ? (json_is_true(active_v) ? "t" : "f") :
	    NULL;
	if (sb_db_exec("UPDATE users SET name = coalesce($2, name), "
	    "email = CASE WHEN $4::boolean THEN $3 ELSE email END, "
	    "role_id = coalesce($5::bigint, role_id), "
	    "is_active = coalesce($6::boolean, is_active), updated_at = now() "
	    "WHERE id = $1::bigint", 6, params) == -1)
		goto unavailable;

	revoke = deactivate;
	if (password != NULL) {
		if (sb_auth_hash_password(password, hash, sizeof(hash)) == -1)
			goto unavailable;
		params[1] = hash;
		if (sb_db_exec("UPDATE users SET password_hash = $2, "
		    "password_changed_at = now() WHERE id = $1::bigint", 2,
		    params) == -1)
			goto unavailable;
		revoke = 1;
	}
	if (revoke && sb_auth_revoke_sessions(id, 0, deactivate ?
	    "deactivated" : "password_reset") == -1)
		goto unavailable;
	if (sb_db_commit() == -1)
		goto unavailable;

	changes = json_deep_copy(body);
	json_object_del(changes, "password");
	if (password != NULL)
		json_object_set_new(changes, "password_reset", json_true());
	user_event(deactivate ? "users.deactivated" : event, id, changes);
	if ((u = sb_user_json(id)) == NULL)
		sb_respond_error(req, 404, "NOT_FOUND", "no such user", NULL);
	else
		sb_respond_json(req, 200, u);
	return;

unavailable:
	sb_respond_db_down(req);
fail:
	sb_db_rollback();
}

static void
users_patch(struct sb_req *req)
{
	int64_t	id;

	if (path_id(req, &id) == -1)
		return;
	user_update(req, id, req->body, "users.updated");
}

static void
users_delete(struct sb_req *req)
{
	json_t	*body;
	int64_t	 id;

	if (path_id(req, &id) == -1)
		return;
	body = json_pack("{s:b}", "is_active", 0);
	user_update(req, id, body, "users.deactivated");
	json_decref(body);
}

/* ------------------------------------------------------------------------
 * The caller's own profile
 */

static void
me_get(struct sb_req *req)
{
	struct sb_perm	*perm;
	json_t		*u, *perms;

	/* Read with the credentials, in this request (auth.c). */
	if (req->user == NULL) {
		sb_respond_error(req, 404, "NOT_FOUND", "no such user", NULL);
		return;
	}
	u = json_deep_copy(req->user);
	perms = json_array();
	TAILQ_FOREACH(perm, &sb_permissions, list) {
		if (sb_req_allowed(req, perm->name))
			json_array_append_new(perms, json_string(perm->name));
	}
	json_object_set_new(u, "permissions", perms);
	sb_respond_json(req, 200, u);
}

static void
me_patch(struct sb_req *req)
{
	const char	*params[4];
	char		 buf[32];
	json_t		*u;

	snprintf(buf, sizeof(buf), "%lld", (long long)req->principal.id);
	params[0] = buf;
	params[1] = json_string_value(json_object_get(req->body, "name"));
	params[2] = json_string_value(json_object_get(req->body, "email"));
	params[3] = json_object_get(req->body, "email") != NULL ? "t" : "f";
	if (sb_db_exec("UPDATE users SET name = coalesce($2, name), "
	    "email = CASE WHEN $4::boolean THEN $3 ELSE email END, "
	    "updated_at = now() WHERE id = $1::bigint", 4, params) == -1) {
		sb_respond_db_down(req);
		return;
	}
	user_event("users.updated", req->principal.id,
	    json_deep_copy(req->body));
	if ((u = sb_user_json(req->principal.id)) == NULL)
		sb_respond_error(req, 404, "NOT_FOUND", "no such user", NULL);
	else
		sb_respond_json(req, 200, u);
}

static void
me_password(struct sb_req *req)
{
	struct sb_db_res	*r;
	const char		*current, *next, *params[2];
	char			 buf[32], hash[256];
	int			 ok;

	current = json_string_value(json_object_get(req->body,
	    "current_password"));
	next = json_string_value(json_object_get(req->body, "new_password"));
	snprintf(buf, sizeof(buf), "%lld", (long long)req->principal.id);
	params[0] = buf;
	r = sb_db_query("SELECT password_hash, username FROM users WHERE id = "
	    "$1::bigint", 1, params);
	if (sb_db_rows(r) != 1) {
		sb_db_free(r);
		sb_respond_db_down(req);
		return;
	}
	ok = sb_auth_verify_password(sb_db_value(r, 0, 0), current);
	if (!ok) {
		sb_db_free(r);
		sb_respond_error(req, 422, "VALIDATION_ERROR", "the current "
		    "password is wrong", json_pack("[{s:s, s:s, s:s}]",
		    "field", "current_password", "code", "INVALID",
		    "message", "does not match"));
		return;
	}
	ok = password_acceptable(req, "new_password", next,
	    sb_db_value(r, 0, 1));
	sb_db_free(r);
	if (!ok)
		return;
	if (sb_auth_hash_password(next, hash, sizeof(hash)) == -1) {
		sb_respond_error(req, 500, "INTERNAL", "internal error", NULL);
		return;
	}
	params[1] = hash;
	if (sb_db_begin() == -1 ||
	    sb_db_exec("UPDATE users SET password_hash = $2, "
	    "password_changed_at = now(), updated_at = now() WHERE id = "
	    "$1::bigint", 2, params) == -1 ||
	    sb_auth_revoke_sessions(req->principal.id, req->session_id,
	    "password_changed") == -1 || sb_db_commit() == -1) {
		sb_db_rollback();
		sb_respond_db_down(req);
		return;
	}
	user_event("auth.password.changed", req->principal.id, NULL);
	sb_respond_raw(req, 204, NULL, NULL, 0);
}

static void
me_fcm_token(struct sb_req *req)
{
	const char	*params[2];
	char		 buf[32];

	snprintf(buf, sizeof(buf), "%lld", (long long)req->principal.id);
	params[0] = buf;
	params[1] = json_string_value(json_object_get(req->body, "fcm_token"));
	if (sb_db_exec("UPDATE users SET fcm_token = $2, updated_at = now() "
	    "WHERE id = $1::bigint", 2, params) == -1) {
		sb_respond_db_down(req);
		return;
	}
	sb_respond_raw(req, 204, NULL, NULL, 0);
}
