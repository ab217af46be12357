/*
 * Test plugin for the media plugin's service, "media.store"
 * (include/switchboard/services/media.h): a caller that stores bytes
 * from memory inside its own transaction, then reads them back through
 * the service.
 *
 * Route (public: this is a test plugin):
 *   POST /api/v1/media-client/put {text, purpose?, declared_type?,
 *        filename?, customer_id?, rollback?} -> 200
 *        {id, status, error, url, media, size, bytes}: put()'s answer;
 *        with an id, signed_url(), metadata() and the bytes read from
 *        open().  rollback: true rolls the transaction back after put().
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <switchboard/plugin.h>
#include <switchboard/services/media.h>

static const struct sb_host_api		*api;
static struct sb_plugin			*self;
static const struct sb_media_store	*media;

static void
client_put(struct sb_req *req)
{
	struct sb_media_input	 in;
	json_t			*body, *out;
	const char		*text;
	char			 err[200], *url, *bytes;
	uint64_t		 size;
	int64_t			 id;
	int			 status, fd;
	ssize_t			 n;

	body = api->req_json(req);
	text = json_string_value(json_object_get(body, "text"));
	memset(&in, 0, sizeof(in));
	in.size = sizeof(in);
	in.data = text;
	in.fd = -1;
	in.len = strlen(text);
	in.filename = json_string_value(json_object_get(body, "filename"));
	in.declared_type = json_string_value(json_object_get(body,
	    "declared_type"));
	in.purpose = json_string_value(json_object_get(body, "purpose"));
	in.customer_id = (int64_t)json_integer_value(json_object_get(body,
	    "customer_id"));
	err[0] = '\0';
	if (api->db_begin(self) != SB_OK) {
		api->respond_error(req, 503, "UNAVAILABLE", "no database",
		    NULL);
		return;
	}
	id = media->put(self, &in, &status, err, sizeof(err));
	if (id > 0 && !json_is_true(json_object_get(body, "rollback"))) {
		if (api->db_commit(self) != SB_OK) {
			api->respond_error(req, 500, "INTERNAL", "commit",
			    NULL);
			return;
		}
	} else
		api->db_rollback(self);
	out = json_pack("{s:I, s:i, s:s}", "id", (json_int_t)id, "status",
	    status, "error", err);
	if (id > 0) {
		url = media->signed_url(self, id, 0);
		json_object_set_new(out, "url", url != NULL ?
		    json_string(url) : json_null());
		free(url);
		json_object_set_new(out, "media", media->metadata(self, id));
		if ((fd = media->open(self, id, &size)) != -1) {
			bytes = calloc(1, (size_t)size + 1);
			n = bytes != NULL ? pread(fd, bytes, (size_t)size, 0) :
			    -1;
			json_object_set_new(out, "size", json_integer(
			    (json_int_t)size));
			json_object_set_new(out, "bytes", n == (ssize_t)size ?
			    json_stringn(bytes, (size_t)size) : json_null());
			free(bytes);
			(void)close(fd);
		}
	}
	api->respond_json(req, 200, out);
}

static const struct sb_field put_body[] = {
	{ .name = "text", .type = SB_T_STRING, .flags = SB_F_REQUIRED,
	  .max_len = 65536 },
	{ .name = "purpose", .type = SB_T_STRING },
	{ .name = "declared_type", .type = SB_T_STRING },
	{ .name = "filename", .type = SB_T_STRING },
	{ .name = "customer_id", .type = SB_T_INT },
	{ .name = "rollback", .type = SB_T_BOOL },
	SB_FIELD_END
};

static const struct sb_route routes[] = {
	{ .method = "POST", .path = "/api/v1/media-client/put",
	  .flags = SB_ROUTE_PUBLIC, .handler = client_put,
	  .summary = "Test: store text through media.store",
	  .body = put_body },
	SB_ROUTE_END
};

static int
client_setup(struct sb_plugin *p, const struct sb_host_api *a)
{
	api = a;
	self = p;
	if (a->routes_add(p, routes) != SB_OK)
		return (SB_ERROR);
	return (a->service_import(p, SB_MEDIA_STORE, SB_MEDIA_STORE_VERSION,
	    (const struct sb_service **)&media));
}

static const char *const deps[] = { "io.switchboard.media", NULL };

SB_PLUGIN(
	.id = "io.switchboard.test.media_client",
	.name = "media_client",
	.version = "1.0.0",
	.depends = deps,
	.setup = client_setup,
)
