/*
 * Staff avatars on the media plugin: POST /api/v1/users/me/avatar
 * (multipart/form-data, one file field `avatar`) and GET
 * /api/v1/users/{id}/avatar.  They were the host's (src/avatar.c,
 * src/image.c) until the media plugin existed; without this plugin the
 * routes are gone (404).
 *
 *   upload -> media_judge(): libmagic's type, the declared type, purpose
 *             avatar's types and size limit (media.c, as for any upload)
 *          -> avatar_render(): libvips' loader must agree with libmagic,
 *             the header within max_pixels (nothing decoded yet), then a
 *             256x256 centre crop, sRGB, alpha over white, JPEG quality
 *             85 with every piece of metadata stripped
 *          -> media_put(): that JPEG, not the upload, becomes a media
 *             item (purpose avatar, uploaded_by the user), and
 *             media_avatars names it; the previous item is dropped in
 *             the same transaction (its bytes go with the last row naming
 *             them, media_drop())
 *
 * Answers to a bad upload, all in the error envelope with the field
 * `avatar`:
 *   415 UNSUPPORTED_MEDIA_TYPE  not multipart/form-data (the host), not a
 *                               type of purpose avatar, or a declared type
 *                               that disagrees with the bytes;
 *   422 VALIDATION_ERROR        REQUIRED (missing or empty),
 *                               INVALID_FORMAT (does not decode),
 *                               TOO_LARGE (more than [media] max_pixels);
 *   413 PAYLOAD_TOO_LARGE       a body over AVATAR_BODY_MAX (the host), a
 *                               file over [media] avatar_max;
 *   400 VALIDATION_ERROR        a multipart body that does not parse.
 */

#include <sys/types.h>

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vips/vips.h>

#include <switchboard/services/media.h>

#include "media.h"

#define api			media_api

#define AVATAR_FIELD		"avatar"
#define AVATAR_SIZE		256
#define AVATAR_BODY_MAX		(5 * 1024 * 1024)
#define AVATAR_CACHE		"private, max-age=300"
#define JPEG_QUALITY		85

static struct sb_plugin		*avp;

static void	avatar_upload(struct sb_req *);
static void	avatar_get(struct sb_req *);

static const struct sb_route avatar_routes[] = {
	{ .method = "POST", .path = "/api/v1/users/me/avatar",
	  .flags = SB_ROUTE_STAFF, .handler = avatar_upload,
	  .summary = "Upload the caller's avatar: multipart/form-data with "
	  "one file field `avatar` (a type of media purpose avatar, within "
	  "max_pixels), stored as a media item: a 256x256 JPEG without "
	  "metadata",
	  .body_max = AVATAR_BODY_MAX,
	  .response_schema = "{\"type\":\"object\",\"properties\":{"
	  "\"avatar_url\":{\"type\":\"string\"},"
	  "\"content_type\":{\"type\":\"string\"},"
	  "\"width\":{\"type\":\"integer\"},"
	  "\"height\":{\"type\":\"integer\"},"
	  "\"sha256\":{\"type\":\"string\"},"
	  "\"media_id\":{\"type\":\"integer\"}}}" },
	{ .method = "GET", .path = "/api/v1/users/{id}/avatar",
	  .flags = SB_ROUTE_STAFF, .handler = avatar_get,
	  .summary = "A user's avatar (image/jpeg) with a strong ETag; "
	  "If-None-Match gives 304" },
	SB_ROUTE_END
};

int
avatar_setup(struct sb_plugin *p)
{
	avp = p;
	return (api->routes_add(p, avatar_routes));
}

/* An error about the `avatar` field. */
static void
field_error(struct sb_req *req, int status, const char *code,
    const char *msg)
{
	api->respond_error(req, status, status == 415 ?
	    "UNSUPPORTED_MEDIA_TYPE" : status == 413 ? "PAYLOAD_TOO_LARGE" :
	    "VALIDATION_ERROR", msg, json_pack("[{s:s, s:s, s:s}]",
	    "field", AVATAR_FIELD, "code", code, "message", msg));
}

/* The part's bytes in memory: borrowed, or read from the body file into
 * *copy (the caller frees it).  NULL when answered. */
static const unsigned char *
part_bytes(struct sb_req *req, const struct sb_part *pt, unsigned char **copy)
{
	size_t	done;
	ssize_t	r;

	*copy = NULL;
	if (pt->data != NULL)
		return (pt->data);
	if ((*copy = malloc((size_t)pt->len)) == NULL) {
		api->respond_error(req, 503, "UNAVAILABLE", "out of memory",
		    NULL);
		return (NULL);
	}
	for (done = 0; done < pt->len; done += (size_t)r) {
		r = pread(pt->fd, *copy + done, (size_t)pt->len - done,
		    (off_t)(pt->offset + done));
		if (r == -1 && errno == EINTR) {
			r = 0;
			continue;
		}
		if (r <= 0) {
			api->log(avp, SB_LOG_ERROR, "reading the body file: %s",
			    r == 0 ? "short" : strerror(errno));
			free(*copy);
			*copy = NULL;
			api->respond_error(req, 500, "INTERNAL", "internal "
			    "error", NULL);
			return (NULL);
		}
	}
	return (*copy);
}

/* libvips' own words stay in the log: they name internals. */
static void
log_vips(const char *what)
{
	char	msg[256];
	size_t	n;

	(void)snprintf(msg, sizeof(msg), "%s", vips_error_buffer());
	vips_error_clear();
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	api->log(avp, SB_LOG_INFO, "avatar: %s refused: %s", what, msg);
}

/* The libvips loader that must read each type libmagic may name. */
static const char *
loader_for(const char *mime)
{
	if (strcmp(mime, "image/jpeg") == 0)
		return ("VipsForeignLoadJpegBuffer");
	if (strcmp(mime, "image/png") == 0)
		return ("VipsForeignLoadPngBuffer");
	if (strcmp(mime, "image/webp") == 0)
		return ("VipsForeignLoadWebpBuffer");
	if (strcmp(mime, "image/gif") == 0)
		return ("VipsForeignLoadNsgifBuffer");
	return (NULL);
}

/*
 * in (an image of type mime, as media_judge() sniffed it) as a
 * size x size JPEG without metadata into *out (g_free) and its
 * dimensions.  0, or -1 with *code (INVALID_FORMAT, TOO_LARGE,
 * UNSUPPORTED_MEDIA_TYPE; INTERNAL for the server's fault) and err.
 */
static int
avatar_render(const void *in, size_t len, const char *mime,
    long long max_pixels, int size, void **out, size_t *outlen, int *w,
    int *h, const char **code, char *err, size_t errlen)
{
	VipsImage	*hdr, *thumb, *t1, *t2, *t3;
	VipsArrayDouble	*white;
	const char	*want, *loader;
	uint64_t	 pixels;
	int		 rc = -1;

	*out = NULL;
	hdr = thumb = t1 = t2 = t3 = NULL;
	if ((want = loader_for(mime)) == NULL) {
		*code = "UNSUPPORTED_MEDIA_TYPE";
		(void)snprintf(err, errlen, "%s is not an image", mime);
		return (-1);
	}
	/* libvips sniffs on its own: it must agree with libmagic, so no
	 * polyglot reaches another decoder. */
	loader = vips_foreign_find_load_buffer(in, len);
	if (loader == NULL || strcmp(loader, want) != 0) {
		vips_error_clear();
		*code = "INVALID_FORMAT";
		(void)snprintf(err, errlen, "the file is not a valid %s image",
		    mime);
		return (-1);
	}
	/* The header alone: nothing is decoded yet. */
	if ((hdr = vips_image_new_from_buffer(in, len, "", "access",
	    VIPS_ACCESS_SEQUENTIAL, NULL)) == NULL) {
		log_vips("header");
		*code = "INVALID_FORMAT";
		(void)snprintf(err, errlen, "the file is not a valid %s image",
		    mime);
		goto out;
	}
	pixels = (uint64_t)vips_image_get_width(hdr) *
	    (uint64_t)vips_image_get_height(hdr);
	if (max_pixels > 0 && pixels > (uint64_t)max_pixels) {
		*code = "TOO_LARGE";
		(void)snprintf(err, errlen, "the image is %dx%d pixels; at "
		    "most %lld pixels are accepted", vips_image_get_width(hdr),
		    vips_image_get_height(hdr), max_pixels);
		goto out;
	}
	/* Decoding happens lazily, inside jpegsave: a truncated or corrupt
	 * body fails there (fail_on=truncated, not a grey fill). */
	if (vips_thumbnail_buffer((void *)(uintptr_t)in, len, &thumb, size,
	    "height", size, "crop", VIPS_INTERESTING_CENTRE,
	    "size", VIPS_SIZE_BOTH, "option_string", "fail_on=truncated",
	    NULL) != 0 ||
	    vips_colourspace(thumb, &t1, VIPS_INTERPRETATION_sRGB, NULL) != 0)
		goto decode;
	if (vips_image_hasalpha(t1)) {
		white = vips_array_double_newv(3, 255.0, 255.0, 255.0);
		rc = vips_flatten(t1, &t2, "background", white, NULL);
		vips_area_unref(VIPS_AREA(white));
		if (rc != 0) {
			rc = -1;
			goto decode;
		}
	} else {
		t2 = t1;
		g_object_ref(t2);
	}
	if (vips_cast_uchar(t2, &t3, NULL) != 0 ||
	    vips_jpegsave_buffer(t3, out, outlen, "Q", JPEG_QUALITY,
	    "strip", TRUE, "optimize_coding", TRUE,
	    "interlace", FALSE, NULL) != 0)
		goto decode;
	*w = vips_image_get_width(t3);
	*h = vips_image_get_height(t3);
	rc = 0;
	goto out;
decode:
	log_vips("decode");
	g_free(*out);
	*out = NULL;
	*code = "INVALID_FORMAT";
	(void)snprintf(err, errlen, "the image could not be decoded");
out:
	if (t3 != NULL)
		g_object_unref(t3);
	if (t2 != NULL)
		g_object_unref(t2);
	if (t1 != NULL)
		g_object_unref(t1);
	if (thumb != NULL)
		g_object_unref(thumb);
	if (hdr != NULL)
		g_object_unref(hdr);
	return (rc);
}

/*
 * Store jpeg as the user's avatar, dropping the previous item, in one
 * transaction.  The new item's sha256 into sha; 0, or -1 answered.
 */
static int
avatar_store(struct sb_req *req, int64_t user, const void *jpeg,
    size_t len, char sha[65], int64_t *media_id)
{
	struct sb_media_input	 in;
	struct sb_db_res	*r;
	const char		*params[2];
	char			 user_s[24], id_s[24], err[200];
	int64_t			 old, id;
	int			 status;

	if (api->db_begin(avp) != SB_OK) {
		api->respond_error(req, 503, "UNAVAILABLE", "the database is "
		    "unavailable", NULL);
		return (-1);
	}
	(void)snprintf(user_s, sizeof(user_s), "%" PRId64, user);
	params[0] = user_s;
	/* The user's row: a deleted user is 404, and two uploads of the
	 * same user take turns. */
	r = api->db_query(avp, "SELECT a.media_id FROM users u LEFT JOIN "
	    "media_avatars a ON a.user_id = u.id WHERE u.id = $1::bigint "
	    "FOR UPDATE OF u", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		goto fail;
	}
	if (api->db_rows(r) != 1) {
		api->db_free(r);
		api->db_rollback(avp);
		api->respond_error(req, 404, "NOT_FOUND", "no such user", NULL);
		return (-1);
	}
	old = api->db_isnull(r, 0, 0) ? 0 :
	    strtoll(api->db_value(r, 0, 0), NULL, 10);
	api->db_free(r);

	memset(&in, 0, sizeof(in));
	in.size = sizeof(in);
	in.data = jpeg;
	in.fd = -1;
	in.len = len;
	in.filename = "avatar.jpg";
	in.declared_type = "image/jpeg";
	in.purpose = "avatar";
	in.uploaded_by = user;
	if ((id = media_put(&in, &status, err, sizeof(err))) <= 0) {
		if (status == 503) {
			api->db_rollback(avp);
			api->resp_header(req, "Retry-After", "60");
			api->respond_error(req, 503, "UNAVAILABLE", err, NULL);
			return (-1);
		}
		api->log(avp, SB_LOG_ERROR, "avatar: storing the JPEG: %d %s",
		    status, err);
		goto fail;
	}
	(void)snprintf(id_s, sizeof(id_s), "%" PRId64, id);
	params[1] = id_s;
	r = api->db_query(avp, "INSERT INTO media_avatars (user_id, media_id) "
	    "VALUES ($1::bigint, $2::bigint) ON CONFLICT (user_id) DO UPDATE "
	    "SET media_id = EXCLUDED.media_id, updated_at = now() "
	    "RETURNING (SELECT sha256 FROM media WHERE id = $2::bigint)",
	    2, params);
	if (!api->db_ok(r) || api->db_rows(r) != 1) {
		api->db_free(r);
		goto fail;
	}
	(void)snprintf(sha, 65, "%s", api->db_value(r, 0, 0));
	api->db_free(r);
	if ((old > 0 && old != id && media_drop(old) != SB_OK) ||
	    api->db_commit(avp) != SB_OK)
		goto fail;
	*media_id = id;
	return (0);
fail:
	api->db_rollback(avp);
	api->respond_error(req, 500, "INTERNAL", "cannot store the avatar",
	    NULL);
	return (-1);
}

static void
avatar_upload(struct sb_req *req)
{
	const struct sb_principal	*who;
	const struct sb_part		*parts, *file;
	struct sb_media_input		 in;
	const unsigned char		*bytes;
	unsigned char			*copy;
	const char			*code;
	void				*jpeg;
	size_t				 n, i, jlen;
	char				 sniffed[128], err[200], sha[65];
	char				 url[96];
	int64_t				 media_id;
	int				 status, w = 0, h = 0;

	/* 415, 400 and the route's 413 are the host's. */
	if (api->req_parts(req, &parts, &n) != SB_OK)
		return;
	who = api->req_principal(req);
	file = NULL;
	for (i = 0; i < n && file == NULL; i++) {
		if (parts[i].name != NULL &&
		    strcmp(parts[i].name, AVATAR_FIELD) == 0)
			file = &parts[i];
	}
	if (file == NULL || file->len == 0) {
		field_error(req, 422, "REQUIRED", "the form field `avatar` is "
		    "required");
		return;
	}
	if ((bytes = part_bytes(req, file, &copy)) == NULL)
		return;

	memset(&in, 0, sizeof(in));
	in.size = sizeof(in);
	in.data = bytes;
	in.fd = -1;
	in.len = file->len;
	in.declared_type = file->content_type;
	in.purpose = "avatar";
	jpeg = NULL;
	if (media_judge(&in, sniffed, sizeof(sniffed), &status, &code, err,
	    sizeof(err)) == -1) {
		if (status >= 500)
			api->respond_error(req, status, "INTERNAL", err, NULL);
		else
			field_error(req, status, code != NULL ? code :
			    status == 413 ? "TOO_LARGE" : "INVALID_TYPE", err);
		goto out;
	}
	if (avatar_render(bytes, (size_t)file->len, sniffed,
	    api->config_int(avp, "max_pixels", 40000000), AVATAR_SIZE, &jpeg,
	    &jlen, &w, &h, &code, err, sizeof(err)) == -1) {
		field_error(req, strcmp(code, "UNSUPPORTED_MEDIA_TYPE") == 0 ?
		    415 : 422, code, err);
		goto out;
	}
	if (avatar_store(req, who->id, jpeg, jlen, sha, &media_id) == -1)
		goto out;
	(void)snprintf(url, sizeof(url), "/api/v1/users/%" PRId64 "/avatar",
	    who->id);
	api->respond_json(req, 200, json_pack("{s:s, s:s, s:i, s:i, s:s, "
	    "s:I}", "avatar_url", url, "content_type", "image/jpeg", "width",
	    w, "height", h, "sha256", sha, "media_id", (json_int_t)media_id));
out:
	g_free(jpeg);
	free(copy);
}

/*
 * If-None-Match: "*" or a list of entity tags, compared weakly (RFC 9110
 * 13.1.2), so W/"x" matches "x".
 */
static int
etag_matches(const char *list, const char *etag)
{
	const char	*p, *q;
	size_t		 elen;

	elen = strlen(etag);
	for (p = list;;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			return (0);
		if (*p == '*')
			return (1);
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		if (*p != '"' || (q = strchr(p + 1, '"')) == NULL)
			return (0);
		if ((size_t)(q - p + 1) == elen && memcmp(p, etag, elen) == 0)
			return (1);
		p = q + 1;
	}
}

static void
avatar_get(struct sb_req *req)
{
	struct sb_db_res	*r;
	const char		*s, *params[1], *inm;
	char			 etag[80], sha[65], mime[64];
	uint64_t		 size;
	size_t			 i;
	int			 fd;

	s = api->req_param(req, "id");
	if (s == NULL || *s < '1' || *s > '9' || strlen(s) > 18)
		goto none;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9')
			goto none;
	}
	params[0] = s;
	r = api->db_query(avp, "SELECT m.sha256, m.mime_type FROM "
	    "media_avatars a JOIN media m ON m.id = a.media_id "
	    "WHERE a.user_id = $1::bigint", 1, params);
	if (!api->db_ok(r)) {
		api->db_free(r);
		api->respond_error(req, 503, "UNAVAILABLE", "the database is "
		    "unavailable", NULL);
		return;
	}
	if (api->db_rows(r) != 1) {
		api->db_free(r);
		goto none;
	}
	(void)snprintf(sha, sizeof(sha), "%s", api->db_value(r, 0, 0));
	(void)snprintf(mime, sizeof(mime), "%s", api->db_value(r, 0, 1));
	api->db_free(r);

	(void)snprintf(etag, sizeof(etag), "\"%s\"", sha);
	api->resp_header(req, "etag", etag);
	api->resp_header(req, "cache-control", AVATAR_CACHE);
	if ((inm = api->req_header(req, "if-none-match")) != NULL &&
	    etag_matches(inm, etag)) {
		api->respond_raw(req, 304, NULL, NULL, 0);
		return;
	}
	if ((fd = media_open(sha, &size)) == -1) {
		api->log(avp, SB_LOG_ERROR, "avatar: the bytes of %s are "
		    "missing from the store", sha);
		api->respond_error(req, 500, "INTERNAL", "internal error",
		    NULL);
		return;
	}
	api->respond_file(req, 200, mime, fd, 0, size);
	return;
none:
	api->respond_error(req, 404, "NOT_FOUND", "no such avatar", NULL);
}
