/*
 * The customers plugin: the people the channel plugins talk to (API.md,
 * "Customers").  This file owns the descriptor, setup() and the CRUD
 * routes; directory.c the "customers.directory" service and the
 * timeline; privacy.c the privacy hooks and key rotation.
 *
 * A phone number (and a WhatsApp id, which is one too) is normalised to
 * E.164 by the host (api->phone_e164), stored only sealed (api->seal)
 * beside its blind index (api->blind_index), and matched by that index.
 * Nothing here logs, publishes or answers an error with a number in it.
 */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "customers.h"

const struct sb_host_api	*customers_api;
struct sb_plugin		*customers_self;
#define api			customers_api

static size_t			 attributes_max = 16384;

static void	c_list(struct sb_req *);
static void	c_create(struct sb_req *);
static void	c_get(struct sb_req *);
static void	c_update(struct sb_req *);
static void	c_delete(struct sb_req *);

static const struct sb_config_key config_keys[] = {
	{ .key = "default_country", .default_value = "",
	  .description = "ISO 3166-1 alpha-2 country of phone numbers "
	  "written without their country code; empty: [host] "
	  "default_country" },
	{ .key = "attributes_max", .default_value = "16384",
	  .description = "Largest `attributes` object, in bytes of compact "
	  "JSON (1024..262144); larger is 422" },
	SB_CONFIG_END
};

/* POST and PUT take the same fields; POST requires none either (a
 * customer may be known by e-mail alone), PUT changes only those given. */
static const struct sb_field customer_body[] = {
	{ .name = "name", .type = SB_T_STRING, .flags = SB_F_NULLABLE,
	  .max_len = 200, .description = "Display name; may be empty" },
	{ .name = "phone", .type = SB_T_STRING, .flags = SB_F_NULLABLE,
	  .max_len = 64, .description = "Phone number, normalised to E.164 "
	  "(a number without its country code takes default_country); "
	  "unique; stored sealed" },
	{ .name = "email", .type = SB_T_STRING, .flags = SB_F_NULLABLE,
	  .max_len = 254, .format = "email", .description = "E-mail address" },
	{ .name = "wa_id", .type = SB_T_STRING, .flags = SB_F_NULLABLE,
	  .max_len = 20, .description = "WhatsApp id (digits); stored sealed" },
	{ .name = "tags", .type = SB_T_ARRAY, .flags = SB_F_NULLABLE,
	  .max_len = 50, .item_type = SB_T_STRING,
	  .description = "Up to 50 tags of 1..64 characters" },
	{ .name = "notes", .type = SB_T_STRING, .flags = SB_F_NULLABLE,
	  .max_len = 10000, .description = "Free text" },
	{ .name = "attributes", .type = SB_T_OBJECT, .flags = SB_F_NULLABLE,
	  .description = "Free-form JSON object (at most attributes_max bytes)" },
	SB_FIELD_END
};

#define CUSTOMER_SCHEMA							\
	"{\"type\":\"object\",\"properties\":{"				\
	"\"id\":{\"type\":\"integer\"},"				\
	"\"name\":{\"type\":\"string\"},"				\
	"\"phone\":{\"type\":[\"string\",\"null\"]},"			\
	"\"email\":{\"type\":[\"string\",\"null\"]},"			\
	"\"wa_id\":{\"type\":[\"string\",\"null\"]},"			\
	"\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"	\
	"\"notes\":{\"type\":\"string\"},"				\
	"\"attributes\":{\"type\":\"object\"},"				\
	"\"created_at\":{\"type\":\"string\",\"format\":\"date-time\"},"	\
	"\"updated_at\":{\"type\":\"string\",\"format\":\"date-time\"}}}"

#define LIST_SCHEMA(item)						\
	"{\"type\":\"object\",\"properties\":{"				\
	"\"data\":{\"type\":\"array\",\"items\":" item "},"		\
	"\"next_cursor\":{\"type\":[\"string\",\"null\"]}}}"

#define TIMELINE_ITEM							\
	"{\"type\":\"object\",\"properties\":{"				\
	"\"channel\":{\"type\":\"string\"},"				\
	"\"kind\":{\"type\":\"string\"},"				\
	"\"id\":{\"type\":\"integer\"},"				\
	"\"direction\":{\"type\":\"string\"},"				\
	"\"status\":{\"type\":\"string\"},"				\
	"\"summary\":{\"type\":\"string\"},"				\
	"\"at\":{\"type\":\"string\",\"format\":\"date-time\"}}}"

#define C	"/api/v1/customers"
static const struct sb_route routes[] = {
	{ .method = "GET", .path = C, .permission = "customers.read",
	  .handler = c_list, .summary = "List customers (?q= name or e-mail, "
	  "?phone= exact, ?tag=)",
	  .response_schema = LIST_SCHEMA(CUSTOMER_SCHEMA) },
	{ .method = "POST", .path = C, .permission = "customers.manage",
	  .handler = c_create, .summary = "Create a customer",
	  .body = customer_body, .body_max = 300000,
	  .response_schema = CUSTOMER_SCHEMA },
	{ .method = "GET", .path = C "/{id}", .permission = "customers.read",
	  .handler = c_get, .summary = "One customer",
	  .response_schema = CUSTOMER_SCHEMA },
	{ .method = "PUT", .path = C "/{id}", .permission = "customers.manage",
	  .handler = c_update, .summary = "Change the fields given",
	  .body = customer_body, .body_max = 300000,
	  .response_schema = CUSTOMER_SCHEMA },
	{ .method = "DELETE", .path = C "/{id}",
	  .permission = "customers.manage", .handler = c_delete,
	  .summary = "Erase the customer (as POST /api/v1/privacy/delete)",
	  .response_schema = "{\"type\":\"object\",\"properties\":{"
	  "\"deleted\":{\"type\":\"object\",\"additionalProperties\":"
	  "{\"type\":\"integer\"}}}}" },
	{ .method = "GET", .path = C "/{id}/timeline",
	  .permission = "customers.read", .handler = customers_timeline,
	  .summary = "Every channel's items with the customer, newest first",
	  .response_schema = LIST_SCHEMA(TIMELINE_ITEM) },
	SB_ROUTE_END
};

static const struct sb_console_panel panel = {
	.size = sizeof(struct sb_console_panel),
	.id = "customers",
	.label = "Customers",
	.dir = "console",
	.script = "panel.js",
	.permission = "customers.read",
};

static int
customers_setup(struct sb_plugin *p, const struct sb_host_api *host)
{
	long long	n;

	api = host;
	customers_self = p;
	/* ABI 1.3 slots this plugin cannot work without. */
	if (!SB_API_HAS(api, service_export) ||
	    !SB_API_HAS(api, blind_index) || !SB_API_HAS(api, reseal) ||
	    !SB_API_HAS(api, phone_e164) || !SB_API_HAS(api, list_parse) ||
	    !SB_API_HAS(api, list_respond) || !SB_API_HAS(api, seal)) {
		api->log(p, SB_LOG_ERROR, "this host lacks ABI 1.3 services, "
		    "blind indexes, phone numbers or lists");
		return (SB_ERROR);
	}
	if (api->config_declare(p, config_keys) != SB_OK)
		return (SB_ERROR);
	n = api->config_int(p, "attributes_max", 16384);
	if (n < 1024 || n > 262144) {
		api->log(p, SB_LOG_ERROR, "attributes_max must be 1024..262144");
		return (SB_ERROR);
	}
	attributes_max = (size_t)n;
	if (api->permission_add(p, "customers.read", "Read customers and "
	    "their timelines") != SB_OK ||
	    api->permission_add(p, "customers.manage", "Create, change and "
	    "erase customers") != SB_OK ||
	    api->routes_add(p, routes) != SB_OK ||
	    api->migrations_add(p, "migrations") != SB_OK ||
	    api->event_declare(p, "customers.customer.created",
	    "A customer was created ({id})") != SB_OK ||
	    api->event_declare(p, "customers.customer.updated",
	    "A customer was changed ({id})") != SB_OK ||
	    api->event_declare(p, "customers.customer.deleted",
	    "A customer was erased ({id})") != SB_OK ||
	    api->service_export(p, SB_CUSTOMERS_DIRECTORY,
	    &customers_directory.hdr) != SB_OK ||
	    api->console_panel_add(p, &panel) != SB_OK)
		return (SB_ERROR);
	return (SB_OK);
}

/* Is s E.164: "+", a first digit 1-9, 8 to 15 digits in all? */
int
customers_is_e164(const char *s)
{
	size_t	i, n;

	if (s == NULL || s[0] != '+' || s[1] < '1' || s[1] > '9')
		return (0);
	n = strlen(s + 1);
	if (n < 8 || n > 15)
		return (0);
	for (i = 1; i <= n; i++)
		if (!isdigit((unsigned char)s[i]))
			return (0);
	return (1);
}

/* The blind index of value in domain (caller frees), NULL without. */
char *
customers_index(const char *domain, const char *value)
{
	return (api->blind_index(customers_self, domain, value,
	    strlen(value)));
}

/* Replace the sealed column `col` of row by `key` in clear. */
static void
unseal_into(json_t *row, const char *col, const char *key)
{
	const char	*sealed = sb_jstr(row, col);
	char		*plain;

	if (sealed == NULL) {
		json_object_set_new(row, key, json_null());
	} else if ((plain = api->unseal(customers_self, sealed,
	    NULL)) == NULL) {
		/* Never the value: the id says which row to look at. */
		api->log(customers_self, SB_LOG_WARN, "customer %lld: the "
		    "sealed %s does not open", (long long)sb_jint(row, "id"),
		    key);
		json_object_set_new(row, key, json_null());
	} else {
		json_object_set_new(row, key, json_string(plain));
		free(plain);
	}
	json_object_del(row, col);
}

/* A row of CUSTOMERS_COLS (stolen) as the API's customer object. */
json_t *
customers_row(json_t *row)
{
	if (row == NULL)
		return (NULL);
	unseal_into(row, "phone_sealed", "phone");
	unseal_into(row, "wa_id_sealed", "wa_id");
	if (!json_is_array(json_object_get(row, "tags")))
		json_object_set_new(row, "tags", json_array());
	return (row);
}

/* The customer, or NULL: not found (*dberr 0) or a database error. */
json_t *
customers_fetch(int64_t id, int *dberr)
{
	struct sb_db_res	*r;
	const char		*params[1];
	char			 ids[32];
	json_t			*out = NULL;

	*dberr = 0;
	snprintf(ids, sizeof(ids), "%lld", (long long)id);
	params[0] = ids;
	r = api->db_query(customers_self, "SELECT " CUSTOMERS_COLS
	    " FROM customers WHERE id = $1::bigint", 1, params);
	if (!api->db_ok(r))
		*dberr = 1;
	else if (api->db_rows(r) == 1)
		out = customers_row(api->db_row_json(r, 0));
	api->db_free(r);
	return (out);
}

static void
err_db(struct sb_req *req)
{
	api->respond_error(req, 503, "UNAVAILABLE", "database unavailable",
	    NULL);
}

static void
err_field(struct sb_req *req, int status, const char *field,
    const char *code, const char *message)
{
	api->respond_error(req, status, "VALIDATION_ERROR", message,
	    sb_field_error(field, code, message));
}

/* The plugin's default country, or NULL for the host's. */
static const char *
default_country(void)
{
	const char	*c = api->config_get(customers_self, "default_country");

	return (c == NULL || *c == '\0' ? NULL : c);
}

/* input as E.164 in out (at least 17 bytes); -1 when it is not one. */
static int
normalise_phone(const char *input, char *out, size_t outlen)
{
	if (api->phone_e164(customers_self, input, default_country(), out,
	    outlen) != SB_OK || !customers_is_e164(out))
		return (-1);
	return (0);
}

/*
 * The body's values as a patch object of column names: name, email,
 * notes, tags, attributes as given (null made the column's empty value),
 * phone and wa_id as *_sealed and *_index.  Only fields present in the
 * body appear.  Answers the 422 itself and returns NULL on bad input.
 */
static json_t *
body_patch(struct sb_req *req, json_t *body)
{
	json_t		*patch, *v, *tag;
	const char	*s;
	char		 e164[32], field[32], *sealed = NULL, *index = NULL;
	char		*dump;
	size_t		 i, n;

	patch = json_object();
	if ((v = json_object_get(body, "name")) != NULL)
		json_object_set_new(patch, "name", json_is_null(v) ?
		    json_string("") : json_copy(v));
	if ((v = json_object_get(body, "email")) != NULL)
		json_object_set(patch, "email", v);
	if ((v = json_object_get(body, "notes")) != NULL)
		json_object_set_new(patch, "notes", json_is_null(v) ?
		    json_string("") : json_copy(v));
	if ((v = json_object_get(body, "tags")) != NULL) {
		json_array_foreach(v, i, tag) {
			n = strlen(json_string_value(tag));
			if (n == 0 || n > 64) {
				/* Named like the host's own item errors. */
				snprintf(field, sizeof(field), "tags[%zu]", i);
				err_field(req, 422, field, "INVALID_LENGTH",
				    "a tag has 1 to 64 characters");
				goto fail;
			}
		}
		json_object_set_new(patch, "tags", json_is_null(v) ?
		    json_array() : json_copy(v));
	}
	if ((v = json_object_get(body, "attributes")) != NULL) {
		if (json_is_null(v))
			json_object_set_new(patch, "attributes", json_object());
		else {
			dump = json_dumps(v, JSON_COMPACT);
			n = dump == NULL ? SIZE_MAX : strlen(dump);
			free(dump);
			if (n > attributes_max) {
				err_field(req, 422, "attributes", "TOO_LARGE",
				    "the attributes object is too large");
				goto fail;
			}
			json_object_set(patch, "attributes", v);
		}
	}
	if ((v = json_object_get(body, "phone")) != NULL) {
		if (json_is_null(v)) {
			json_object_set_new(patch, "phone_sealed", json_null());
			json_object_set_new(patch, "phone_index", json_null());
		} else {
			if (normalise_phone(json_string_value(v), e164,
			    sizeof(e164)) == -1) {
				err_field(req, 422, "phone", "INVALID_FORMAT",
				    "not a valid phone number");
				goto fail;
			}
			sealed = api->seal(customers_self, e164, strlen(e164));
			index = customers_index(CUSTOMERS_PHONE, e164);
			explicit_bzero(e164, sizeof(e164));
			if (sealed == NULL || index == NULL)
				goto nokey;
			json_object_set_new(patch, "phone_sealed",
			    json_string(sealed));
			json_object_set_new(patch, "phone_index",
			    json_string(index));
			free(sealed);
			free(index);
			sealed = index = NULL;
		}
	}
	if ((v = json_object_get(body, "wa_id")) != NULL) {
		if (json_is_null(v)) {
			json_object_set_new(patch, "wa_id_sealed", json_null());
			json_object_set_new(patch, "wa_id_index", json_null());
		} else {
			s = json_string_value(v);
			n = strlen(s);
			for (i = 0; i < n; i++)
				if (!isdigit((unsigned char)s[i]))
					break;
			if (n < 5 || i < n) {
				err_field(req, 422, "wa_id", "INVALID_FORMAT",
				    "a WhatsApp id is 5 to 20 digits");
				goto fail;
			}
			sealed = api->seal(customers_self, s, n);
			index = customers_index(CUSTOMERS_WA_ID, s);
			if (sealed == NULL || index == NULL)
				goto nokey;
			json_object_set_new(patch, "wa_id_sealed",
			    json_string(sealed));
			json_object_set_new(patch, "wa_id_index",
			    json_string(index));
			free(sealed);
			free(index);
		}
	}
	return (patch);
nokey:
	api->log(customers_self, SB_LOG_ERROR, "cannot seal or index: is "
	    "the data key set?");
	api->respond_error(req, 503, "UNAVAILABLE", "cannot protect personal "
	    "data: no data key", NULL);
fail:
	free(sealed);
	free(index);
	json_decref(patch);
	return (NULL);
}

/* A phone number already on file: 409 with the holder's id in
 * errors[0].message (the number itself is never echoed). */
static void
conflict(struct sb_req *req, const char *phone_index)
{
	struct sb_db_res	*r;
	const char		*params[1];
	char			 msg[96];
	const char		*id = NULL;

	params[0] = phone_index;
	r = api->db_query(customers_self, "SELECT id FROM customers WHERE "
	    "phone_index = $1", 1, params);
	if (api->db_ok(r) && api->db_rows(r) == 1)
		id = api->db_value(r, 0, 0);
	if (id == NULL) {
		/* Gone again between the two statements. */
		api->db_free(r);
		api->respond_error(req, 409, "CONFLICT", "the phone number "
		    "changed hands concurrently; retry", NULL);
		return;
	}
	snprintf(msg, sizeof(msg), "customer %s already has this phone "
	    "number", id);
	api->respond_error(req, 409, "CONFLICT", msg,
	    sb_field_error("phone", "DUPLICATE", id));
	api->db_free(r);
}

static void
publish_id(const char *event, json_t *customer)
{
	json_t	*data;

	data = json_pack("{s:I}", "id", sb_jint(customer, "id"));
	api->publish(customers_self, event, 1, data);
	json_decref(data);
}

/* Answer a write's result: the customer, a 409 or the database error. */
static void
respond_written(struct sb_req *req, struct sb_db_res *r, json_t *patch,
    int status, const char *event)
{
	json_t	*c;

	if (!api->db_ok(r)) {
		if (api->db_sqlstate(r) != NULL &&
		    strcmp(api->db_sqlstate(r), "23505") == 0 &&
		    sb_jstr(patch, "phone_index") != NULL)
			conflict(req, sb_jstr(patch, "phone_index"));
		else
			err_db(req);
		return;
	}
	if (api->db_rows(r) == 0) {
		api->respond_error(req, 404, "NOT_FOUND", "no such customer",
		    NULL);
		return;
	}
	c = customers_row(api->db_row_json(r, 0));
	publish_id(event, c);
	api->respond_json(req, status, c);
}

static void
c_create(struct sb_req *req)
{
	struct sb_db_res	*r;
	json_t			*patch;
	const char		*params[1];
	char			*text;

	if ((patch = body_patch(req, api->req_json(req))) == NULL)
		return;
	if ((text = json_dumps(patch, JSON_COMPACT)) == NULL) {
		json_decref(patch);
		err_db(req);
		return;
	}
	params[0] = text;
	r = api->db_query(customers_self, "WITH p AS (SELECT $1::jsonb AS j) "
	    "INSERT INTO customers (name, phone_sealed, phone_index, email, "
	    "wa_id_sealed, wa_id_index, tags, notes, attributes) SELECT "
	    "coalesce(j->>'name', ''), j->>'phone_sealed', j->>'phone_index', "
	    "j->>'email', j->>'wa_id_sealed', j->>'wa_id_index', "
	    "ARRAY(SELECT jsonb_array_elements_text(coalesce(j->'tags', "
	    "'[]'))), coalesce(j->>'notes', ''), coalesce(j->'attributes', "
	    "'{}') FROM p RETURNING " CUSTOMERS_COLS, 1, params);
	free(text);
	respond_written(req, r, patch, 201, "customers.customer.created");
	api->db_free(r);
	json_decref(patch);
}

static void
c_update(struct sb_req *req)
{
	struct sb_db_res	*r;
	json_t			*patch;
	const char		*params[2];
	char			*text;

	if ((params[0] = sb_positive_id(api->req_param(req, "id"))) == NULL) {
		api->respond_error(req, 404, "NOT_FOUND", "no such customer",
		    NULL);
		return;
	}
	if ((patch = body_patch(req, api->req_json(req))) == NULL)
		return;
	if ((text = json_dumps(patch, JSON_COMPACT)) == NULL) {
		json_decref(patch);
		err_db(req);
		return;
	}
	params[1] = text;
#define SET(col)	col " = CASE WHEN $2::jsonb ? '" col "' THEN " \
			"$2::jsonb->>'" col "' ELSE " col " END"
	r = api->db_query(customers_self, "UPDATE customers SET "
	    SET("name") ", " SET("phone_sealed") ", " SET("phone_index") ", "
	    SET("email") ", " SET("wa_id_sealed") ", " SET("wa_id_index") ", "
	    SET("notes") ", "
	    "tags = CASE WHEN $2::jsonb ? 'tags' THEN ARRAY(SELECT "
	    "jsonb_array_elements_text($2::jsonb->'tags')) ELSE tags END, "
	    "attributes = CASE WHEN $2::jsonb ? 'attributes' THEN "
	    "$2::jsonb->'attributes' ELSE attributes END, updated_at = now() "
	    "WHERE id = $1::bigint RETURNING " CUSTOMERS_COLS, 2, params);
#undef SET
	free(text);
	respond_written(req, r, patch, 200, "customers.customer.updated");
	api->db_free(r);
	json_decref(patch);
}

static void
c_get(struct sb_req *req)
{
	const char	*id;
	json_t		*c;
	int		 dberr;

	if ((id = sb_positive_id(api->req_param(req, "id"))) == NULL) {
		api->respond_error(req, 404, "NOT_FOUND", "no such customer",
		    NULL);
		return;
	}
	if ((c = customers_fetch(strtoll(id, NULL, 10), &dberr)) == NULL) {
		if (dberr)
			err_db(req);
		else
			api->respond_error(req, 404, "NOT_FOUND",
			    "no such customer", NULL);
		return;
	}
	api->respond_json(req, 200, c);
}

/*
 * DELETE erases the customer the way POST /api/v1/privacy/delete does
 * for {customer_id}: through the host, in every plugin that keeps
 * anything about them, in one transaction, audited as the caller's act.
 * It answers that route's shape, {"deleted": {<plugin>: count}}, so the
 * caller sees what went (README.md, "Why DELETE answers 200").
 */
static void
c_delete(struct sb_req *req)
{
	struct sb_subject	 subject;
	struct sb_db_res	*r;
	const char		*id;
	json_t			*deleted = NULL, *data;
	int			 found;

	if ((id = sb_positive_id(api->req_param(req, "id"))) == NULL) {
		api->respond_error(req, 404, "NOT_FOUND", "no such customer",
		    NULL);
		return;
	}
	r = api->db_query(customers_self, "SELECT 1 FROM customers WHERE "
	    "id = $1::bigint", 1, &id);
	found = api->db_ok(r) ? api->db_rows(r) : -1;
	api->db_free(r);
	if (found == -1) {
		err_db(req);
		return;
	}
	if (found == 0) {
		api->respond_error(req, 404, "NOT_FOUND", "no such customer",
		    NULL);
		return;
	}
	if (!SB_API_HAS(api, privacy_erase_all)) {
		api->respond_error(req, 503, "UNAVAILABLE", "this host cannot "
		    "erase a person across plugins", NULL);
		return;
	}
	memset(&subject, 0, sizeof(subject));
	subject.size = sizeof(subject);
	subject.kind = SB_SUBJECT_CUSTOMER;
	subject.value = id;
	if (api->privacy_erase_all(req, &subject, &deleted) != SB_OK) {
		json_decref(deleted);
		api->respond_error(req, 503, "UNAVAILABLE", "the erase failed "
		    "and nothing was erased", NULL);
		return;
	}
	data = json_pack("{s:I}", "id", (json_int_t)strtoll(id, NULL, 10));
	api->publish(customers_self, "customers.customer.deleted", 1, data);
	json_decref(data);
	api->respond_json(req, 200, json_pack("{s:o}", "deleted",
	    deleted != NULL ? deleted : json_object()));
}

/* list_respond's map: a row as the API's customer. */
static json_t *
list_map(struct sb_req *req, json_t *row, void *arg)
{
	(void)req;
	(void)arg;
	return (customers_row(row));
}

static void
c_list(struct sb_req *req)
{
	struct sb_list		 list;
	struct sb_db_res	*r;
	const char		*q, *phone, *tag, *params[5];
	char			 e164[32], *index = NULL, *pattern = NULL;

	memset(&list, 0, sizeof(list));
	list.size = sizeof(list);
	if (api->list_parse(req, &list, SB_LIST_ID_CURSOR) != SB_OK)
		return;
	q = api->req_query(req, "q");
	phone = api->req_query(req, "phone");
	tag = api->req_query(req, "tag");
	if (q != NULL && strlen(q) > 200) {
		err_field(req, 400, "q", "TOO_LONG", "at most 200 characters");
		return;
	}
	if (tag != NULL && strlen(tag) > 64) {
		err_field(req, 400, "tag", "TOO_LONG", "at most 64 characters");
		return;
	}
	if (phone != NULL && *phone != '\0') {
		if (strlen(phone) > 64 ||
		    normalise_phone(phone, e164, sizeof(e164)) == -1) {
			err_field(req, 422, "phone", "INVALID_FORMAT",
			    "not a valid phone number");
			return;
		}
		index = customers_index(CUSTOMERS_PHONE, e164);
		explicit_bzero(e164, sizeof(e164));
		if (index == NULL) {
			api->respond_error(req, 503, "UNAVAILABLE", "no data "
			    "key", NULL);
			return;
		}
	}
	if (q != NULL && *q != '\0' && (pattern = sb_like_pattern(q)) == NULL) {
		free(index);
		err_db(req);
		return;
	}
	params[0] = index;
	params[1] = pattern;
	params[2] = tag != NULL && *tag != '\0' ? tag : NULL;
	params[3] = list.cursor;
	params[4] = list.limit_plus_one;
	r = api->db_query(customers_self, "SELECT " CUSTOMERS_COLS " FROM "
	    "customers WHERE ($1::text IS NULL OR phone_index = $1) AND "
	    "($2::text IS NULL OR name ILIKE $2 OR email ILIKE $2) AND "
	    "($3::text IS NULL OR tags @> ARRAY[$3::text]) AND "
	    "($4::bigint IS NULL OR id < $4::bigint) "
	    "ORDER BY id DESC LIMIT $5::bigint", 5, params);
	free(index);
	free(pattern);
	api->list_respond(req, r, &list, "id", list_map, NULL);
}

SB_PLUGIN(
	.id = "io.switchboard.customers",
	.name = "customers",
	.version = "1.0.0",
	.summary = "Customers: people reached by phone, sealed and "
	    "blind-indexed; the customers.directory service and timelines",
	.setup = customers_setup,
	.privacy_export = customers_privacy_export,
	.privacy_erase = customers_privacy_erase,
	.rekey = customers_rekey,
)
