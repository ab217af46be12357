/*
 * The example plugin: a small, complete Switchboard plugin to copy from.
 *
 * It shows every part of the ABI a typical plugin uses: a descriptor made
 * with SB_PLUGIN(), routes with {params}, a permission, a declarative body
 * schema, configuration keys, its own migration, database access with
 * bound parameters, an event it publishes and subscribes to, and a web
 * console panel (console/panel.js, ABI 1.2).
 *
 * It builds in the tree (make) and out of tree against the installed
 * header alone:
 *   cc -shared -fPIC -fvisibility=hidden $(pkg-config --cflags switchboard) \
 *       -o example.so example.c $(pkg-config --libs switchboard)
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <switchboard/plugin.h>

static const struct sb_host_api	*api;
static unsigned long		 notes_seen;	/* per worker */

static void	example_hello(struct sb_req *);
static void	example_note_create(struct sb_req *);
static void	example_note_get(struct sb_req *);
static void	example_on_note(struct sb_plugin *, const struct sb_event *,
		    void *);

static const char *const priorities[] = { "low", "normal", "high", NULL };

static const struct sb_field note_body[] = {
	{ .name = "text", .type = SB_T_STRING,
	  .flags = SB_F_REQUIRED | SB_F_NONEMPTY, .min_len = 1,
	  .max_len = 2000, .description = "The note" },
	{ .name = "priority", .type = SB_T_STRING, .choices = priorities,
	  .description = "low, normal (default) or high" },
	SB_FIELD_END
};

static const struct sb_route routes[] = {
	{ .method = "GET", .path = "/api/v1/example/hello",
	  .flags = SB_ROUTE_PUBLIC, .handler = example_hello,
	  .summary = "A greeting from configuration" },
	{ .method = "POST", .path = "/api/v1/example/notes",
	  .permission = "example.write", .handler = example_note_create,
	  .summary = "Create a note", .body = note_body, .body_max = 8192 },
	{ .method = "GET", .path = "/api/v1/example/notes/{id}",
	  .permission = "example.read", .handler = example_note_get,
	  .summary = "Read a note" },
	SB_ROUTE_END
};

/* The console loads console/panel.js from /plugins/example/panel.js; only
 * callers holding example.read see the entry (the panel itself checks
 * example.write before it offers to save). */
static const struct sb_console_panel notes_panel = {
	.size = sizeof(struct sb_console_panel),
	.id = "notes",
	.label = "Example notes",
	.dir = "console",
	.script = "panel.js",
	.permission = "example.read",
};

static const struct sb_config_key config[] = {
	{ .key = "greeting", .default_value = "Hello",
	  .description = "What GET /api/v1/example/hello says" },
	SB_CONFIG_END
};

static int
example_setup(struct sb_plugin *p, const struct sb_host_api *host)
{
	api = host;
	if (api->config_declare(p, config) != SB_OK ||
	    api->permission_add(p, "example.read", "Read example notes") !=
	    SB_OK ||
	    api->permission_add(p, "example.write", "Create example notes") !=
	    SB_OK ||
	    api->routes_add(p, routes) != SB_OK ||
	    api->migrations_add(p, "migrations") != SB_OK ||
	    api->event_declare(p, "example.note.created",
	    "A note was created") != SB_OK ||
	    api->subscribe(p, "example.*", example_on_note, NULL) != SB_OK ||
	    api->console_panel_add(p, &notes_panel) != SB_OK)
		return (SB_ERROR);
	return (SB_OK);
}

static int
example_init(struct sb_plugin *p)
{
	notes_seen = 0;
	api->log(p, SB_LOG_DEBUG, "example ready in this worker");
	return (SB_OK);
}

static int
example_health(struct sb_plugin *p, json_t *detail)
{
	(void)p;
	json_object_set_new(detail, "notes_seen", json_integer(
	    (json_int_t)notes_seen));
	return (SB_OK);
}

static void
example_hello(struct sb_req *req)
{
	struct sb_plugin	*p = api->req_plugin(req);

	api->respond_json(req, 200, json_pack("{s:s}", "message",
	    api->config_get(p, "greeting")));
}

static const char *
priority_value(const char *name)
{
	if (name == NULL || strcmp(name, "normal") == 0)
		return ("0");
	return (strcmp(name, "high") == 0 ? "1" : "-1");
}

static void
example_note_create(struct sb_req *req)
{
	struct sb_plugin		*p = api->req_plugin(req);
	const struct sb_principal	*who = api->req_principal(req);
	struct sb_db_res		*r;
	json_t				*body = api->req_json(req), *note;
	const char			*params[3];
	char				 author[32];

	snprintf(author, sizeof(author), "%lld", (long long)who->id);
	params[0] = json_string_value(json_object_get(body, "text"));
	params[1] = priority_value(json_string_value(
	    json_object_get(body, "priority")));
	params[2] = author;

	r = api->db_query(p, "INSERT INTO example_notes (text, priority, "
	    "author_id) VALUES ($1, $2::int, $3::bigint) "
	    "RETURNING id, text, priority, author_id, created_at", 3, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		api->respond_error(req, 503, "UNAVAILABLE", "cannot store the "
		    "note", NULL);
		return;
	}
	note = api->db_row_json(r, 0);
	api->db_free(r);
	api->publish(p, "example.note.created", 1, note);
	api->respond_json(req, 201, note);
}

static void
example_note_get(struct sb_req *req)
{
	struct sb_plugin	*p = api->req_plugin(req);
	struct sb_db_res	*r;
	const char		*id, *params[1];
	char			*end;

	id = api->req_param(req, "id");
	if (strtoll(id, &end, 10) <= 0 || *end != '\0' || strlen(id) > 18) {
		api->respond_error(req, 404, "NOT_FOUND", "no such note",
		    NULL);
		return;
	}
	params[0] = id;
	r = api->db_query(p, "SELECT id, text, priority, author_id, "
	    "created_at FROM example_notes WHERE id = $1::bigint", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		api->respond_error(req, 503, "UNAVAILABLE", "database "
		    "unavailable", NULL);
		return;
	}
	if (api->db_rows(r) == 0) {
		api->db_free(r);
		api->respond_error(req, 404, "NOT_FOUND", "no such note",
		    NULL);
		return;
	}
	api->respond_json(req, 200, api->db_row_json(r, 0));
	api->db_free(r);
}

static void
example_on_note(struct sb_plugin *p, const struct sb_event *ev, void *arg)
{
	(void)p;
	(void)arg;
	if (strcmp(ev->name, "example.note.created") == 0)
		notes_seen++;
}

SB_PLUGIN(
	.id = "io.switchboard.example",
	.name = "example",
	.version = "1.0.0",
	.summary = "Example plugin: notes with routes, schema, DB and events",
	.setup = example_setup,
	.init = example_init,
	.health = example_health,
)
