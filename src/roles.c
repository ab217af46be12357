/*
 * Roles (named sets of permissions) and the permission registry.
 *
 * Permissions are whatever the host and the loaded plugins registered;
 * a role may only hold registered ones, and a caller may only put into a
 * role what the caller holds.  SUPER_ADMIN holds everything implicitly
 * (including permissions plugins add later) and is not editable; the
 * built-in ADMIN and AGENT keep their names but their permissions can be
 * tuned.  Built-in roles and roles still assigned to users cannot be
 * deleted.
 */

#include <kore/kore.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb.h"

static void	roles_list(struct sb_req *);
static void	roles_create(struct sb_req *);
static void	roles_patch(struct sb_req *);
static void	roles_delete(struct sb_req *);
static void	permissions_list(struct sb_req *);

static const struct sb_field role_create_body[] = {
	{ .name = "name", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .min_len = 1, .max_len = 64,
	  .description = "Letters, digits and _; starts with a letter" },
	{ .name = "description", .type = SB_T_STRING, .max_len = 500 },
	{ .name = "permissions", .type = SB_T_ARRAY, .flags = SB_F_REQUIRED,
	  .item_type = SB_T_STRING, .max_len = 500,
	  .description = "Registered permission names" },
	SB_FIELD_END
};

static const struct sb_field role_patch_body[] = {
	{ .name = "name", .type = SB_T_STRING, .min_len = 1, .max_len = 64 },
	{ .name = "description", .type = SB_T_STRING, .max_len = 500 },
	{ .name = "permissions", .type = SB_T_ARRAY, .item_type = SB_T_STRING,
	  .max_len = 500 },
	SB_FIELD_END
};

const struct sb_route sb_role_routes[] = {
	{ .method = "GET", .path = "/api/v1/roles",
	  .permission = "roles.manage", .handler = roles_list,
	  .summary = "Roles with their permissions and user counts" },
	{ .method = "POST", .path = "/api/v1/roles",
	  .permission = "roles.manage", .handler = roles_create,
	  .summary = "Create a role", .body = role_create_body },
	{ .method = "PATCH", .path = "/api/v1/roles/{id}",
	  .permission = "roles.manage", .handler = roles_patch,
	  .summary = "Rename a role or change its permissions",
	  .body = role_patch_body },
	{ .method = "DELETE", .path = "/api/v1/roles/{id}",
	  .permission = "roles.manage", .handler = roles_delete,
	  .summary = "Delete an unused custom role" },
	{ .method = "GET", .path = "/api/v1/permissions",
	  .flags = SB_ROUTE_STAFF, .handler = permissions_list,
	  .summary = "Every permission the host and the plugins registered" },
	SB_ROUTE_END
};

#define ROLE_COLUMNS							\
	"r.id, r.name, r.description, array_to_json(r.permissions) AS "	\
	"permissions, r.builtin, (SELECT count(*) FROM users u WHERE "	\
	"u.role_id = r.id)::int AS users, r.created_at, r.updated_at"

static json_t *
role_json(int64_t id)
{
	return (sb_db_row_by_id("SELECT " ROLE_COLUMNS " FROM roles r WHERE "
	    "r.id = $1::bigint", id));
}

static void
role_event(const char *name, int64_t id, json_t *details)
{
	sb_host_change_event(name, "role", id, details);
}

static int
valid_role_name(const char *s)
{
	const char	*p;

	if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')))
		return (0);
	for (p = s; *p != '\0'; p++) {
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '_'))
			return (0);
	}
	return (p - s <= 64);
}

/*
 * Every permission registered, each the caller's own, no duplicates.
 * Returns a PostgreSQL array literal to bind, or NULL (answered).
 */
static char *
permission_array(struct sb_req *req, json_t *perms)
{
	json_t		*errors, *v;
	size_t		 i, j;
	char		*lit, field[48];
	const char	*name;
	int		 forbidden;

	errors = json_array();
	forbidden = 0;
	json_array_foreach(perms, i, v) {
		name = json_string_value(v);
		snprintf(field, sizeof(field), "permissions[%zu]", i);
		if (!sb_permission_exists(name)) {
			json_array_append_new(errors, json_pack("{s:s, s:s, "
			    "s:s}", "field", field, "code", "INVALID_CHOICE",
			    "message", "not a registered permission"));
			continue;
		}
		for (j = 0; j < i; j++) {
			if (strcmp(name, json_string_value(
			    json_array_get(perms, j))) == 0)
				break;
		}
		if (j < i) {
			json_array_append_new(errors, json_pack("{s:s, s:s, "
			    "s:s}", "field", field, "code", "DUPLICATE",
			    "message", "listed twice"));
			continue;
		}
		if (!sb_req_allowed(req, name))
			forbidden = 1;
	}
	if (json_array_size(errors) > 0) {
		sb_respond_error(req, 422, "VALIDATION_ERROR", "the request "
		    "body has invalid fields", errors);
		return (NULL);
	}
	json_decref(errors);
	if (forbidden) {
		sb_respond_error(req, 403, "FORBIDDEN", "you cannot grant "
		    "permissions you do not hold", NULL);
		return (NULL);
	}
	lit = sb_db_text_array(perms);
	return (lit);
}

static int
name_problem(struct sb_req *req, const char *name)
{
	if (name == NULL || valid_role_name(name))
		return (0);
	sb_respond_error(req, 422, "VALIDATION_ERROR", "the request body has "
	    "invalid fields", json_pack("[{s:s, s:s, s:s}]", "field", "name",
	    "code", "INVALID_FORMAT", "message", "letters, digits and _, "
	    "starting with a letter"));
	return (1);
}

static int
role_id_param(struct sb_req *req, int64_t *id)
{
	return (sb_req_id(req, "id", "role", id));
}

static void
roles_list(struct sb_req *req)
{
	struct sb_db_res	*r;
	json_t			*data;
	int			 i;

	r = sb_db_query("SELECT " ROLE_COLUMNS " FROM roles r ORDER BY "
	    "r.builtin DESC, r.name", 0, NULL);
	if (!r->ok) {
		sb_db_free(r);
		sb_respond_db_down(req);
		return;
	}
	data = json_array();
	for (i = 0; i < sb_db_rows(r); i++)
		json_array_append_new(data, sb_db_row_json(r, i));
	sb_db_free(r);
	sb_respond_page(req, data, 0);
}

static void
roles_create(struct sb_req *req)
{
	struct sb_db_res	*r;
	const char		*name, *params[3];
	char			*lit;
	int64_t			 id;

	name = json_string_value(json_object_get(req->body, "name"));
	if (name_problem(req, name))
		return;
	if ((lit = permission_array(req, json_object_get(req->body,
	    "permissions"))) == NULL)
		return;
	params[0] = name;
	params[1] = json_string_value(json_object_get(req->body,
	    "description"));
	params[2] = lit;
	r = sb_db_query("INSERT INTO roles (name, description, permissions) "
	    "VALUES ($1, coalesce($2, ''), $3::text[]) RETURNING id", 3,
	    params);
	free(lit);
	if (!r->ok) {
		if (strcmp(r->sqlstate, "23505") == 0)
			sb_respond_error(req, 409, "CONFLICT", "a role with "
			    "that name exists", json_pack("[{s:s, s:s, s:s}]",
			    "field", "name", "code", "DUPLICATE", "message",
			    "already exists"));
		else
			sb_respond_db_down(req);
		sb_db_free(r);
		return;
	}
	id = strtoll(sb_db_value(r, 0, 0), NULL, 10);
	sb_db_free(r);
	role_event("roles.created", id, json_deep_copy(req->body));
	sb_respond_json(req, 201, role_json(id));
}

static void
roles_patch(struct sb_req *req)
{
	struct sb_db_res	*r;
	const char		*name, *params[4];
	char			*lit, buf[32];
	json_t			*role, *perms;
	int64_t			 id;
	int			 builtin;

	if (role_id_param(req, &id) == -1)
		return;
	if ((role = role_json(id)) == NULL) {
		sb_respond_error(req, 404, "NOT_FOUND", "no such role", NULL);
		return;
	}
	builtin = json_is_true(json_object_get(role, "builtin"));
	name = json_string_value(json_object_get(req->body, "name"));
	if (strcmp(json_string_value(json_object_get(role, "name")),
	    "SUPER_ADMIN") == 0) {
		json_decref(role);
		sb_respond_error(req, 409, "CONFLICT", "SUPER_ADMIN holds every "
		    "permission and cannot be changed", NULL);
		return;
	}
	if (builtin && name != NULL && strcmp(name, json_string_value(
	    json_object_get(role, "name"))) != 0) {
		json_decref(role);
		sb_respond_error(req, 409, "CONFLICT", "built-in roles keep "
		    "their names", NULL);
		return;
	}
	json_decref(role);
	if (name_problem(req, name))
		return;
	lit = NULL;
	if ((perms = json_object_get(req->body, "permissions")) != NULL &&
	    (lit = permission_array(req, perms)) == NULL)
		return;

	snprintf(buf, sizeof(buf), "%lld", (long long)id);
	params[0] = buf;
	params[1] = name;
	params[2] = json_string_value(json_object_get(req->body,
	    "description"));
	params[3] = lit;
	r = sb_db_query("UPDATE roles SET name = coalesce($2, name), "
	    "description = coalesce($3, description), permissions = "
	    "coalesce($4::text[], permissions), updated_at = now() WHERE id = "
	    "$1::bigint", 4, params);
	free(lit);
	if (!r->ok) {
		if (strcmp(r->sqlstate, "23505") == 0)
			sb_respond_error(req, 409, "CONFLICT", "a role with "
			    "that name exists", NULL);
		else
			sb_respond_db_down(req);
		sb_db_free(r);
		return;
	}
	sb_db_free(r);
	role_event("roles.updated", id, json_deep_copy(req->body));
	sb_respond_json(req, 200, role_json(id));
}

static void
roles_delete(struct sb_req *req)
{
	json_t		*role;
	const char	*params[1];
	char		 buf[32];
	int64_t		 id;

	if (role_id_param(req, &id) == -1)
		return;
	if ((role = role_json(id)) == NULL) {
		sb_respond_error(req, 404, "NOT_FOUND", "no such role", NULL);
		return;
	}
	if (json_is_true(json_object_get(role, "builtin")) ||
	    json_integer_value(json_object_get(role, "users")) > 0) {
		sb_respond_error(req, 409, "CONFLICT", json_is_true(
		    json_object_get(role, "builtin")) ? "built-in roles cannot "
		    "be deleted" : "the role is still assigned to users", NULL);
		json_decref(role);
		return;
	}
	json_decref(role);
	snprintf(buf, sizeof(buf), "%lld", (long long)id);
	params[0] = buf;
	/* The NOT EXISTS closes the race with a concurrent assignment. */
	if (sb_db_exec("DELETE FROM roles WHERE id = $1::bigint AND NOT "
	    "builtin AND NOT EXISTS (SELECT 1 FROM users WHERE role_id = "
	    "$1::bigint)", 1, params) == -1) {
		sb_respond_error(req, 409, "CONFLICT", "the role is still "
		    "assigned to users", NULL);
		return;
	}
	role_event("roles.deleted", id, NULL);
	sb_respond_raw(req, 204, NULL, NULL, 0);
}

static void
permissions_list(struct sb_req *req)
{
	struct sb_perm	*perm;
	json_t		*data;

	data = json_array();
	TAILQ_FOREACH(perm, &sb_permissions, list) {
		json_array_append_new(data, json_pack("{s:s, s:s, s:s}",
		    "name", perm->name, "description", perm->description,
		    "plugin", perm->owner->name));
	}
	sb_respond_page(req, data, 0);
}
